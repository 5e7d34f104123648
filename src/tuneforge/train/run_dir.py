"""The run folder: resume detection, the saved config, the final artifacts and the run summary."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config import Config
from tuneforge.errors import TuneforgeError
from tuneforge.train.checkpoint import clear_leftovers, list_checkpoints, newest_whole, verify
from tuneforge.train.metrics import METRICS
from tuneforge.utils import atomic, log

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
    clear_leftovers(out)
    if t.resume_from_checkpoint:
        ck = Path(t.resume_from_checkpoint)
        if not ck.is_dir():
            raise TuneforgeError(f"resume_from_checkpoint {str(ck)!r}: no such folder",
                                 f"checkpoints in {out}: {[p.name for p in list_checkpoints(out)] or 'none'}")
        problem = verify(ck)
        if problem:
            raise TuneforgeError(f"resume_from_checkpoint {str(ck)!r} cannot be resumed from: {problem}",
                                 f"pick another checkpoint ({[p.name for p in list_checkpoints(out)] or 'none'} in "
                                 f"{out}) or leave resume_from_checkpoint unset to use the newest whole one")
        _check_compatible(cfg, out)
        return out, ck
    if _read_summary(out).get("completed"):
        raise TuneforgeError(f"{out} already holds a finished run ({SUMMARY})",
                             "pass --overwrite_output_dir True to train again there, or choose another output_dir")
    ck = newest_whole(out)
    if ck is not None:
        log.choice(f"resuming from {ck}", f"{out} holds checkpoints (overwrite_output_dir=True starts over)")
        _check_compatible(cfg, out)
        _warn_config_drift(cfg, out)
        return out, ck
    return out, None


def _read_summary(out: Path) -> dict:
    """The run summary, or {} when there is none; one a crash left unreadable is set aside (renamed, logged)."""
    path = out / SUMMARY
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(summary, dict):
            return summary
    except (ValueError, UnicodeDecodeError):
        pass
    aside = path.with_name(f"{SUMMARY}.unreadable")
    os.replace(path, aside)
    log.warn(f"{path} was unreadable (a write cut short by a crash?): set aside as {aside.name}; the run goes on "
             f"from its checkpoints")
    return {}


# Settings a checkpoint's weights depend on: resuming with another value cannot load them.
SHAPE_KEYS = ("model_name_or_path", "stage", "finetuning_type", "lora_rank", "lora_target", "additional_target",
              "use_dora", "freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules",
              "num_virtual_tokens", "oft_block_size", "oft_rank", "quantization_bit", "use_llama_pro")


def _saved_flat(out: Path) -> dict | None:
    """The saved run's config.yaml as flat LLaMA-Factory names (None: none there, or unreadable)."""
    saved = out / CONFIG
    if not saved.is_file():
        return None
    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(old, dict):
        return None
    if all(isinstance(v, dict) for v in old.values()):  # the grouped layout config.yaml is saved in
        old = {k: v for group in old.values() for k, v in group.items()}
    return old


def _check_compatible(cfg: Config, out: Path) -> None:
    """Refuse to resume when a setting the checkpoint's weights depend on differs from the saved config's."""
    flat = _saved_flat(out)
    if flat is None:
        return
    new = cfg.to_flat()
    diff = [k for k in SHAPE_KEYS if k in flat and k in new and flat[k] != new[k]]
    if diff:
        raise TuneforgeError(
            f"{out} holds checkpoints of another run: " + ", ".join(f"{k} {flat[k]!r} there, {new[k]!r} now"
                                                                    for k in diff)
            + " — its weights cannot be resumed with these settings",
            f"use the same {', '.join(diff)} to resume, --overwrite_output_dir True to start over there, or another "
            f"output_dir")


def _warn_config_drift(cfg: Config, out: Path) -> None:
    old = _saved_flat(out)
    if old is None:
        return
    new = cfg.to_flat()
    skip = {"resume_from_checkpoint", "overwrite_output_dir"}
    diff = [k for k in new if k in old and old[k] != new[k] and k not in skip]
    if diff:
        log.warn(f"resuming with settings that differ from the checkpoint's run: "
                 + ", ".join(f"{k}: {old[k]!r} → {new[k]!r}" for k in diff))


def save_config(cfg: Config, out: Path) -> Path:
    return atomic.write_text(out / CONFIG, cfg.to_yaml())


def write_stopped(out: Path, error: Exception, step: int, skipped: int | None = None) -> Path:
    """The run summary of a run that stopped on an error it cannot step around (train/guard.py): ``completed``
    false, where and why; the resumable checkpoints are left as they are."""
    summary = {"completed": False, "stopped_at_step": step, "reason": getattr(error, "message", str(error))}
    if skipped is not None:
        summary["skipped_steps"] = skipped
    path = atomic.write_json(out / SUMMARY, summary, indent=2, ensure_ascii=False)
    log.warn(f"run stopped at step {step}; {path} says completed: false")
    return path


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = atomic.write_json(out / SUMMARY, summary, indent=2, ensure_ascii=False)
    from tuneforge.models.card import write_card

    write_card(out, summary)  # README.md and a portable adapter base, refreshed with every figure the summary gets
    return path
