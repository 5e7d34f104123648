"""Metrics: ``metrics.jsonl`` (one JSON object per log step), optional TensorBoard, progress display, loss plot."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from tuneforge.utils import atomic, log
from tuneforge.utils.atomic import read_jsonl

METRICS = "metrics.jsonl"


def finite_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of ``record`` a tracker can plot: no NaN/Inf (the guard's skipped steps), no text, no None."""
    return {k: v for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class MetricsWriter:
    def __init__(self, output_dir: Path, report_to: str, resume_step: int = 0, enabled: bool = True):
        self.path = output_dir / METRICS
        self.enabled = enabled
        self.tb = None
        self.trackers: list = []
        if not enabled:
            return
        if self.path.exists():  # keep only what happened before the step we resume from
            rows, bad = read_jsonl(self.path)
            if bad:  # a crash mid-append leaves a partial last line
                log.warn(f"{self.path}: set aside {len(bad)} unreadable line(s) (line {', '.join(map(str, bad))}: "
                         f"a write cut short by a crash); the steps after the checkpoint are logged again")
            atomic.write_text(self.path, "".join(atomic.dumps(r) + "\n" for r in rows
                                                 if r.get("step", 0) <= resume_step))
        from tuneforge.train.trackers import open_trackers, wanted

        if "tensorboard" in wanted(report_to):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(output_dir / "runs"))
        self.trackers = open_trackers(output_dir, report_to)  # wandb

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        atomic.append_line(self.path, atomic.dumps(record))  # strict JSON: a NaN is written as null
        if self.tb is not None:
            for k, v in finite_scalars(record).items():
                if k != "step":
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
                TimeElapsedColumn

            # ETA from the average step time of this run, not rich's TimeRemainingColumn: that one estimates speed
            # over the last 30 s only and shows -:--:-- whenever a step takes longer (CPU runs, big models).
            self.bar = RichProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                    TextColumn("ETA {task.fields[eta]}"), console=log.console, transient=False)
            self.task = self.bar.add_task("train", total=total_steps, completed=start_step, info="", eta="?")
            self.bar.start()
        self.enabled = enabled

    def eta(self, step: int) -> float:
        done = step - self.start_step
        return (time.time() - self.t0) / done * (self.total - step) if done > 0 else float("nan")

    def eta_text(self, step: int) -> str:
        eta = self.eta(step)
        return fmt_duration(eta) if not math.isnan(eta) else "?"

    def update(self, step: int, record: dict[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            info = ""
            if record:
                info = f"loss {record['loss']:.4f} · {record['tokens_per_s']:.0f} tok/s"
            self.bar.update(self.task, completed=step, eta=self.eta_text(step), **({"info": info} if record else {}))
        if record:
            msg = (f"step {step}/{self.total} · epoch {record['epoch']:.2f} · loss {record['loss']:.4f} · "
                   f"lr {record['lr']:.2e} · grad_norm {record['grad_norm']:.3f} · "
                   f"{record['tokens_per_s']:.0f} tok/s · ETA {self.eta_text(step)}")
            log.info(msg)  # through the log handler (above the live bar on a terminal), not console.log's file:line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def smoothing_weight(points: int) -> float:
    """The EMA weight for a curve of ``points`` values: a time constant of a tenth of the run, at most 10 points
    (TensorBoard's 0.9). A fixed 0.9 lags a short run by most of its length — on 8 points the "smoothed" curve ended
    far above the raw loss; under 20 points nothing is smoothed."""
    span = min(10.0, points / 10)
    return 0.0 if span <= 2 else 1 - 1 / span


def smooth(values: list[float], weight: float | None = None) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's), weight by :func:`smoothing_weight`."""
    weight = smoothing_weight(len(values)) if weight is None else weight
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
    rows = read_jsonl(path)[0]
    written = []
    for key, fname in (("loss", "training_loss.png"), ("eval_loss", "eval_loss.png")):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if not pts:
            continue
        steps, vals = zip(*pts)
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        ax.plot(steps, vals, color="#9ecae1", alpha=0.8, label="raw")
        weight = smoothing_weight(len(vals))
        if weight > 0:
            ax.plot(steps, smooth(list(vals), weight), color="#08519c", label=f"smoothed (EMA {weight:.2f})")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(f"{key} of {output_dir.name}")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        tmp = output_dir / f".{fname}.tmp.png"  # written whole, then renamed (a crash keeps the old plot)
        fig.savefig(tmp)
        os.replace(tmp, output_dir / fname)
        plt.close(fig)
        written.append(output_dir / fname)
    return written
