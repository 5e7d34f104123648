"""Conversations for `tuneforge chat` from files and from a terminal: a prompts file (one prompt per line, or JSONL
rows with ``messages``) and the interactive loop."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.errors import TuneforgeError


def read_prompts(path: str) -> list[list[dict]]:
    p = Path(path)
    if not p.is_file():
        raise TuneforgeError(f"--prompts {path!r}: no such file", "give a text file (one prompt per line) or JSONL")
    convs = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TuneforgeError(f"{path}: invalid JSON on line {i}: {e.msg}", "fix the line") from None
            msgs = row.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise TuneforgeError(f"{path}:{i}: a JSON row needs a non-empty `messages` list",
                                     'e.g. {"messages": [{"role": "user", "content": "hi"}]}')
            convs.append(msgs)
        else:
            convs.append([{"role": "user", "content": line}])
    return convs


def user_turns(history: list[dict]):
    """The user's messages typed at the terminal, until `exit` or end of input; `clear` empties ``history``."""
    while True:
        try:
            text = input("\nUser: ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text == "exit":
            return
        if text == "clear":
            history.clear()
            print("(history cleared)")
            continue
        if text:
            yield text


def interactive(engine, gen, system) -> int:
    from transformers import TextStreamer

    print("Chat with the model. Type `clear` to forget the conversation, `exit` to quit.")
    history: list[dict] = []
    streamer = TextStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True)
    for text in user_turns(history):
        history.append({"role": "user", "content": text})
        print("Assistant: ", end="", flush=True)
        reply = engine.generate([history], gen, system, streamer=streamer)[0]
        history.append({"role": "assistant", "content": reply})
    return 0


# ---- tools: `tuneforge chat --tools FILE` and the web UI's Chat tab -------------------------------------------------

def parse_tools(text: str, where: str = "--tools") -> list[dict]:
    """A JSON list of tool schemas (OpenAI's ``{"type": "function", "function": {...}}`` or LLaMA-Factory's bare
    ``{"name", "description", "parameters"}``) → OpenAI's form, which the chat templates take."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TuneforgeError(f"{where}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}",
                             'give a JSON list of tools, e.g. [{"name": "get_weather", "parameters": {"type": '
                             '"object", "properties": {"city": {"type": "string"}}}}]') from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TuneforgeError(f"{where}: expected a JSON list of tools, got a JSON {type(data).__name__}",
                             "wrap the tool schemas in [ ]")
    out = []
    for k, t in enumerate(data, start=1):
        f = t.get("function", t) if isinstance(t, dict) else None
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"].strip():
            raise TuneforgeError(f"{where}: tool {k} has no function name",
                                 'each tool needs "name" (and usually "description" and "parameters")')
        out.append({"type": "function", "function": f})
    return out


def read_tools(path: str) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise TuneforgeError(f"--tools {path!r}: no such file", "give a JSON file holding a list of tool schemas")
    return parse_tools(p.read_text(encoding="utf-8"), path)


def tool_format(engine) -> str:
    """The tool-call format of the engine's template; refused when the template renders no tools."""
    from tuneforge.infer.tools import detect_format

    fmt = detect_format(getattr(engine.tokenizer, "chat_template", None), engine.fmt.name)
    if fmt is None:
        raise TuneforgeError("this model's chat template renders no tools, so tool calls cannot be read back",
                             "pass --template qwen (or chatml, llama3, mistral, glm4), or use a model whose own "
                             "template takes tools")
    return fmt


def reply_with_tools(engine, history: list[dict], gen, system, tools: list[dict], fmt: str):
    """The model's next turn with ``tools`` offered: (the assistant message for the history, the parsed reply)."""
    from dataclasses import replace

    from tuneforge.infer.tools import parse_tool_calls

    text = engine.generate([history], replace(gen, skip_special_tokens=False), system, tools=tools)[0]
    parsed = parse_tool_calls(text, fmt)
    msg: dict = {"role": "assistant", "content": parsed.content}
    if parsed.calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in parsed.calls]
    return msg, parsed


def call_line(call) -> str:
    return f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"


MAX_CALL_ROUNDS = 5  # call → result → call … within one user turn, before the loop asks the user again


def interactive_tools(engine, gen, system, tools: list[dict]) -> int:
    """The chat loop with tools: each parsed call is shown, its result (the observation) is typed by the user, and
    the model continues with it."""
    fmt = tool_format(engine)
    names = ", ".join(t["function"]["name"] for t in tools)
    print(f"Chat with the model; tools offered: {names}. When it calls a tool, type the tool's result. "
          "`clear` forgets the conversation, `exit` quits.")
    history: list[dict] = []
    for text in user_turns(history):
        history.append({"role": "user", "content": text})
        for _ in range(MAX_CALL_ROUNDS):
            msg, parsed = reply_with_tools(engine, history, gen, system, tools, fmt)
            history.append(msg)
            for e in parsed.errors:
                print(f"(not read as a tool call: {e})")
            if parsed.content or not parsed.calls:
                print(f"Assistant: {parsed.content}")
            if not parsed.calls:
                break
            for c in parsed.calls:
                print(f"Tool call: {call_line(c)}")
            for c in parsed.calls:
                try:
                    result = input(f"Result of {c.name}: ")
                except (EOFError, KeyboardInterrupt):
                    print()
                    return 0
                history.append({"role": "tool", "content": result, "name": c.name, "tool_call_id": c.id})
        else:
            print(f"(stopped after {MAX_CALL_ROUNDS} rounds of tool calls; type your next message)")
    return 0
