"""Convert rows in LLaMA-Factory's formats (alpaca, sharegpt, openai) to :class:`Conversation`.

Column and tag names follow ``dataset_info.json`` (``columns``, ``tags``) with LLaMA-Factory's defaults. When an entry
gives no ``formatting``, it is inferred from the columns: ``messages`` → openai, ``conversations`` → sharegpt,
``instruction`` → alpaca.
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.data.catalog import DatasetEntry
from tuneforge.data.schema import (Conversation, Message, Preference, ToolCall, check_order, check_tools,
                                   link_tool_results)

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system", "tools": "tools"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
OPENAI_COLUMNS = {"messages": "messages", "system": "system", "tools": "tools"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system"}


class RowError(ValueError):
    """A problem with one row; the caller adds file and line."""


def infer_format(entry: DatasetEntry, row: dict[str, Any]) -> str:
    if entry.formatting:
        return entry.formatting
    cols = entry.columns
    if "messages" in cols:
        return "openai" if cols["messages"] == "messages" else "sharegpt"
    if "messages" in row:
        return "openai"
    if "conversations" in row:
        return "sharegpt"
    return "alpaca"


def _text(value: Any, what: str | Msg) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError(Msg("row_not_text", what=what, kind=type(value).__name__))
    return value


def _tools(value: Any) -> list[dict[str, Any]] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RowError(Msg("row_tools_json", error=e.msg)) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError(Msg("row_tools_not_list"))
    for i, t in enumerate(value, start=1):
        if not isinstance(t, dict):
            raise RowError(Msg("row_tool_not_object", i=i, kind=type(t).__name__))
    return [t if "type" in t else {"type": "function", "function": t} for t in value]


def _tool_calls(value: Any) -> list[ToolCall]:
    """A sharegpt function_call value (JSON text of {name, arguments} or a list of them) or OpenAI tool_calls
    ({id, type, function: {name, arguments}}; arguments a JSON string or object)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RowError(Msg("row_call_json", error=e.msg)) from None
    calls = value if isinstance(value, list) else [value]
    out = []
    for c in calls:
        call_id = c.get("id") if isinstance(c, dict) else None
        if isinstance(c, dict) and "function" in c:
            c = c["function"]
        if not isinstance(c, dict) or "name" not in c:
            raise RowError(Msg("row_call_shape"))
        args = c.get("arguments", c.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise RowError(Msg("row_call_args_json", name=str(c["name"]), error=e.msg)) from None
        out.append(ToolCall(name=str(c["name"]), arguments=args, id=str(call_id) if call_id else None))
    return out


def from_alpaca(row: dict[str, Any], columns: dict[str, str]) -> Conversation:
    cols = {**ALPACA_COLUMNS, **columns}
    prompt = _text(row.get(cols["prompt"]), cols["prompt"])
    query = _text(row.get(cols["query"]), cols["query"])
    if cols["response"] not in row:
        raise RowError(Msg("row_no_response", col=cols["response"], keys=sorted(row)))
    response = _text(row.get(cols["response"]), cols["response"])
    if not prompt.strip() and not query.strip():
        raise RowError(Msg("row_no_prompt", col=cols["prompt"], keys=sorted(row)))
    messages: list[Message] = []
    history = row.get(cols["history"]) or []
    if not isinstance(history, list) or any(not isinstance(h, (list, tuple)) or len(h) != 2 for h in history):
        raise RowError(Msg("row_history_pairs", col=cols["history"]))
    for q, a in history:
        messages += [Message("user", _text(q, "history")), Message("assistant", _text(a, "history"))]
    user = "\n".join(x for x in (prompt, query) if x)
    messages += [Message("user", user), Message("assistant", response)]
    system = _text(row.get(cols["system"]), cols["system"]) or None
    return Conversation(messages, system=system, tools=_tools(row.get(cols["tools"])))


def from_sharegpt(row: dict[str, Any], columns: dict[str, str], tags: dict[str, str], openai: bool) -> Conversation:
    cols = {**(OPENAI_COLUMNS if openai else SHAREGPT_COLUMNS), **columns}
    t = {**(OPENAI_TAGS if openai else SHAREGPT_TAGS), **tags}
    turns = row.get(cols["messages"])
    if not isinstance(turns, list) or not turns:
        raise RowError(Msg("row_no_messages", col=cols["messages"], keys=sorted(row)))
    roles = {t["user_tag"]: "user", t["assistant_tag"]: "assistant", t["observation_tag"]: "tool",
             t["function_tag"]: "function_call", t["system_tag"]: "system"}
    system = _text(row.get(cols["system"]), cols["system"]) or None
    messages: list[Message] = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or t["role_tag"] not in turn:
            raise RowError(Msg("row_no_role", i=i, tag=t["role_tag"]))
        raw_role = turn[t["role_tag"]]
        role = roles.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise RowError(Msg("row_bad_role", i=i, role=raw_role, roles=", ".join(roles)))
        content = turn.get(t["content_tag"])
        if openai and role == "assistant" and turn.get("tool_calls"):
            messages.append(Message("assistant", _text(content, "content"), tool_calls=_tool_calls(turn["tool_calls"])))
            continue
        if role == "system":
            if i != 1:
                raise RowError(Msg("row_system_not_first", i=i))
            system = _text(content, "system")
        elif role == "function_call":
            calls = _tool_calls(content)
            if messages and messages[-1].role == "assistant" and not messages[-1].tool_calls:
                messages[-1].tool_calls = calls  # text followed by a call in the same turn
            else:
                messages.append(Message("assistant", "", tool_calls=calls))
        else:
            if content is None:  # missing, or null: an empty message would be trained on without a word
                raise RowError(Msg("row_turn_no_content", i=i, role=raw_role, tag=t["content_tag"]))
            text = content if isinstance(content, str) else (json.dumps(content, ensure_ascii=False)
                                                             if role == "tool" and content is not None else content)
            messages.append(Message(role, _text(text, Msg("row_message_content", i=i)), name=turn.get("name"),
                                    tool_call_id=turn.get("tool_call_id") if role == "tool" else None))
    return Conversation(messages, system=system, tools=_tools(row.get(cols["tools"])))


def to_conversation(entry: DatasetEntry, row: dict[str, Any]) -> Conversation:
    fmt = infer_format(entry, row)
    if fmt == "alpaca":
        conv = from_alpaca(row, entry.columns)
    else:
        conv = from_sharegpt(row, entry.columns, entry.tags, openai=(fmt == "openai"))
    problem = check_order(conv) or check_tools(conv)
    if problem:
        raise RowError(problem)
    return link_tool_results(conv)


TRUE_TAGS, FALSE_TAGS = {"true", "1", "yes"}, {"false", "0", "no"}


def _reply(value: Any, fmt: str, tags: dict[str, str], what: str) -> Message:
    """A chosen/rejected reply: plain text (alpaca) or one message object (sharegpt/openai)."""
    if isinstance(value, dict):
        t = {**(OPENAI_TAGS if fmt == "openai" else SHAREGPT_TAGS), **tags}
        value = value.get(t["content_tag"])
    text = _text(value, what)
    if not text.strip():
        raise RowError(Msg("row_reply_empty", what=what))
    return Message("assistant", text)


def _kto_tag(value: Any, col: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_TAGS | FALSE_TAGS:
        return value.strip().lower() in TRUE_TAGS
    raise RowError(Msg("row_kto_tag", col=col, value=value))


def to_preference(entry: DatasetEntry, row: dict[str, Any], stage: str) -> Preference:
    """A row of a ranking dataset (``chosen``/``rejected``), a KTO row (a conversation plus a boolean ``kto_tag``)
    or, for ppo, any row whose prompt is used."""
    fmt = infer_format(entry, row)
    cols = entry.columns
    if entry.ranking:
        c_col, r_col = cols.get("chosen", "chosen"), cols.get("rejected", "rejected")
        for col, what in ((c_col, "row_preferred"), (r_col, "row_dispreferred")):
            if col not in row:
                raise RowError(Msg("row_pref_missing", col=col, what=Msg(what), keys=sorted(row), chosen=c_col,
                                   rejected=r_col))
        chosen = _reply(row[c_col], fmt, entry.tags, c_col)
        rejected = _reply(row[r_col], fmt, entry.tags, r_col)
        if chosen.content.strip() == rejected.content.strip():
            raise RowError(Msg("row_pref_identical", chosen=c_col, rejected=r_col))
        if fmt == "alpaca":
            conv = from_alpaca({**row, cols.get("response", "output"): chosen.content}, cols)
            conv.messages = conv.messages[:-1]
        else:
            conv = from_sharegpt(row, cols, entry.tags, openai=(fmt == "openai"))
            if conv.messages and conv.messages[-1].role == "assistant":
                raise RowError(Msg("row_pref_ends_assistant", chosen=c_col, rejected=r_col))
        pref = Preference(conv, chosen, rejected)
    else:
        if fmt != "alpaca":
            conv = from_sharegpt(row, cols, entry.tags, openai=(fmt == "openai"))
            if stage == "ppo" and conv.messages and conv.messages[-1].role == "user":
                conv.messages.append(Message("assistant", "(unused)"))
        else:
            conv = from_alpaca(row if stage != "ppo" else {cols.get("response", "output"): "(unused)", **row}, cols)
        pref = Preference(Conversation(conv.messages[:-1], conv.system, conv.tools), conv.messages[-1])
        if stage == "kto":
            col = cols.get("kto_tag", "kto_tag")
            if col not in row:
                raise RowError(Msg("row_kto_no_tag", col=col, keys=sorted(row)))
            pref.kto_tag = _kto_tag(row[col], col)
    problem = check_order(pref.with_reply(pref.chosen))
    if problem:
        raise RowError(problem)
    return pref
