"""Metrics: ``metrics.jsonl`` (one JSON object per log step), optional TensorBoard, progress display, loss plot."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tuneforge.utils import log

METRICS = "metrics.jsonl"


class MetricsWriter:
    def __init__(self, output_dir: Path, report_to: str, resume_step: int = 0, enabled: bool = True):
        self.path = output_dir / METRICS
        self.enabled = enabled
        self.tb = None
        self.trackers: list = []
        if not enabled:
            return
        if self.path.exists():  # keep only what happened before the step we resume from
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        from tuneforge.train.trackers import open_trackers, wanted

        if "tensorboard" in wanted(report_to):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(output_dir / "runs"))
        self.trackers = open_trackers(output_dir, report_to)  # wandb

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}" if not k.startswith("eval") else k, v, record["step"])
            self.tb.flush()
        for tracker in self.trackers:
            tracker.log(record)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        for tracker in self.trackers:
            tracker.close()


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """A progress bar with ETA and trained tokens/s on a terminal; plain log lines otherwise."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool = True):
        self.total, self.start_step = total_steps, start_step
        self.t0 = time.time()
        self.bar = None
        if enabled and log.is_tty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeRemainingColumn

            self.bar = RichProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                    console=log.console, transient=False)
            self.task = self.bar.add_task("train", total=total_steps, completed=start_step, info="")
            self.bar.start()
        self.enabled = enabled

    def eta(self, step: int) -> float:
        done = step - self.start_step
        return (time.time() - self.t0) / done * (self.total - step) if done > 0 else float("nan")

    def update(self, step: int, record: dict[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            info = ""
            if record:
                info = f"loss {record['loss']:.4f} · {record['tokens_per_s']:.0f} tok/s"
            self.bar.update(self.task, completed=step, **({"info": info} if record else {}))
        if record:
            eta = self.eta(step)
            msg = (f"step {step}/{self.total} · epoch {record['epoch']:.2f} · loss {record['loss']:.4f} · "
                   f"lr {record['lr']:.2e} · grad_norm {record['grad_norm']:.3f} · "
                   f"{record['tokens_per_s']:.0f} tok/s · ETA {fmt_duration(eta) if not math.isnan(eta) else '?'}")
            if self.bar is not None:
                self.bar.console.log(msg)
            else:
                log.info(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard-style exponential moving average with bias correction."""
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** n))
    return out


def plot_loss(output_dir: Path) -> list[Path]:
    """Write training_loss.png (raw and smoothed) and eval_loss.png if there was evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = output_dir / METRICS
    if not path.exists():
        return []
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    written = []
    for key, fname in (("loss", "training_loss.png"), ("eval_loss", "eval_loss.png")):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if not pts:
            continue
        steps, vals = zip(*pts)
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        ax.plot(steps, vals, color="#9ecae1", alpha=0.8, label="raw")
        if len(vals) > 2:
            ax.plot(steps, smooth(list(vals)), color="#08519c", label="smoothed")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(f"{key} of {output_dir.name}")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(output_dir / fname)
        plt.close(fig)
        written.append(output_dir / fname)
    return written
