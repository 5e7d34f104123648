"""Atomic, resumable, pickle-free checkpoints.

A checkpoint folder ``checkpoint-<step>`` holds the trainable weights, the optimiser state (tensors as safetensors,
the rest as JSON), the schedule, the RNG states and the data position. It is written under a temporary name and
renamed when complete, so a folder named ``checkpoint-<step>`` is always whole; anything else is ignored.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tuneforge.compat import ordinary_modes
from tuneforge.errors import TuneforgeError
from tuneforge.utils import atomic, log
from tuneforge.train.guard import check_finite

CKPT = re.compile(r"^checkpoint-(\d+)$")
STATE = "trainer_state.json"
MANIFEST = "manifest.json"  # every other file's size and sha256, written last: a checkpoint with it is whole
DELETING = ".deleting-"  # an old checkpoint is renamed to this prefix before it is deleted (save_total_limit)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    d = Path(output_dir)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_dir() and CKPT.match(p.name) and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(CKPT.match(p.name).group(1)))


def write_manifest(folder: Path) -> Path:
    """``manifest.json``: the size and sha256 of every file under ``folder`` (written last, fsynced)."""
    files = {str(f.relative_to(folder)): {"size": f.stat().st_size, "sha256": atomic.sha256(f)}
             for f in sorted(folder.rglob("*")) if f.is_file() and f.name != MANIFEST}
    return atomic.write_json(folder / MANIFEST, {"files": files}, indent=1)


def verify(folder: Path, hashes: bool = True) -> str | None:
    """None if ``folder`` is a whole checkpoint, else what is wrong with it: every file its manifest lists is
    there with its size (and, with ``hashes``, its sha256). A checkpoint written before manifests existed has its
    JSON files parsed and its safetensors headers read instead."""
    folder = Path(folder)
    if not (folder / STATE).is_file():
        return f"no {STATE}"
    if not (folder / MANIFEST).is_file():
        return _verify_legacy(folder)
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{MANIFEST} is unreadable"
    for name, entry in files.items():
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != entry["size"]:
            return f"{name} has {f.stat().st_size} bytes, the manifest says {entry['size']}"
        if hashes and atomic.sha256(f) != entry["sha256"]:
            return f"{name} does not match its sha256 in the manifest"
    return None


def _verify_legacy(folder: Path) -> str | None:
    from safetensors import safe_open

    for f in sorted(folder.rglob("*")):
        try:
            if f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix == ".safetensors":
                with safe_open(str(f), "pt") as st:
                    st.keys()
        except Exception as e:  # noqa: BLE001 — any unreadable file makes the checkpoint unusable
            return f"{f.relative_to(folder)} is unreadable ({type(e).__name__})"
    return None


def newest_whole(output_dir: str | Path) -> Path | None:
    """The newest checkpoint in ``output_dir`` that :func:`verify` accepts; each newer one that it refuses is
    skipped with a warning that says why (a crash while it was written, a damaged disk)."""
    for ck in reversed(list_checkpoints(output_dir)):
        problem = verify(ck)
        if problem is None:
            return ck
        log.warn(f"skipping {ck}: {problem} — it cannot be resumed from; trying the previous checkpoint")
    return None


def remove_old(output_dir: Path, save_total_limit: int | None) -> None:
    """Delete all but the newest ``save_total_limit`` checkpoints: each is first renamed out of the checkpoint
    namespace (atomic), so a crash during the deletion never leaves a half-deleted ``checkpoint-N``."""
    if not save_total_limit:
        return
    for old in list_checkpoints(output_dir)[:-save_total_limit]:
        doomed = old.with_name(DELETING + old.name)
        os.replace(old, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def clear_leftovers(output_dir: Path) -> None:
    """Remove what a crash left half-done: partly written (``.tmp-checkpoint-N``) and partly deleted checkpoints,
    a partly written final model (``.tmp-final``, adapters.save_trained)."""
    d = Path(output_dir)
    if not d.is_dir():
        return
    for p in d.iterdir():
        if p.is_dir() and (p.name.startswith(DELETING) or p.name.startswith(".tmp-checkpoint-")
                           or p.name == ".tmp-final"):
            log.info(f"removing {p.name}: left by an interrupted checkpoint write or deletion")
            shutil.rmtree(p, ignore_errors=True)


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        meta["state"][str(idx)] = {}
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().contiguous().cpu()
                meta["state"][str(idx)][k] = {"tensor": f"{idx}.{k}"}
            else:
                meta["state"][str(idx)][k] = {"value": v}
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for idx, entry in meta["state"].items():
        state[int(idx)] = {k: tensors[v["tensor"]] if "tensor" in v else v["value"] for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    return tensors, {"python": [py[0], list(py[1]), py[2]]}


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    v, internal, gauss = meta["python"]
    random.setstate((v, tuple(internal), gauss))


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(output_dir: Path, step: int, model: torch.nn.Module, optimizer, schedule,
                    trainer_state: dict[str, Any], save_total_limit: int | None) -> Path:
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f".tmp-checkpoint-{step}"
    weights = trainable_state(model)
    check_finite(weights, f"checkpoint-{step}")  # before anything is written: the older checkpoints stay
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, tmp / "trainable.safetensors")
    if optimizer is None:  # save_only_model: weights only, so the checkpoint cannot be resumed from
        trainer_state = {**trainer_state, "model_only": True}
    else:
        opt_t, opt_meta = _flatten_optimizer(optimizer.state_dict())
        save_file(opt_t, tmp / "optimizer.safetensors")
        rng_t, rng_meta = rng_state()
        save_file(rng_t, tmp / "rng.safetensors")
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta))
        (tmp / "scheduler.json").write_text(json.dumps(schedule.state_dict()))
        (tmp / "rng.json").write_text(json.dumps(rng_meta))
    (tmp / STATE).write_text(json.dumps(trainer_state, indent=2))
    ordinary_modes(tmp)  # safetensors writes 0600 files (compat.py)
    for f in tmp.iterdir():  # make sure the bytes are on disk before the folder gets its final name
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    write_manifest(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    remove_old(output_dir, save_total_limit)
    return final


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, schedule) -> dict[str, Any]:
    """Restore everything saved by :func:`save_checkpoint`; returns the trainer state (step, data position…)."""
    problem = verify(path, hashes=False)  # run_dir.prepare verified the hashes of the checkpoint it chose
    if problem:
        raise TuneforgeError(f"{path} is not a complete checkpoint ({problem})",
                             "pass a checkpoint-<step> folder written by tuneforge, or leave resume_from_checkpoint "
                             "unset to use the latest one in output_dir")
    if json.loads((path / STATE).read_text()).get("model_only"):
        raise TuneforgeError(f"{path} was written with save_only_model (weights only, no optimizer state), so the "
                             f"run cannot resume from it",
                             "start over with --overwrite_output_dir True (and drop save_only_model to get "
                             "resumable checkpoints)")
    weights = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing:
        raise TuneforgeError(f"{path} does not match this model/method: {len(missing)} trainable weights are missing "
                             f"(e.g. {missing[0]})", "resume with the same finetuning settings as the checkpoint")
    with torch.no_grad():
        for n, t in weights.items():
            if n in params:
                params[n].copy_(t.to(params[n].device, params[n].dtype))
    device = next((p.device for p in params.values() if p.requires_grad), torch.device("cpu"))
    opt_state = _unflatten_optimizer(load_file(path / "optimizer.safetensors", device=str(device)),
                                     json.loads((path / "optimizer.json").read_text()))
    optimizer.load_state_dict(opt_state)
    schedule.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    set_rng_state(load_file(path / "rng.safetensors"), json.loads((path / "rng.json").read_text()))
    return json.loads((path / STATE).read_text())
