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


def interactive(engine, gen, system) -> int:
    from transformers import TextStreamer

    print("Chat with the model. Type `clear` to forget the conversation, `exit` to quit.")
    history: list[dict] = []
    streamer = TextStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True)
    while True:
        try:
            text = input("\nUser: ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if text == "exit":
            return 0
        if text == "clear":
            history = []
            print("(history cleared)")
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        print("Assistant: ", end="", flush=True)
        reply = engine.generate([history], gen, system, streamer=streamer)[0]
        history.append({"role": "assistant", "content": reply})
