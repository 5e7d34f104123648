"""The forgetting guard: did the tuning cost general knowledge?

Before training the base model answers the general probes (eval/probes.py) greedily, batched; after training the
tuned model, still in memory, answers again. Retention = of the probes the base model got right, the share the tuned
model still gets right (only those are asked the second time). The base answers are cached per model under
``~/.cache/tuneforge/guard/`` — the key covers the model files (names, sizes, a hash of the config and tokenizer files
and of each weight file's first and last MiB), the chat template, the probes, the dtype, quantization and device — so
a second run on the same base pays only for the tuned side. Below ``forgetting_threshold`` the run ends with a
warning naming the settings to change."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import TuneforgeError
from tuneforge.eval import probes as probe_mod
from tuneforge.utils import log

MAX_NEW_TOKENS = 32  # the probes' answers are a word or a number, said in the first sentence
BATCH = 24
_EDGE = 1 << 20  # bytes hashed at each end of a weight file


def cache_dir() -> Path:
    from tuneforge.models.load import cache_root

    return cache_root().parent / "guard"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        if path.suffix in (".json", ".jinja", ".txt", ".model") or size <= 2 * _EDGE:
            h.update(f.read())
        else:  # weights: both ends (safetensors' header names every tensor; the tail holds the last values)
            h.update(f.read(_EDGE))
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
    return f"{path.name}:{size}:{h.hexdigest()[:16]}"


def model_key(model_path: str | Path, template_text: str, extra: dict) -> str:
    """The cache key of a base model's answers: its files, the chat template and the decoding set-up."""
    root = Path(model_path)
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")) if root.is_dir() else []
    parts = [_file_digest(p) for p in files] + [template_text, json.dumps(extra, sort_keys=True)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:24]


def ask(model, tokenizer, fmt, questions: list[str], max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy, batched replies of a model in memory (the decoding `tuneforge chat` uses)."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine

    side, was_training = tokenizer.padding_side, model.training
    try:
        engine = ChatEngine.from_loaded(model, tokenizer, fmt)
        return engine.generate([[{"role": "user", "content": q}] for q in questions],
                               GenerateArgs(max_new_tokens=max_new_tokens), batch_size=BATCH)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)


@dataclass
class BaseAnswers:
    probes: probe_mod.ProbeSet
    replies: list[str]
    cached: bool
    seconds: float
    key: str


def base_answers(model, tokenizer, fmt, model_path, probe_file: str | None, extra: dict) -> BaseAnswers:
    """The base model's replies to the probes, from the cache or asked now (and cached)."""
    t0 = time.time()
    ps = probe_mod.load(probe_file)
    key = model_key(model_path, getattr(tokenizer, "chat_template", None) or fmt.name,
                    {**extra, "probes": ps.digest, "max_new_tokens": MAX_NEW_TOKENS})
    path = cache_dir() / f"{key}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("questions") == ps.questions:
                return BaseAnswers(ps, data["replies"], True, time.time() - t0, key)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed
    replies = ask(model, tokenizer, fmt, ps.questions)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model": str(model_path), "questions": ps.questions, "replies": replies},
                              ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
    return BaseAnswers(ps, replies, False, time.time() - t0, key)


def tuned_check(model, tokenizer, fmt, base: BaseAnswers) -> tuple[probe_mod.Retention, list[str], float]:
    """Ask the tuned model the probes the base model got right; the retention and the tuned replies (None-free:
    the base reply stands in for probes not asked, which do not count)."""
    t0 = time.time()
    asked = [i for i, (p, r) in enumerate(zip(base.probes.probes, base.replies)) if p.ok(r)]
    replies = ask(model, tokenizer, fmt, [base.probes.probes[i].question for i in asked]) if asked else []
    tuned = list(base.replies)
    for i, r in zip(asked, replies):
        tuned[i] = r
    # probes the base got wrong are not asked: give them a reply that cannot count for either side
    ret = probe_mod.retention(base.probes, base.replies, tuned)
    return ret, tuned, time.time() - t0


def advice(threshold: float, epochs: float, lr: float, replay_ratio: float) -> str:
    """What to change when retention is below the threshold."""
    replay = (f"raise replay_ratio (now {replay_ratio}) to mix more of the base model's own answers back in"
              if replay_ratio else "mix the base model's own answers back in with replay_ratio 0.5")
    return (f"retention is below forgetting_threshold {threshold:g}: the tuning overwrote general answers the base "
            f"model had. Try fewer num_train_epochs (now {epochs:g}), a lower learning_rate (now {lr:g}), or "
            f"{replay}; forgetting_guard False turns this check off")


def report(ret: probe_mod.Retention, base: BaseAnswers, tuned_seconds: float, threshold: float,
           epochs: float, lr: float, replay_ratio: float) -> dict:
    """The run summary's ``forgetting`` section; logs the line, the lost probes and, below the threshold, the
    warning."""
    below = ret.retention is not None and ret.retention < threshold
    out = {"retention": None if ret.retention is None else round(ret.retention, 4), "kept": ret.kept,
           "base_correct": ret.base_correct, "probes": ret.total, "probe_set": base.probes.source,
           "threshold": threshold, "below_threshold": below, "lost": ret.lost,
           "base_cached": base.cached, "base_seconds": round(base.seconds, 2),
           "tuned_seconds": round(tuned_seconds, 2), "warning": None}
    log.info(f"forgetting guard: {ret.line()} (base answers {'cached' if base.cached else 'asked now'}, "
             f"{base.seconds:.1f} s; tuned {tuned_seconds:.1f} s)")
    for lost in ret.lost:
        log.info(f"  lost: {lost['question']!r} base: {lost['base'][:80]!r} tuned: {lost['tuned'][:80]!r}")
    if below:
        out["warning"] = advice(threshold, epochs, lr, replay_ratio)
        log.warn(f"forgetting guard: {ret.kept}/{ret.base_correct} ({100 * ret.retention:.1f}%) — {out['warning']}")
    return out


GUARDED_STAGES = ("sft", "dpo", "kto", "ppo")  # stages whose result is a chat model to ask


def start(cfg, model_path, model, tokenizer, fmt, dtype) -> BaseAnswers | None:
    """At the run's start, on the freshly loaded base (before any adapter): the base answers, or None where the
    guard is off or does not apply (the reason is logged)."""
    t = cfg.train
    if not t.forgetting_guard:
        return None
    if cfg.finetune.stage not in GUARDED_STAGES:
        log.choice("forgetting_guard=off", f"stage {cfg.finetune.stage} does not train a chat model to ask "
                   f"(the guard runs for {', '.join(GUARDED_STAGES)})")
        return None
    from tuneforge.train import distributed

    if distributed.world_size() > 1:
        log.choice("forgetting_guard=off", "several processes train the model; ask the saved one with "
                   "`tuneforge eval` instead")
        return None
    import torch

    extra = {"dtype": str(dtype), "quantization": cfg.model.quantization_bit, "template": fmt.name,
             "device": "cuda" if torch.cuda.is_available() else "cpu"}
    moved = torch.cuda.is_available() and cfg.model.quantization_bit is None and \
        next(model.parameters()).device.type == "cpu"
    if moved:  # decode on the GPU, then hand the model back where the run expects it
        model.to("cuda")
    try:
        base = base_answers(model, tokenizer, fmt, model_path, t.forgetting_probes, extra)
    except TuneforgeError:
        raise
    except Exception as e:  # noqa: BLE001 — the guard reports on the run; it never fails the training it watches
        log.warn(f"forgetting guard skipped: the base model could not answer its probes ({_first_line(e)}); "
                 "the run trains as asked — check the tuned model with `tuneforge eval` afterwards")
        return None
    finally:
        if moved:
            model.to("cpu")
    right = sum(p.ok(r) for p, r in zip(base.probes.probes, base.replies))
    log.info(f"forgetting guard: the base model answers {right}/{len(base.probes.probes)} probes correctly "
             f"({'cached' if base.cached else f'asked now, {base.seconds:.1f} s'}; {base.probes.source} probes)")
    return base


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def finish(cfg, base: BaseAnswers, model, tokenizer, fmt) -> dict:
    """At the run's end, on the tuned model still in memory: the summary's ``forgetting`` section."""
    try:
        ret, _, seconds = tuned_check(model, tokenizer, fmt, base)
    except Exception as e:  # noqa: BLE001 — as in start: a failed check is reported, the trained model is kept
        log.warn(f"forgetting guard skipped: the tuned model could not answer its probes ({_first_line(e)})")
        return {"skipped": _first_line(e)}
    t = cfg.train
    return report(ret, base, seconds, t.forgetting_threshold, t.num_train_epochs, t.learning_rate,
                  getattr(cfg.data, "replay_ratio", 0.0))
