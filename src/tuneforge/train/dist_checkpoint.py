"""Checkpoints that every rank takes part in (several processes, FSDP2, DeepSpeed), pickle-free and readable at any
world size — on one process too.

A multi-process ``checkpoint-<step>`` folder holds the same JSON files as a one-process one (``trainer_state.json``,
``scheduler.json``), the optimizer's parameter groups (``optimizer.json``), each rank's RNG state and a ``dcp/``
folder written by torch distributed checkpoint (DCP) in its Hugging Face safetensors layout: every rank writes its
own shard of the trainable weights and of the optimizer states (FSDP2: the DTensor shards; DDP and DeepSpeed: each
whole tensor once), with the offsets in the safetensors headers. DCP's default layout pickles its metadata; this one
reads everything from the safetensors headers, so loading runs no pickle. Keys are the parameter names of the model
(``model::<name>``, ``optim::<name>::<state>``), so a checkpoint loads into another engine or world size: DCP reshards
on load. The folder is written under a temporary name and renamed by rank 0 once every rank has finished its part.
One-process runs keep ``train/checkpoint.py``'s layout; both layouts load everywhere (:func:`load`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tuneforge.errors import TuneforgeError
from tuneforge.train import checkpoint as single
from tuneforge.train.distributed import DEEPSPEED, SINGLE, engine_of, named_params
from tuneforge.utils import log

DCP_DIR = "dcp"


def is_distributed_checkpoint(path: Path) -> bool:
    return (Path(path) / DCP_DIR).is_dir()


def _raw_optimizer(optimizer):
    """The torch optimizer under Accelerate's wrapper (for DeepSpeed: the engine's optimizer)."""
    return getattr(optimizer, "optimizer", optimizer)


def _barrier(accelerator) -> None:
    accelerator.wait_for_everyone()


# ---- the tensors ------------------------------------------------------------------------------------------------

def _flat_state(accelerator, model: torch.nn.Module, optimizer) -> dict[str, torch.Tensor]:
    """``model::<name>`` and ``optim::<name>::<key>`` tensors of the trainable weights (this rank's shards, or
    whole tensors). A fresh optimizer gets zero states first, so the same call builds the template to load into."""
    names = {n for n, p in named_params(model) if p.requires_grad}
    if engine_of(accelerator).name == DEEPSPEED:
        from tuneforge import compat

        if optimizer is not None:  # a fresh run has no optimizer states before its step 1
            why = compat.deepspeed_init_optimizer_states(_raw_optimizer(optimizer))
            if why:
                raise TuneforgeError(why, "resume with fsdp or DDP, which read the same checkpoint")
        return _deepspeed_flat(model, names, with_optimizer=optimizer is not None)
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
    )

    opts = StateDictOptions(ignore_frozen_params=True, strict=False)
    out = {f"model::{k}": v for k, v in get_model_state_dict(model, options=opts).items() if k in names}
    if optimizer is None:
        return out
    osd = get_optimizer_state_dict(model, _raw_optimizer(optimizer), options=opts)
    for fqn, entry in osd["state"].items():
        for k, v in entry.items():
            if torch.is_tensor(v):
                out[f"optim::{fqn}::{k}"] = v
    return out


def _param_groups(accelerator, model, optimizer) -> list[dict]:
    if engine_of(accelerator).name == DEEPSPEED:
        groups = _raw_optimizer(optimizer).param_groups
        return [{k: v for k, v in g.items() if k != "params" and _jsonable(v)} for g in groups]
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    osd = get_optimizer_state_dict(model, _raw_optimizer(optimizer),
                                   options=StateDictOptions(ignore_frozen_params=True, strict=False))
    return [{k: v for k, v in g.items() if _jsonable(v)} for g in osd["param_groups"]]


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _deepspeed_flat(model, names: set[str], with_optimizer: bool = True) -> dict[str, torch.Tensor]:
    """DeepSpeed: the full fp32 master weights and Adam moments of each trainable parameter, through DeepSpeed's
    own tensor-fragment API (collective in ZeRO-3); every rank holds the same whole tensors."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    out: dict[str, torch.Tensor] = {}
    for n, p in named_params(model):
        if n not in names:
            continue
        out[f"model::{n}"] = safe_get_full_fp32_param(p).detach().cpu()
        for key in ("exp_avg", "exp_avg_sq") if with_optimizer else ():
            t = safe_get_full_optimizer_state(p, key)
            if t is not None:
                out[f"optim::{n}::{key}"] = t.detach().cpu()
    return out


def _deepspeed_step(optimizer) -> int:
    base = getattr(_raw_optimizer(optimizer), "optimizer", None)
    for st in (getattr(base, "state", None) or {}).values():
        if "step" in st:
            return int(st["step"])
    return 0


def _apply_flat(accelerator, model, optimizer, flat: dict[str, torch.Tensor], groups: list[dict], step: int) -> None:
    names = [n for n, p in named_params(model) if p.requires_grad]
    if engine_of(accelerator).name == DEEPSPEED:
        from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

        import deepspeed

        params = dict(named_params(model))
        for n in names:
            p, value = params[n], flat[f"model::{n}"]
            safe_set_full_fp32_param(p, value)  # the fp32 master …
            with deepspeed.zero.GatheredParameters([p], modifier_rank=0):  # … and the module's own (16-bit) copy
                if accelerator.is_main_process or not hasattr(p, "ds_id"):
                    p.data.copy_(value.to(p.device, p.dtype))
            for key in ("exp_avg", "exp_avg_sq"):
                if f"optim::{n}::{key}" in flat:
                    safe_set_full_optimizer_state(params[n], flat[f"optim::{n}::{key}"], key)
        base = getattr(_raw_optimizer(optimizer), "optimizer", None)
        for st in (getattr(base, "state", None) or {}).values():
            if "step" in st:
                st["step"] = torch.tensor(float(step)) if torch.is_tensor(st["step"]) else step
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, set_model_state_dict, set_optimizer_state_dict,
    )

    opts = StateDictOptions(ignore_frozen_params=True, strict=False)
    set_model_state_dict(model, {n: flat[f"model::{n}"] for n in names}, options=opts)
    state: dict[str, dict] = {}
    for k, v in flat.items():
        if k.startswith("optim::"):
            _, fqn, key = k.split("::")
            state.setdefault(fqn, {})[key] = v
    live = _raw_optimizer(optimizer).param_groups
    by_position = [dict(g) for g in groups] if len(groups) == len(live) else [{} for _ in live]
    param_groups = []
    for saved, g in zip(by_position, live):
        names_in_group = _group_fqns(model, g)
        param_groups.append({**{k: v for k, v in g.items() if k != "params"},
                             **{k: v for k, v in saved.items() if k != "params"}, "params": names_in_group})
    set_optimizer_state_dict(model, _raw_optimizer(optimizer), {"state": state, "param_groups": param_groups},
                             options=opts)


def _group_fqns(model, group: dict) -> list[str]:
    ids = {id(p): n for n, p in named_params(model)}
    return [ids[id(p)] for p in group["params"] if id(p) in ids]


def _refuse_nonfinite(accelerator, flat: dict, step: int) -> None:
    """Every rank checks its part of the weights and all agree (one all-reduce), so all refuse together."""
    from tuneforge.train.guard import check_finite, finite

    local = {k: (v.to_local() if hasattr(v, "to_local") else v) for k, v in flat.items() if k.startswith("model::")}
    bad = torch.tensor([sum(not finite(v) for v in local.values() if v.is_floating_point())],
                       device=accelerator.device)
    if int(accelerator.reduce(bad, "sum")):
        check_finite(local, f"checkpoint-{step}")  # the rank that holds a NaN/Inf names it
        check_finite({"(held by another process)": torch.tensor(float("nan"))}, f"checkpoint-{step}")


# ---- save ---------------------------------------------------------------------------------------------------------

def save(accelerator, output_dir: Path, step: int, model, optimizer, schedule, trainer_state: dict,
         save_total_limit: int | None) -> Path | None:
    """Every rank calls this. One process: ``train/checkpoint.py``'s checkpoint; several: the DCP layout above."""
    engine = engine_of(accelerator)
    if engine.name == SINGLE and accelerator.num_processes == 1:
        return single.save_checkpoint(output_dir, step, model, optimizer, schedule, trainer_state, save_total_limit)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    final, tmp = output_dir / f"checkpoint-{step}", output_dir / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(accelerator)
    if optimizer is None:  # save_only_model: the trainable weights alone (not resumable)
        names = {n for n, p in named_params(model) if p.requires_grad}
        flat = {k: v for k, v in _flat_state(accelerator, model, None).items() if k[len("model::"):] in names}
        groups = []
    else:
        flat = _flat_state(accelerator, model, optimizer)
        groups = _param_groups(accelerator, model, optimizer)
    if engine.name == DEEPSPEED and optimizer is not None:
        flat = {**flat, **{f"optim::{k[len('model::'):]}::step": torch.tensor(float(_deepspeed_step(optimizer)))
                           for k in flat if k.startswith("model::")}}
    _refuse_nonfinite(accelerator, flat, step)
    dcp.save(flat, storage_writer=HuggingFaceStorageWriter(str(tmp / DCP_DIR), save_distributed=True))
    r = accelerator.process_index
    rng_t, rng_meta = single.rng_state()
    save_file(rng_t, tmp / f"rng-rank{r}.safetensors")
    (tmp / f"rng-rank{r}.json").write_text(json.dumps(rng_meta))
    _fsync_tree(tmp, mine=r)
    _barrier(accelerator)
    if accelerator.is_main_process:
        if optimizer is not None:
            (tmp / "optimizer.json").write_text(json.dumps({"param_groups": groups}))
        (tmp / "scheduler.json").write_text(json.dumps(schedule.state_dict()))
        state = {**trainer_state, "world_size": accelerator.num_processes, "engine": engine.name}
        (tmp / single.STATE).write_text(json.dumps(state, indent=2))
        _fsync_tree(tmp, mine=None)
        single.write_manifest(tmp)  # last: every rank's files are on disk
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        single.remove_old(output_dir, save_total_limit)
    _barrier(accelerator)
    return final


def _fsync_tree(folder: Path, mine: int | None) -> None:
    for f in folder.rglob("*"):
        if f.is_file() and (mine is None or f"rank{mine}" in f.name or f.parent.name == DCP_DIR):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


# ---- load ---------------------------------------------------------------------------------------------------------

def load(accelerator, path: Path, model, optimizer, schedule) -> dict[str, Any]:
    """Restore a checkpoint of either layout into this run's engine (after ``accelerator.prepare``); returns the
    trainer state. A different world size is fine: DCP reshards the tensors; each rank takes its own RNG state when
    the checkpoint has one for it (else rank 0's)."""
    path = Path(path)
    problem = single.verify(path, hashes=False)
    if problem:
        raise TuneforgeError(f"{path} is not a complete checkpoint ({problem})",
                             "pass a checkpoint-<step> folder written by tuneforge, or leave resume_from_checkpoint "
                             "unset to use the latest one in output_dir")
    engine = engine_of(accelerator)
    plain = engine.name == SINGLE and accelerator.num_processes == 1
    if not is_distributed_checkpoint(path):
        if plain or engine.name == "ddp":  # whole tensors everywhere: the one-process loader, in every rank
            return single.load_checkpoint(path, model, _raw_optimizer(optimizer), schedule)
        if engine.name == DEEPSPEED:
            raise TuneforgeError(f"{path} was written by one process; DeepSpeed cannot resume that layout",
                                 "resume it with one process, DDP or fsdp (their checkpoints then load under "
                                 "DeepSpeed)")
        return _load_single_layout_sharded(accelerator, path, model, optimizer, schedule)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    state = json.loads((path / single.STATE).read_text())
    template = _flat_state(accelerator, model, optimizer)
    if engine.name == DEEPSPEED:
        template.update({f"optim::{k[len('model::'):]}::step": torch.zeros(()) for k in list(template)
                         if k.startswith("model::")})
    _check_names(path, template, state)
    dcp.load(template, storage_reader=HuggingFaceStorageReader(str(path / DCP_DIR)), no_dist=plain)
    groups = json.loads((path / "optimizer.json").read_text())["param_groups"]
    _apply_flat(accelerator, model, optimizer, template, groups, int(state.get("step", 0)))
    schedule.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    _load_rng(path, accelerator.process_index, state)
    return state


def _check_names(path: Path, template: dict, state: dict) -> None:
    """A clear error when the checkpoint is of another model/method (DCP would only say a key is missing)."""
    from safetensors import safe_open

    saved: set[str] = set()
    for f in (path / DCP_DIR).glob("*.safetensors"):
        with safe_open(str(f), "pt") as fh:
            saved.update(fh.keys())
    missing = [k for k in template if k not in saved and k.startswith("model::")]
    if missing:
        raise TuneforgeError(f"{path} does not match this model/method: {len(missing)} trainable weights are missing "
                             f"(e.g. {missing[0][len('model::'):]})",
                             "resume with the same finetuning settings as the checkpoint")
    for k in [k for k in template if k not in saved]:  # an optimizer state the checkpoint lacks starts from zero
        log.warn(f"checkpoint {path.name} has no {k}; it starts from zero")
        del template[k]


def _load_rng(path: Path, r: int, state: dict) -> None:
    own = path / f"rng-rank{r}.safetensors"
    if not own.is_file():
        own = path / "rng-rank0.safetensors"
        if r == 0 or not own.is_file():
            return
        log.info(f"checkpoint written by {state.get('world_size')} processes: rank {r} takes rank 0's RNG state")
    single.set_rng_state(load_file(str(own)), json.loads(own.with_suffix(".json").read_text()))


def _load_single_layout_sharded(accelerator, path: Path, model, optimizer, schedule) -> dict[str, Any]:
    """A one-process checkpoint into a sharded engine (FSDP2, DeepSpeed): its whole tensors, keyed by name, are
    scattered into this rank's shards."""
    weights = load_file(str(path / "trainable.safetensors"))
    meta = json.loads((path / "optimizer.json").read_text())
    tensors = load_file(str(path / "optimizer.safetensors"))
    opt_state = single._unflatten_optimizer(tensors, meta)
    # the one-process optimizer numbers its parameters in param-group order; this run's groups are built the same way
    order = [n for g in _raw_param_groups_for_names(accelerator, model, optimizer) for n in g]
    full: dict[str, torch.Tensor] = {f"model::{n}": t for n, t in weights.items()}
    for idx, entry in opt_state["state"].items():
        if idx < len(order):
            for k, v in entry.items():
                full[f"optim::{order[idx]}::{k}"] = v if torch.is_tensor(v) else torch.tensor(float(v))
    template = _flat_state(accelerator, model, optimizer)
    for k, t in template.items():
        if k not in full:
            raise TuneforgeError(f"{path} does not match this model/method: no {k}",
                                 "resume with the same finetuning settings as the checkpoint")
        _copy_whole_into(t, full[k])
    groups = [{k: v for k, v in g.items() if k != "params"} for g in meta["param_groups"]]
    state = json.loads((path / single.STATE).read_text())
    _apply_flat(accelerator, model, optimizer, template, groups, int(state.get("step", 0)))
    schedule.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    single.set_rng_state(load_file(str(path / "rng.safetensors")), json.loads((path / "rng.json").read_text()))
    log.info(f"{path.name} was written by one process: its whole tensors were split over "
             f"{accelerator.num_processes} processes")
    return state


def _raw_param_groups_for_names(accelerator, model, optimizer) -> list[list[str]]:
    return [_group_fqns(model, g) for g in _raw_optimizer(optimizer).param_groups]


def _copy_whole_into(target: torch.Tensor, whole: torch.Tensor) -> None:
    """Copy this rank's part of ``whole`` into ``target`` (a DTensor shard or a whole tensor)."""
    with torch.no_grad():
        if hasattr(target, "to_local"):
            from torch.distributed.tensor import distribute_tensor

            part = distribute_tensor(whole.to(target.to_local().device, target.dtype), target.device_mesh,
                                     target.placements)
            target.to_local().copy_(part.to_local())
        else:
            target.copy_(whole.to(target.device, target.dtype))
