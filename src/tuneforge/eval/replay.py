"""Replay for any model: before training the base model answers a pool of general prompts (greedy; once per model,
cached like the forgetting guard's base answers), and ``replay_ratio`` of its own answers per training row are mixed
into the training data. Training on the model's own answers anchors its general behaviour without teaching a new
answer style (docs/benchmarks.md compares it with mixing the hand-written ``general`` set).

The built-in pool is the ``general`` dataset's prompts; it shares no question with the forgetting probes (tested)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tuneforge.errors import DataError
from tuneforge.eval import guard
from tuneforge.utils import log

MAX_NEW_TOKENS = 64
ENDS = (".", "!", "?", "。", "！", "？")


def builtin_pool() -> list[str]:
    from tuneforge.data.catalog import load_catalog

    rows = json.loads(load_catalog(None)["general"].path.read_text(encoding="utf-8"))
    return [r["instruction"] + (("\n" + r["input"]) if r.get("input") else "") for r in rows]


def load_pool(path: str | None) -> list[str]:
    """The prompts: the built-in pool, or a JSON list / JSONL file of strings or {"instruction"[, "input"]} rows."""
    if path is None:
        return builtin_pool()
    p = Path(path)
    if not p.is_file():
        raise DataError(f"replay_prompts: no file {p}", "give a JSON or JSONL file of prompts, or leave replay_prompts "
                        "unset for the built-in pool")
    text = p.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else \
            [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as e:
        raise DataError(f"replay_prompts {p}: not valid JSON ({e.msg})",
                        'write a JSON list of prompts, or one per line: {"instruction": "..."}') from None
    out = []
    for i, r in enumerate(rows, 1):
        if isinstance(r, str) and r.strip():
            out.append(r.strip())
        elif isinstance(r, dict) and isinstance(r.get("instruction"), str) and r["instruction"].strip():
            out.append(r["instruction"].strip() + (("\n" + r["input"]) if r.get("input") else ""))
        else:
            raise DataError(f"replay_prompts {p} item {i}: not a prompt",
                            'each item is a string or an object with "instruction"')
    if not out:
        raise DataError(f"replay_prompts {p}: no prompts", "add prompts to the file")
    return out


def trim(reply: str) -> str:
    """A reply cut by max_new_tokens loses its unfinished sentence, so no replay row teaches stopping mid-sentence;
    "" where nothing whole is left."""
    reply = reply.strip()
    if reply.endswith(ENDS):
        return reply
    cut = max(reply.rfind(s) for s in (". ", "! ", "? ", "。", "！", "？"))
    return reply[: cut + 1].strip() if cut > 0 else ""


def answers(model_path, tokenizer, fmt, prompts: list[str], extra: dict, load) -> tuple[list[str], bool, float]:
    """The base model's (trimmed) answers to ``prompts``: cached, or asked now with the model ``load()`` returns."""
    t0 = time.time()
    key = guard.model_key(model_path, getattr(tokenizer, "chat_template", None) or fmt.name,
                          {**extra, "replay": prompts, "max_new_tokens": MAX_NEW_TOKENS})
    path = guard.cache_dir() / f"replay-{key}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["prompts"] == prompts:
                return data["answers"], True, time.time() - t0
        except (OSError, ValueError, KeyError):
            pass
    model = load()
    replies = [trim(r) for r in guard.ask(model, tokenizer, fmt, prompts, MAX_NEW_TOKENS)]
    del model
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model": str(model_path), "prompts": prompts, "answers": replies},
                              ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
    return replies, False, time.time() - t0


def mix(cfg, model_path, tokenizer, fmt, data, load) -> dict:
    """Add ``replay_ratio`` × (training rows) replay rows to ``data.train`` (at most the pool's usable answers; a
    shortfall is reported). Returns the report's ``replay`` section."""
    from tuneforge.data.build import encode_items
    from tuneforge.data.encode import EncodeStats
    from tuneforge.data.schema import Conversation, Message

    d = cfg.data
    prompts = load_pool(d.replay_prompts)
    import torch

    extra = {"quantization": cfg.model.quantization_bit, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    replies, cached, seconds = answers(model_path, tokenizer, fmt, prompts, extra, load)
    usable = [(p, r) for p, r in zip(prompts, replies) if r]
    wanted = round(d.replay_ratio * len(data.train))
    rng = random.Random(cfg.train.seed)
    chosen = rng.sample(usable, min(wanted, len(usable)))
    convs = [Conversation([Message("user", p), Message("assistant", r)], source=f"replay:{i}")
             for i, (p, r) in enumerate(chosen)]
    stats = EncodeStats()
    samples = encode_items(convs, "sft", tokenizer, fmt, d, stats)
    data.train.extend(samples)
    report = {"ratio": d.replay_ratio, "wanted": wanted, "pool": len(prompts), "usable": len(usable),
              "mixed": len(samples), "encode": stats.to_dict(), "cached": cached, "seconds": round(seconds, 2),
              "source": d.replay_prompts or "built-in"}
    log.info(f"replay: {len(samples)} of the base model's own answers mixed in (replay_ratio {d.replay_ratio} × "
             f"{len(data.train) - len(samples)} rows = {wanted}; pool {len(prompts)} prompts, {len(usable)} usable "
             f"answers; {'cached' if cached else f'answered now, {seconds:.1f} s'})")
    if wanted > len(usable):
        log.warn(f"replay: {wanted} rows asked but the pool has {len(usable)} usable answers; mixed {len(samples)} — "
                 "give a larger pool with replay_prompts or lower replay_ratio")
    return report
