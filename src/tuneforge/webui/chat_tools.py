"""Tools in the Chat tab: the tuned model is offered the tools of the Tools box, each call it makes is shown in the
chat as a titled message (🛠 name, its JSON arguments), the user types the call's result (📎 name), and the model
continues with it. The chat's own messages carry the conversation: a call's message keeps the call id in its
metadata, so the history the model sees is rebuilt from what the page shows (``conversation``)."""

from __future__ import annotations

import json
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.errors import TuneforgeError

CALL = "🛠 "
RESULT = "📎 "


def _meta(m: dict) -> dict:
    meta = m.get("metadata") or {}
    return meta if isinstance(meta, dict) else {}


def _text(content: Any) -> str:
    from tuneforge.webui.actions import message_text

    return message_text(content)


def display(msg: dict) -> list[dict]:
    """The page's messages for an assistant turn: its text (if any) and one titled message per call."""
    out = [{"role": "assistant", "content": msg["content"]}] if msg.get("content") else []
    for c in msg.get("tool_calls") or []:
        f = c["function"]
        out.append({"role": "assistant", "content": json.dumps(f["arguments"], ensure_ascii=False),
                    "metadata": {"title": CALL + f["name"], "id": c["id"]}})
    return out


def result_message(name: str, call_id: str, text: str) -> dict:
    return {"role": "assistant", "content": text, "metadata": {"title": RESULT + name, "id": call_id}}


def conversation(history: list[dict]) -> list[dict]:
    """The model's conversation from the page's messages: calls folded into their assistant turn, results as tool
    messages answering their call."""
    out: list[dict] = []
    for m in history:
        title, text = str(_meta(m).get("title") or ""), _text(m.get("content"))
        if title.startswith(CALL):
            call = {"id": _meta(m).get("id"), "type": "function",
                    "function": {"name": title[len(CALL):], "arguments": json.loads(text or "{}")}}
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif title.startswith(RESULT):
            out.append({"role": "tool", "content": text, "name": title[len(RESULT):],
                        "tool_call_id": _meta(m).get("id")})
        else:
            out.append({"role": m["role"], "content": text})
    return out


def pending_calls(history: list[dict]) -> list[tuple[str, str]]:
    """(name, id) of the calls of the last assistant turn that have no result yet, in order."""
    calls: list[tuple[str, str]] = []
    answered: set = set()
    for m in history:
        title = str(_meta(m).get("title") or "")
        if title.startswith(CALL):
            if answered:  # a new round of calls
                calls, answered = [], set()
            calls.append((title[len(CALL):], _meta(m).get("id")))
        elif title.startswith(RESULT):
            answered.add(_meta(m).get("id"))
        elif m.get("role") == "user":
            calls, answered = [], set()
    return [c for c in calls if c[1] not in answered]


def turn(engine, history: list[dict], system, gen, tools_json: str) -> tuple[list[dict], Msg]:
    """The model's next turn with the tools offered, appended to the page's ``history``; the status to show."""
    from tuneforge.infer.conversations import parse_tools, reply_with_tools, tool_format

    tools = parse_tools(tools_json, "Tools")
    msg, parsed = reply_with_tools(engine, conversation(history), gen, system or None, tools, tool_format(engine))
    history = list(history) + display(msg)
    if parsed.errors:
        history.append({"role": "assistant", "content": "\n".join(parsed.errors),
                        "metadata": {"title": "⚠ not read as a tool call"}})
    if parsed.calls:
        return history, Msg("msg_tool_called", names=", ".join(c.name for c in parsed.calls))
    return history, Msg("msg_replied_tools")


def add_result(history: list[dict], text: str) -> tuple[list[dict], bool]:
    """The typed result answers the first call still waiting; True when every call of the turn is answered."""
    waiting = pending_calls(history)
    if not waiting:
        raise TuneforgeError(Msg("msg_no_pending_call"), Msg("msg_no_pending_call_hint"))
    name, call_id = waiting[0]
    return list(history) + [result_message(name, call_id, text)], len(waiting) == 1
