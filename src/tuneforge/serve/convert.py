"""OpenAI request messages and tools → the messages and tools a chat template takes (the shape of
``data/schema.py``'s ``to_hf``), and parsed calls back into OpenAI's ``tool_calls``."""

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


def hf_messages(messages: list[ChatMessage]) -> list[dict]:
    """Template messages: ``developer`` is a system message; a call's JSON-string arguments become an object (as
    training rows carry them); a tool result names the tool its ``tool_call_id`` answers."""
    out: list[dict] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        msg: dict = {"role": "system" if m.role == "developer" else m.role, "content": _text(m.content, where)}
        if m.tool_calls:
            if m.role != "assistant":
                raise APIError(400, f"{where}: only assistant messages carry tool_calls", f"{where}.tool_calls")
            calls = []
            for j, c in enumerate(m.tool_calls):
                args = c.function.arguments
                if isinstance(args, str):
                    try:
                        args = json.loads(args or "{}")
                    except json.JSONDecodeError as e:
                        raise APIError(400, f"{where}.tool_calls[{j}].function.arguments is not valid JSON ({e.msg})"
                                            "; send the arguments as a JSON object in a string, e.g. "
                                            "'{\"city\": \"Paris\"}'", f"{where}.tool_calls") from None
                if not isinstance(args, dict):
                    raise APIError(400, f"{where}.tool_calls[{j}].function.arguments must be a JSON object",
                                   f"{where}.tool_calls")
                if c.id:
                    call_names[c.id] = c.function.name
                calls.append({"type": "function", "function": {"name": c.function.name, "arguments": args}})
            msg["tool_calls"] = calls
        if m.role == "tool":
            if m.tool_call_id and call_names and m.tool_call_id not in call_names:
                raise APIError(400, f"{where}: tool_call_id {m.tool_call_id!r} matches no earlier tool call "
                                    f"(ids: {', '.join(call_names)})", f"{where}.tool_call_id")
            name = m.name or call_names.get(m.tool_call_id or "")
            if name:
                msg["name"] = name
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
        elif m.name and m.role != "tool":
            msg["name"] = m.name
        out.append(msg)
    return out


def hf_tools(tools: list[Tool] | None) -> list[dict] | None:
    if not tools:
        return None
    return [{"type": "function", "function": t.function.model_dump(exclude_none=True)} for t in tools]
