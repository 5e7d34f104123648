"""The run folder: resume detection, the saved config, the final artifacts and the run summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config import Config
from tuneforge.errors import TuneforgeError
from tuneforge.train.checkpoint import list_checkpoints
from tuneforge.train.metrics import METRICS
from tuneforge.utils import log

SUMMARY = "run_summary.json"
CONFIG = "config.yaml"


def prepare(cfg: Config) -> tuple[Path, Path | None]:
    """Create the output folder and decide whether (and from where) to resume."""
    t = cfg.train
    out = Path(t.output_dir)
    if t.overwrite_output_dir and out.exists():
        for ck in list_checkpoints(out):
            shutil.rmtree(ck)
        for name in (SUMMARY, METRICS):
            (out / name).unlink(missing_ok=True)
        log.choice(f"starting over in {out}", "overwrite_output_dir=True (old checkpoints and metrics removed)")
    out.mkdir(parents=True, exist_ok=True)
    if t.resume_from_checkpoint:
        ck = Path(t.resume_from_checkpoint)
        if not ck.is_dir():
            raise TuneforgeError(f"resume_from_checkpoint {str(ck)!r}: no such folder",
                                 f"checkpoints in {out}: {[p.name for p in list_checkpoints(out)] or 'none'}")
        return out, ck
    summary = out / SUMMARY
    if summary.is_file() and json.loads(summary.read_text()).get("completed"):
        raise TuneforgeError(f"{out} already holds a finished run ({SUMMARY})",
                             "pass --overwrite_output_dir True to train again there, or choose another output_dir")
    ckpts = list_checkpoints(out)
    if ckpts:
        log.choice(f"resuming from {ckpts[-1]}", f"{out} holds checkpoints (overwrite_output_dir=True starts over)")
        _warn_config_drift(cfg, out)
        return out, ckpts[-1]
    return out, None


def _warn_config_drift(cfg: Config, out: Path) -> None:
    saved = out / CONFIG
    if not saved.is_file():
        return
    old = yaml.safe_load(saved.read_text()) or {}
    new = cfg.to_flat()
    skip = {"resume_from_checkpoint", "overwrite_output_dir"}
    diff = [k for k in new if k in old and old[k] != new[k] and k not in skip]
    if diff:
        log.warn(f"resuming with settings that differ from the checkpoint's run: "
                 + ", ".join(f"{k}: {old[k]!r} → {new[k]!r}" for k in diff))


def save_config(cfg: Config, out: Path) -> Path:
    path = out / CONFIG
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    return path


def write_stopped(out: Path, error: Exception, step: int, skipped: int | None = None) -> Path:
    """The run summary of a run that stopped on an error it cannot step around (train/guard.py): ``completed``
    false, where and why; the resumable checkpoints are left as they are."""
    summary = {"completed": False, "stopped_at_step": step, "reason": getattr(error, "message", str(error))}
    if skipped is not None:
        summary["skipped_steps"] = skipped
    path = out / SUMMARY
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    log.warn(f"run stopped at step {step}; {path} says completed: false")
    return path


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    from tuneforge.models.card import write_card

    write_card(out, summary)  # README.md and a portable adapter base, refreshed with every figure the summary gets
    return path
