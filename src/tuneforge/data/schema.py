"""The one internal message schema every dataset format is converted to.

It already carries what agent/tool-calling tuning needs (tool definitions, assistant tool calls, tool results), in
the shape Hugging Face chat templates take, so that a conversation renders with ``apply_chat_template`` as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuneforge.config.messages import Msg

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]

    def to_hf(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Message:
    role: str  # one of ROLES
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    name: str | None = None  # tool name, for role == "tool"

    def to_hf(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_hf() for c in self.tool_calls]
        if self.name:
            out["name"] = self.name
        return out


@dataclass
class Conversation:
    """A training example: an optional system prompt, optional tool definitions, and the turns."""

    messages: list[Message]
    system: str | None = None
    tools: list[dict[str, Any]] | None = None
    source: str = ""  # "file:line" for error messages and reports

    def to_hf(self, upto: int | None = None) -> list[dict[str, Any]]:
        msgs = [m.to_hf() for m in self.messages[:upto]]
        if self.system is not None:
            msgs.insert(0, {"role": "system", "content": self.system})
        return msgs


def check_order(conv: Conversation) -> Msg | None:
    """Why the turn order is invalid, or None.

    Valid: user → assistant, repeated; an assistant turn with tool calls is followed by one or more tool results and
    then an assistant turn; the last message is an assistant reply (the text to learn).
    """
    msgs = conv.messages
    if not msgs:
        return Msg("conv_empty")
    prev = None
    for i, m in enumerate(msgs):
        n = i + 1
        if m.role == "user":
            if prev is not None and prev.role != "assistant":
                return Msg("conv_user_after", i=n, role=prev.role)
        elif m.role == "tool":
            if prev is None or not (prev.role == "tool" or (prev.role == "assistant" and prev.tool_calls)):
                return Msg("conv_tool_without_call", i=n)
        elif m.role == "assistant":
            if prev is None or prev.role not in ("user", "tool"):
                return Msg("conv_assistant_first" if prev is None else "conv_assistant_twice", i=n)
            if not m.content.strip() and not m.tool_calls:
                return Msg("conv_reply_empty", i=n)
        elif m.role == "system":
            return Msg("row_system_not_first", i=n)
        else:
            return Msg("conv_unknown_role", i=n, role=m.role, roles=", ".join(ROLES))
        prev = m
    if msgs[-1].role != "assistant":
        return Msg("conv_no_final_reply")
    return None


@dataclass
class Preference:
    """A preference example: the prompt (a conversation ending with a user turn) and either two replies, ``chosen``
    and ``rejected`` (rm, dpo), or one reply labelled desirable or not by ``kto_tag`` (kto). For ppo only the prompt
    is used."""

    prompt: Conversation
    chosen: Message | None = None
    rejected: Message | None = None
    kto_tag: bool | None = None

    def with_reply(self, reply: Message) -> Conversation:
        return Conversation(self.prompt.messages + [reply], self.prompt.system, self.prompt.tools, self.prompt.source)
