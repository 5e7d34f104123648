"""Optimisers and learning-rate schedules."""

from __future__ import annotations

import math

import torch

from tuneforge.config.schema import TrainArgs
from tuneforge.utils import log


def param_groups(model: torch.nn.Module, train: TrainArgs, cfg=None) -> list[dict]:
    """Decay / no-decay groups; the method's record may scale a parameter's learning rate (LoRA+: the B matrices)."""
    from tuneforge.config.registry import method

    rec = method(cfg.finetune.finetuning_type) if cfg is not None else None
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "bias" in name or "norm" in name
        scale = (rec.lr_scale(name, cfg) if rec is not None else None) or 1.0
        groups.setdefault((no_decay, scale), []).append(p)
    out = []
    for (no_decay, scale), params in sorted(groups.items()):
        out.append({"params": params, "lr": train.learning_rate * scale,
                    "weight_decay": 0.0 if no_decay else train.weight_decay})
    for scale in sorted({s for _, s in groups if s != 1.0}):
        n = sum(len(v) for (_, s), v in groups.items() if s == scale)
        log.choice(f"lr={train.learning_rate * scale:g} for {n} parameter tensors (× {scale:g})",
                   f"{rec.name}: {rec.lr_scale.__doc__.strip().splitlines()[0]}")
    return out


def build_optimizer(model: torch.nn.Module, train: TrainArgs, cfg=None) -> torch.optim.Optimizer:
    """The optimiser for ``model``'s trainable parameters; ``cfg`` (the run's Config) lets the method's record scale
    learning rates."""
    if train.use_muon:  # LLaMA-Factory's optimizer switches (train/optimizers.py)
        from tuneforge.train.optimizers import muon_optimizer

        return muon_optimizer(model, train)
    if train.use_adam_mini:
        from tuneforge.train.optimizers import adam_mini_optimizer

        return adam_mini_optimizer(model, train)
    if train.use_galore or train.use_apollo:
        from tuneforge.train.optimizers import low_rank_optimizer

        return low_rank_optimizer(model, train, train)
    groups = param_groups(model, train, cfg)
    if train.optim == "sgd":
        return torch.optim.SGD(groups, lr=train.learning_rate)
    if train.optim in ("adagrad", "rmsprop", "adafactor"):
        from tuneforge.train.optimizers import torch_optimizer

        return torch_optimizer(groups, train)
    if train.optim in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"):
        return _bnb_adamw(groups, train)
    fused = train.optim == "adamw_torch_fused"
    if fused and not torch.cuda.is_available():
        log.choice("optim=adamw_torch", "adamw_torch_fused needs a CUDA device")
        fused = False
    return torch.optim.AdamW(groups, lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2),
                             eps=train.adam_epsilon, fused=fused or None)


def _bnb_adamw(groups: list[dict], train: TrainArgs) -> torch.optim.Optimizer:
    """AdamW with 8-bit block-quantized states (2 bytes/parameter instead of 8); paged: states can spill to CPU."""
    from tuneforge.errors import ConfigError

    if not torch.cuda.is_available():
        raise ConfigError([f"optim={train.optim} needs a CUDA device (bitsandbytes' 8-bit optimizers); "
                           f"use --optim adamw_torch on this machine"])
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ConfigError([f"optim={train.optim} needs the bitsandbytes package: pip install bitsandbytes "
                           f"(or use --optim adamw_torch_fused)"]) from None
    cls = bnb.optim.PagedAdamW8bit if train.optim == "paged_adamw_8bit" else bnb.optim.AdamW8bit
    log.choice(f"optim={train.optim}", "asked; optimizer states are 8-bit (bitsandbytes)")
    return cls(groups, lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2), eps=train.adam_epsilon)


def warmup_steps(train: TrainArgs, total_steps: int) -> int:
    return train.warmup_steps if train.warmup_steps > 0 else math.ceil(train.warmup_ratio * total_steps)


def lr_factor(kind: str, step: int, warmup: int, total: int, kwargs: dict | None = None,
              lr_init: float = 1.0) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based), as transformers' schedules."""
    if kind not in ("linear", "cosine", "constant", "constant_with_warmup"):
        from tuneforge.train.schedules import factor

        return factor(kind, step, warmup, total, kwargs or {}, lr_init)
    if kind != "constant" and step < warmup:
        return float(step) / float(max(1, warmup))
    if kind in ("constant", "constant_with_warmup"):
        return 1.0
    progress = float(step - warmup) / float(max(1, total - warmup))
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))  # cosine


class Schedule:
    """A LambdaLR-equivalent schedule whose whole state is two numbers (so checkpoints stay pickle-free)."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int,
                 kwargs: dict | None = None):
        self.optimizer, self.kind, self.warmup, self.total = optimizer, kind, warmup, total
        self.kwargs = dict(kwargs or {})  # lr_scheduler_kwargs (train/schedules.py)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.lr_init = optimizer.defaults.get("lr", self.base_lrs[0] if self.base_lrs else 1.0)
        self.step_count = 0
        self._apply()

    def _apply(self) -> None:
        f = lr_factor(self.kind, self.step_count, self.warmup, self.total, self.kwargs, self.lr_init)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * f

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "base_lrs": self.base_lrs, "kind": self.kind,
                "warmup": self.warmup, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()
