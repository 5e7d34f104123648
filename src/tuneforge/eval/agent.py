"""Did tool calling take, on tools never seen in training, without breaking plain chat?

* call accuracy: of held-out requests offered ``tools`` the training set never showed, the share whose reply parses
  (:mod:`tuneforge.infer.tools`) into exactly the expected calls — right function names and right arguments (strings
  compared case- and whitespace-insensitively, numbers by value; parallel calls in any order), with no parse error;
* no-call rate: of held-out chit-chat requests (tools offered, none fits), the share answered without a call;
* general retention: reuse :mod:`tuneforge.eval.identity` (``base_replies`` / ``correct``) on questions without tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.infer.tools import detect_format, parse_tool_calls


@dataclass
class AgentHeldOut:
    """``calls``: rows {question, lang, tools, expect: [{name, arguments}]}; ``chat``: rows {question, tools}."""
    calls: list[dict]
    chat: list[dict]

    @classmethod
    def load(cls, path: str | Path) -> "AgentHeldOut":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["calls"], data["chat"])


def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return " ".join(v.split()).casefold()
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def calls_match(got: list[tuple[str, dict]], expect: list[dict]) -> bool:
    want = sorted(json.dumps([e["name"], _norm(e["arguments"])], sort_keys=True) for e in expect)
    have = sorted(json.dumps([n, _norm(a)], sort_keys=True) for n, a in got)
    return want == have


def tool_replies(engine, rows: list[dict], max_new_tokens: int = 64, batch_size: int = 16,
                 guided: bool = True) -> list[str]:
    """Greedy replies of a ChatEngine to single-turn requests that each offer their own ``tools``; ``guided``:
    calls are decoded schema-guided (infer/tool_guide.py), as ``tuneforge chat``/``api`` decode them."""
    import torch

    from tuneforge.config.schema import GenerateArgs

    tok, fmt = engine.tokenizer, engine.fmt
    kw = engine.gen_kwargs(GenerateArgs(max_new_tokens=max_new_tokens))
    out: list[str] = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i: i + batch_size]
            texts = [fmt.render(tok, [{"role": "user", "content": r["question"]}], r.get("tools") or None,
                                add_generation_prompt=True) for r in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(engine.device)
            gkw = engine.guided(kw, [r.get("tools") for r in chunk], enc["input_ids"].shape[1]) if guided else kw
            gen = engine._generate(enc, gkw)
            for row in gen[:, enc["input_ids"].shape[1]:]:
                text = tok.decode(row, skip_special_tokens=False)
                for s in fmt.stop + [tok.pad_token or ""]:
                    if s and s in text:
                        text = text[: text.index(s)]
                out.append(text.strip())
    return out


@dataclass
class AgentReport:
    call_accuracy: float
    calls_right: int
    calls_asked: int
    no_call_rate: float
    chat_plain: int
    chat_asked: int
    parse_errors: int
    wrong_calls: list[dict] = field(default_factory=list)
    chat_with_calls: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()

    def line(self) -> str:
        return (f"calls {self.calls_right}/{self.calls_asked} ({100 * self.call_accuracy:.1f}%), "
                f"no-call chit-chat {self.chat_plain}/{self.chat_asked} ({100 * self.no_call_rate:.1f}%), "
                f"parse errors {self.parse_errors}")


def score(held: AgentHeldOut, call_replies: list[str], chat_replies: list[str], tool_format: str) -> AgentReport:
    right, wrong, errors = 0, [], 0
    for row, reply in zip(held.calls, call_replies):
        parsed = parse_tool_calls(reply, tool_format)
        errors += bool(parsed.errors)
        ok = not parsed.errors and calls_match([(c.name, c.arguments) for c in parsed.calls], row["expect"])
        right += ok
        if not ok:
            wrong.append({"question": row["question"], "reply": reply, "errors": parsed.errors})
    plain, called = 0, []
    for row, reply in zip(held.chat, chat_replies):
        parsed = parse_tool_calls(reply, tool_format)
        if parsed.calls or parsed.errors:
            called.append({"question": row["question"], "reply": reply})
        else:
            plain += 1
    return AgentReport(right / max(len(held.calls), 1), right, len(held.calls), plain / max(len(held.chat), 1),
                       plain, len(held.chat), errors, wrong, called)


def evaluate(engine, held: AgentHeldOut, max_new_tokens: int = 64, guided: bool = True) -> AgentReport:
    """Ask every held-out request with its tools and score the replies in the engine's template's tool format.
    ``guided``: schema-guided calls (the default of chat and the API); False: the model's free text."""
    tool_format = detect_format(engine.tokenizer.chat_template, engine.fmt.name) or "hermes"
    return score(held, tool_replies(engine, held.calls, max_new_tokens, guided=guided),
                 tool_replies(engine, held.chat, max_new_tokens, guided=guided), tool_format)
