"""OpenAI request messages and tools → the messages and tools a chat template takes (the shape of
``data/schema.py``'s ``to_hf``)."""

from __future__ import annotations

import json

from tuneforge.serve.errors import APIError
from tuneforge.serve.protocol import ChatMessage, Tool


def _text(content, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content)


def hf_messages(messages: list[ChatMessage], tools: list[dict] | None = None) -> list[dict]:
    """Template messages, through the message schema training uses (``data/schema.py``): ``developer`` is a system
    message; a call's JSON-string arguments become an object; a tool result gets the id and name of the call it
    answers (``link_tool_results``, as training rows); tool use is checked as training rows are (``check_tools``:
    calls to tools not offered, a result with no call, a ``tool_call_id`` that matches nothing)."""
    from tuneforge.config.messages import tr
    from tuneforge.data.schema import Conversation, Message, ToolCall, check_tools, link_tool_results

    out: list[Message] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        calls = []
        if m.tool_calls and m.role != "assistant":
            raise APIError(400, f"{where}: only assistant messages carry tool_calls", f"{where}.tool_calls")
        for j, c in enumerate(m.tool_calls or []):
            args = c.function.arguments
            if isinstance(args, str):
                try:
                    args = json.loads(args or "{}")
                except json.JSONDecodeError as e:
                    raise APIError(400, f"{where}.tool_calls[{j}].function.arguments is not valid JSON ({e.msg}); "
                                        "send the arguments as a JSON object in a string, e.g. "
                                        "'{\"city\": \"Paris\"}'", f"{where}.tool_calls") from None
            if not isinstance(args, dict):
                raise APIError(400, f"{where}.tool_calls[{j}].function.arguments must be a JSON object",
                               f"{where}.tool_calls")
            calls.append(ToolCall(c.function.name, args, c.id))
        out.append(Message("system" if m.role == "developer" else m.role, _text(m.content, where), calls,
                           m.name if m.role == "tool" else None, m.tool_call_id if m.role == "tool" else None))
    conv = Conversation(out, tools=tools)
    problem = check_tools(conv)
    if problem:
        raise APIError(400, tr(problem, "en") + " (messages are counted from 1)", "messages")
    return link_tool_results(conv).to_hf()


def hf_tools(tools: list[Tool] | None) -> list[dict] | None:
    if not tools:
        return None
    return [{"type": "function", "function": t.function.model_dump(exclude_none=True)} for t in tools]
