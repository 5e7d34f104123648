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
    id: str | None = None  # OpenAI's tool_call id, matched by the result's tool_call_id

    def to_hf(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        if self.id:
            out["id"] = self.id
        return out


@dataclass
class Message:
    role: str  # one of ROLES
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    name: str | None = None  # tool name, for role == "tool"
    tool_call_id: str | None = None  # for role == "tool": the id of the call this result answers (OpenAI)

    def to_hf(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_hf() for c in self.tool_calls]
        if self.name:
            out["name"] = self.name
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
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


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    out = []
    for t in tools or []:
        f = t.get("function", t) if isinstance(t, dict) else None
        if isinstance(f, dict) and isinstance(f.get("name"), str):
            out.append(f["name"])
    return out


def check_tools(conv: Conversation) -> Msg | None:
    """Why the tool use of a conversation (in a valid turn order) is invalid, or None.

    Every tool definition has a name; a call names one of the row's ``tools`` (when the row has any) and has a JSON
    object as arguments; a run of tool results answers at most as many calls as the assistant turn before it made,
    and a result's ``tool_call_id`` (when given) is the id of one of those calls.
    """
    for k, t in enumerate(conv.tools or [], start=1):
        f = t.get("function", t) if isinstance(t, dict) else None
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"].strip():
            return Msg("conv_tool_def_no_name", k=k)
    names = tool_names(conv.tools)
    calls: list = []
    answered = 0
    for i, m in enumerate(conv.messages, start=1):
        if m.role == "assistant":
            calls, answered = m.tool_calls, 0
            for c in m.tool_calls:
                if not isinstance(c.arguments, dict):
                    return Msg("conv_call_args_not_object", i=i, name=c.name, kind=type(c.arguments).__name__)
                if conv.tools is not None and c.name not in names:
                    return Msg("conv_call_unknown_tool", i=i, name=c.name, names=", ".join(names))
        elif m.role == "tool":
            answered += 1
            if answered > len(calls):
                return Msg("conv_tool_more_results", i=i, n=len(calls))
            ids = [c.id for c in calls if c.id]
            if m.tool_call_id and m.tool_call_id not in ids:
                return Msg("conv_tool_call_id_unknown", i=i, id=m.tool_call_id, ids=", ".join(ids) or "none")
    return None


def link_tool_results(conv: Conversation) -> Conversation:
    """Give calls without an id a stable one (``call00001``…, the 9 alphanumeric characters Mistral's template
    requires) and each tool result without a ``tool_call_id`` / ``name`` those of the call it answers (the k-th
    result of a run answers the k-th call), so that templates that render ids or names (Mistral, Hermes) accept rows
    from formats that carry neither (LLaMA-Factory sharegpt). Call after :func:`check_tools`."""
    n = 0
    calls: list[ToolCall] = []
    k = 0
    for m in conv.messages:
        if m.role == "assistant":
            calls, k = m.tool_calls, 0
            for c in calls:
                n += 1
                if not c.id:
                    c.id = f"call{n:05d}"
        elif m.role == "tool" and k < len(calls):
            call = next((c for c in calls if c.id == m.tool_call_id), None) if m.tool_call_id else calls[k]
            k += 1
            if call is not None:
                m.tool_call_id = m.tool_call_id or call.id
                m.name = m.name or call.name
    return conv


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
