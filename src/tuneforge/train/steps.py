"""What the training loop (train/loop.py) and PPO's (train/ppo_loop.py) share: the optimiser and its schedule, one
optimiser step, resuming, the bookkeeping of each step (metrics, progress, checkpoints) and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from tuneforge.config.schema import TrainArgs
from tuneforge.train import dist_checkpoint, distributed
from tuneforge.train.guard import NonFiniteGuard
from tuneforge.train.metrics import MetricsWriter, Progress
from tuneforge.train.optim import Schedule, build_optimizer, warmup_steps
from tuneforge.utils import log
from tuneforge.utils.system import peak_memory_mb


@dataclass
class LoopResult:
    steps: int
    epochs: float
    tokens: int  # non-padding tokens processed
    trained_tokens: int  # supervised tokens
    seconds: float
    final_loss: float | None
    eval_loss: float | None
    resumed_from: str | None
    extra: dict = field(default_factory=dict)  # stage-specific figures for the run summary (rewards, KL, …)


def optimizer_and_schedule(model: torch.nn.Module, cfg, total: int) -> tuple[torch.optim.Optimizer, Schedule]:
    """The optimiser over ``model``'s trainable parameters (the method's record may scale learning rates) and its
    learning-rate schedule over ``total`` optimiser steps."""
    optimizer = build_optimizer(model, cfg.train, cfg)
    return optimizer, Schedule(optimizer, cfg.train.lr_scheduler_type, warmup_steps(cfg.train, total), total,
                               cfg.train.lr_scheduler_kwargs)


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def optimizer_step(accelerator, params: list, optimizer, max_grad_norm: float, guard: NonFiniteGuard | None = None,
                   step: int = 0, loss: float | None = None) -> tuple[float, bool]:
    """Clip the gradients to ``max_grad_norm`` (0: measure only) on their global norm over every process, step,
    clear them; returns (the gradient norm, whether the optimiser stepped). With a ``guard`` (train/guard.py) a
    non-finite ``loss`` or gradient norm skips the step: the gradients are cleared and the optimiser does not move.
    The loss and the norm are the same on every process (all-reduced), so every process decides alike. DeepSpeed
    steps inside its backward and clips there (train/distributed.py), so under it the guard can only count and
    stop; float16's loss scaler skips its own overflow steps, so an infinite norm is its business, not a skip."""
    grad_norm = distributed.clip_and_norm(accelerator, params, max_grad_norm)
    scaler = getattr(accelerator, "scaler", None)
    if guard is not None and not guard.allows(step, loss, None if scaler is not None else grad_norm):
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # the clip unscaled the gradients: close the scaler's step (it lowers its scale)
            scaler.update()
        return grad_norm, False
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, True


def resume_from(resume: Path | None, model, optimizer, schedule, state: dict, accelerator) -> dict:
    """``state`` updated from the checkpoint at ``resume`` (weights, optimiser, schedule and RNG restored), in any
    engine and world size (train/dist_checkpoint.py); sharded engines need it after ``accelerator.prepare``."""
    if resume is not None:
        state.update(dist_checkpoint.load(accelerator, resume, model, optimizer, schedule))
        log.info(f"resumed from {resume} at step {state['step']}")
    return state


class Bookkeeping:
    """Metrics (metrics.jsonl, TensorBoard), the progress display and the checkpoint cadence of one run."""

    def __init__(self, out: Path, args: TrainArgs, total: int, start_step: int, accelerator, skipped: int = 0):
        self.out, self.args, self.total, self.main = out, args, total, accelerator.is_main_process
        self.accelerator = accelerator
        self.metrics = MetricsWriter(out, args.report_to, start_step, enabled=self.main)
        self.progress = Progress(total, start_step, enabled=self.main)
        self.eval_every = args.eval_steps or args.logging_steps
        self.guard = NonFiniteGuard(args.nonfinite_patience, on_stop=self.stopped)
        self.guard.skipped = skipped  # skipped steps before the checkpoint resumed from

    def stopped(self, step: int, error: Exception) -> None:
        """The guard stopped the run at ``step``: close the metrics and say so in the run summary (rank 0)."""
        self.close()
        if self.main:
            from tuneforge.train import run_dir

            run_dir.write_stopped(self.out, error, step, self.guard.skipped)

    def log_due(self, step: int) -> bool:
        return step % self.args.logging_steps == 0 or step == self.total

    def eval_due(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.total

    def record(self, step: int, record: dict | None) -> None:
        """Write ``record`` (if any) and move the progress display to ``step`` (a record with a loss is shown)."""
        if record:
            self.metrics.write(record)
        self.progress.update(step, record if record and "loss" in record else None)

    def checkpoint(self, step: int, model, optimizer, schedule, state: dict) -> None:
        """A resumable checkpoint every save_steps (not at the last step: the final save follows); every rank takes
        part (train/dist_checkpoint.py)."""
        if self.args.save_steps and step % self.args.save_steps == 0 and step < self.total:
            dist_checkpoint.save(self.accelerator, self.out, step, model,
                                 None if self.args.save_only_model else optimizer, schedule,
                                 {**state, "step": step, "total_steps": self.total,
                                  "skipped_steps": self.guard.skipped,
                                  "peak_memory_mb": peak_memory_mb()}, self.args.save_total_limit)

    def close(self) -> None:
        self.progress.close()
        self.metrics.close()
