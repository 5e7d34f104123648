"""Experiment trackers beyond TensorBoard (``report_to``): Weights & Biases through its own client. metrics.jsonl is
always written; a tracker receives the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.utils import log


def wanted(report_to: str) -> set[str]:
    names = {n.strip() for n in (report_to or "none").split(",")}
    return {"tensorboard", "wandb"} if "all" in names else names - {"none", ""}


class WandbTracker:
    """One W&B run per training run, named after output_dir, written under output_dir/wandb. The project, entity
    and mode come from W&B's own settings (WANDB_PROJECT, WANDB_MODE=offline, `wandb login`)."""

    def __init__(self, output_dir: Path):
        import wandb

        self.run = wandb.init(name=output_dir.name, dir=str(output_dir), config={"output_dir": str(output_dir)})
        log.choice("report_to=wandb", f"W&B run {self.run.name} ({getattr(self.run.settings, 'mode', 'online')})")

    def log(self, record: dict[str, Any]) -> None:
        from tuneforge.train.metrics import finite_scalars

        values = {(k if k.startswith("eval") else f"train/{k}"): v for k, v in finite_scalars(record).items()
                  if k != "step"}
        self.run.log(values, step=int(record["step"]))

    def close(self) -> None:
        self.run.finish()


def open_trackers(output_dir: Path, report_to: str) -> list:
    return [WandbTracker(output_dir)] if "wandb" in wanted(report_to) else []
