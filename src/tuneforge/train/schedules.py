"""The learning-rate schedules of transformers' ``get_scheduler`` beyond linear/cosine/constant, as pure functions of
the step (so the schedule's state stays two numbers and checkpoints stay pickle-free). Each follows transformers'
formula for the same name (tests compare them step by step), with its options from ``lr_scheduler_kwargs``."""

from __future__ import annotations

import math

from tuneforge.errors import ConfigError

KWARGS = {
    "cosine_with_restarts": {"num_cycles"},
    "polynomial": {"lr_end", "power"},
    "inverse_sqrt": {"timescale"},
    "cosine_with_min_lr": {"num_cycles", "min_lr", "min_lr_rate"},
    "cosine_warmup_with_min_lr": {"num_cycles", "min_lr", "min_lr_rate", "warmup_lr_rate"},
    "warmup_stable_decay": {"num_decay_steps", "num_stable_steps", "warmup_type", "decay_type", "min_lr_ratio",
                            "num_cycles"},
}
SHAPES = ("linear", "cosine", "1-sqrt")


def check(kind: str, kwargs: dict) -> list[str]:
    """Problems with ``lr_scheduler_kwargs`` for ``kind`` (empty if fine)."""
    allowed = KWARGS.get(kind, set())
    p = [f"lr_scheduler_kwargs {k!r} does not apply to lr_scheduler_type {kind}"
         + (f" (it takes {', '.join(sorted(allowed))})" if allowed else " (it takes none)")
         for k in kwargs if k not in allowed]
    for k, v in kwargs.items():
        if k in allowed and k not in ("warmup_type", "decay_type"):
            try:
                float(v)
            except (TypeError, ValueError):
                p.append(f"lr_scheduler_kwargs {k}={v!r}: expected a number")
    for k in ("warmup_type", "decay_type"):
        if k in kwargs and str(kwargs[k]) not in SHAPES:
            p.append(f"lr_scheduler_kwargs {k}={kwargs[k]!r}: one of {', '.join(SHAPES)}")
    if kind in ("cosine_with_min_lr", "cosine_warmup_with_min_lr"):
        if ("min_lr" in kwargs) == ("min_lr_rate" in kwargs):
            p.append(f"lr_scheduler_type {kind} needs exactly one of min_lr or min_lr_rate in lr_scheduler_kwargs, "
                     f"e.g. --lr_scheduler_kwargs min_lr_rate=0.1")
    if kind == "warmup_stable_decay" and "num_decay_steps" not in kwargs:
        p.append("lr_scheduler_type warmup_stable_decay needs num_decay_steps in lr_scheduler_kwargs, e.g. "
                 "--lr_scheduler_kwargs num_decay_steps=100")
    return p


def factor(kind: str, step: int, warmup: int, total: int, kwargs: dict, lr_init: float) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` for the schedules named in KWARGS."""
    problems = check(kind, kwargs)
    if problems:
        raise ConfigError(problems)
    kw = {k: (v if k in ("warmup_type", "decay_type") else float(v)) for k, v in kwargs.items()}
    if kind == "inverse_sqrt":
        timescale = kw.get("timescale") or warmup or 10_000
        if step < warmup:
            return step / max(1, warmup)
        return 1.0 / math.sqrt((step + timescale - warmup) / timescale)
    if kind == "cosine_warmup_with_min_lr":
        rate = kw["min_lr_rate"] if "min_lr_rate" in kw else kw["min_lr"] / lr_init
        if step < warmup:
            if "warmup_lr_rate" not in kw:
                return (step + 1.0) / max(1.0, warmup)
            w = kw["warmup_lr_rate"]
            return w + (1.0 - w) * step / max(1, warmup - 1)
        progress = (step - warmup + 1.0) / max(1.0, total - warmup)
        f = 0.5 * (1.0 + math.cos(math.pi * kw.get("num_cycles", 0.5) * 2.0 * progress))
        return max(0.0, f * (1 - rate) + rate)
    if kind == "warmup_stable_decay":
        return _wsd(step, warmup, total, kw)
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((kw.get("num_cycles", 1.0) * progress) % 1.0))))
    if kind == "polynomial":
        lr_end, power = kw.get("lr_end", 1e-7), kw.get("power", 1.0)
        if step > total:
            return lr_end / lr_init
        return ((lr_init - lr_end) * (1 - (step - warmup) / max(1, total - warmup)) ** power + lr_end) / lr_init
    if kind == "cosine_with_min_lr":
        rate = kw["min_lr_rate"] if "min_lr_rate" in kw else kw["min_lr"] / lr_init
        f = 0.5 * (1.0 + math.cos(math.pi * kw.get("num_cycles", 0.5) * 2.0 * progress))
        return max(0.0, f * (1 - rate) + rate)
    raise ConfigError([f"unknown lr_scheduler_type {kind!r}"])


def _shape(kind: str, progress: float, rising: bool) -> float:
    if kind == "linear":
        return progress if rising else 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * progress)) if rising else None  # decay: handled by the caller
    return 1.0 - math.sqrt(1.0 - progress) if rising else 1.0 - math.sqrt(progress)


def _wsd(step: int, warmup: int, total: int, kw: dict) -> float:
    """Warmup, stable, decay (transformers' get_wsd_schedule); the stable phase fills the steps the others leave."""
    lo = kw.get("min_lr_ratio", 0.0)
    decay_steps = int(kw["num_decay_steps"])
    stable = int(kw["num_stable_steps"]) if "num_stable_steps" in kw else total - warmup - decay_steps
    if step < warmup:
        f = _shape(kw.get("warmup_type", "linear"), step / max(1, warmup), rising=True)
        return max(0.0, f * (1.0 - lo) + lo)
    if step < warmup + stable:
        return 1.0
    if step < warmup + stable + decay_steps:
        progress = (step - warmup - stable) / max(1, decay_steps)
        kind = kw.get("decay_type", "cosine")
        if kind == "cosine":
            f = 0.5 * (1.0 + math.cos(math.pi * kw.get("num_cycles", 0.5) * 2.0 * progress))
        else:
            f = _shape(kind, progress, rising=False)
        return max(0.0, f * (1.0 - lo) + lo)
    return lo
