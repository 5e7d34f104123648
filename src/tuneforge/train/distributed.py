"""Several processes, one home (design rule 3): which engine runs — DDP, FSDP2 or DeepSpeed ZeRO, all through
Hugging Face Accelerate —, what each one refuses and why, and the steps every rank must take part in (preparing the
model, the backward pass, gathering the weights for the final save). Checkpoints: ``train/dist_checkpoint.py``.

We do not write a distributed engine; we drive the existing ones:
- **ddp** — every process holds the whole model; gradients are averaged over the processes after each backward.
- **fsdp2** — ``torch.distributed.fsdp.fully_shard`` applied by Accelerate (each decoder layer a unit): parameters,
  gradients and optimizer states are split over the processes; optional CPU offload, activation checkpointing and
  mixed precision.
- **deepspeed** — DeepSpeed's ZeRO stage 0-3 from a DeepSpeed JSON config (LLaMA-Factory's ``deepspeed`` key).

The loop's loss is already averaged over every supervised token of every process (``n_sup`` is all-reduced), each
engine averages gradients over processes, hence the loop multiplies by the world size; gradient clipping is on the
global norm in every engine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: preflight's checks run without it
    import torch

from tuneforge.utils import log

SINGLE, DDP, FSDP2, DEEPSPEED = "single", "ddp", "fsdp2", "deepspeed"

# HF TrainingArguments' `fsdp` words (LLaMA-Factory passes them through) → what they mean for FSDP2.
FSDP_WORDS = {
    "full_shard": "shard parameters, gradients and optimizer states; parameters re-sharded after each forward",
    "shard_grad_op": "as full_shard, but parameters stay gathered between forward and backward (more memory, "
                     "fewer all-gathers)",
    "offload": "keep parameters, gradients and optimizer states in CPU memory (the optimizer step runs there)",
    "auto_wrap": "each decoder layer is its own shard unit (always on)",
}
FSDP_REFUSED_WORDS = {
    "hybrid_shard": "hybrid sharding (replicate across nodes, shard within) is not wired in; use full_shard",
    "hybrid_shard_zero2": "hybrid sharding (replicate across nodes, shard within) is not wired in; use "
                          "shard_grad_op",
    "no_shard": "no_shard is plain data parallelism: drop fsdp (several processes without fsdp/deepspeed run DDP)",
}
# fsdp_config keys (HF's names, with or without the `fsdp_` prefix that accelerate config files use).
FSDP_CONFIG_KEYS = {
    "version": "2 (FSDP2); FSDP1 is not offered",
    "reshard_after_forward": "true (full_shard) / false (shard_grad_op)",
    "offload_params": "true: parameters, gradients and optimizer states in CPU memory",
    "cpu_offload": "same as offload_params",
    "activation_checkpointing": "true: recompute each decoder layer in the backward pass (instead of "
                                "gradient_checkpointing)",
    "cpu_ram_efficient_loading": "true: only rank 0 keeps real weights while sharding (less CPU memory)",
    "transformer_layer_cls_to_wrap": "decoder layer class name(s) to make shard units (default: the model's own)",
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP (the only one offered)",
}
FSDP_CONFIG_IGNORED = {  # FSDP1 settings with no FSDP2 meaning; accepted so that existing files run
    "backward_prefetch": "FSDP2 prefetches one layer ahead by itself",
    "forward_prefetch": "FSDP2 prefetches one layer ahead by itself",
    "use_orig_params": "FSDP2 always keeps the original parameters",
    "sync_module_states": "every process loads the same weights",
    "limit_all_gathers": "an FSDP1 setting",
    "state_dict_type": "checkpoints are sharded (torch distributed checkpoint); the final save is consolidated",
    "sharding_strategy": "set by the fsdp words (full_shard / shard_grad_op)",
    "min_num_params": "only used by size-based wrapping, which is not offered",
    "xla": "TPUs are not supported", "xla_fsdp_grad_ckpt": "TPUs are not supported",
    "xla_fsdp_settings": "TPUs are not supported",
}


@dataclass
class Engine:
    name: str  # single | ddp | fsdp2 | deepspeed
    why: str
    world: int
    fsdp: dict = field(default_factory=dict)  # resolved FSDP2 options
    ds: dict | None = None  # the DeepSpeed config as given (auto values filled by deepspeed_config)
    ds_source: str | None = None

    @property
    def sharded(self) -> bool:
        """Parameters are split over the processes (no process holds the whole model)."""
        return self.name == FSDP2 or (self.name == DEEPSPEED and zero_stage(self.ds) == 3)


def world_size(env=None) -> int:
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank(env=None) -> int:
    env = os.environ if env is None else env
    try:
        return int(env.get("RANK", "0"))
    except ValueError:
        return 0


def launched(env=None) -> bool:
    """Whether this process was started by a launcher (torchrun, accelerate launch, tuneforge's own)."""
    env = os.environ if env is None else env
    return "LOCAL_RANK" in env or "TORCHELASTIC_RUN_ID" in env


def _flag(env, key: str) -> bool:
    return str(env.get(key, "false")).lower() in ("1", "true", "yes")


def _read_mapping(value: str, key: str) -> tuple[dict | None, str | None, str | None]:
    """(mapping, where it came from, problem) for a JSON text, a mapping kept as JSON, or a .json/.yaml file."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            return None, None, f"{key}: not valid JSON ({e.msg}, column {e.colno})"
        return data, "inline", None
    p = Path(text)
    if not p.is_file():
        hint = " (the stock DeepSpeed configs are in examples/deepspeed/)" if key == "deepspeed" else ""
        return None, None, f"{key} {text!r}: no such file{hint}"
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        else:
            data = json.loads(p.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001 — any parse error is the user's file
        return None, None, f"{key} {text!r}: cannot be read as {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}" \
                           f" ({str(e).splitlines()[0]})"
    if not isinstance(data, dict):
        return None, None, f"{key} {text!r}: must hold a mapping, not {type(data).__name__}"
    return data, str(p), None


def fsdp_options(fsdp: str | None, fsdp_config: str | None) -> tuple[dict, list[str]]:
    """The FSDP2 options from HF's ``fsdp`` words and ``fsdp_config`` mapping, and the problems found."""
    problems: list[str] = []
    opts: dict[str, Any] = {"reshard_after_forward": True, "offload": False, "activation_checkpointing": False,
                            "cpu_ram_efficient_loading": False, "wrap": None, "ignored": {}}
    words = [w for w in (fsdp or "").replace(",", " ").split() if w and w.lower() not in ("true", "false")]
    for w in words:
        if w in FSDP_REFUSED_WORDS:
            problems.append(f"fsdp {w}: {FSDP_REFUSED_WORDS[w]}")
        elif w not in FSDP_WORDS:
            problems.append(f"fsdp: unknown option {w!r}; choose from {', '.join(FSDP_WORDS)}")
    if "shard_grad_op" in words:
        opts["reshard_after_forward"] = False
    if "offload" in words:
        opts["offload"] = True
    if fsdp_config:
        data, _, problem = _read_mapping(fsdp_config, "fsdp_config")
        if problem:
            problems.append(problem)
        for raw, value in (data or {}).items():
            key = raw.removeprefix("fsdp_")
            if key in FSDP_CONFIG_IGNORED:
                opts["ignored"][raw] = FSDP_CONFIG_IGNORED[key]
            elif key not in FSDP_CONFIG_KEYS:
                problems.append(f"fsdp_config: unknown key {raw!r}; known: {', '.join(FSDP_CONFIG_KEYS)}")
            elif key == "version" and str(value) != "2":
                problems.append(f"fsdp_config {raw}={value}: tuneforge drives FSDP2 (torch fully_shard); set "
                                f"fsdp_version 2 (FSDP1 is deprecated in PyTorch)")
            elif key == "auto_wrap_policy" and str(value).upper() != "TRANSFORMER_BASED_WRAP":
                problems.append(f"fsdp_config {raw}={value}: only TRANSFORMER_BASED_WRAP is offered (each decoder "
                                f"layer is a shard unit)")
            elif key in ("offload_params", "cpu_offload"):
                opts["offload"] = _truthy(value)
            elif key == "transformer_layer_cls_to_wrap":
                opts["wrap"] = [value] if isinstance(value, str) else list(value)
            elif key in ("reshard_after_forward", "activation_checkpointing", "cpu_ram_efficient_loading"):
                opts[key] = _truthy(value)
    return opts, problems


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def resolve(train, env=None) -> tuple[Engine, list[str]]:
    """Which engine this process runs, why, and the problems of its settings. Explicit settings (``deepspeed``,
    ``fsdp``/``fsdp_config``) win over an ``accelerate launch`` configuration; several processes without either
    run DDP."""
    env = os.environ if env is None else env
    world, problems = world_size(env), []
    fsdp_asked = bool((train.fsdp or "").strip()) and str(train.fsdp).strip().lower() not in ("false", "none")
    if train.deepspeed and (fsdp_asked or train.fsdp_config):
        problems.append("deepspeed and fsdp are both set: choose one engine (drop deepspeed, or drop fsdp and "
                        "fsdp_config)")
    if train.deepspeed:
        ds, source, problem = _read_mapping(train.deepspeed, "deepspeed")
        if problem:
            problems.append(problem)
        return Engine(DEEPSPEED, f"deepspeed={source or train.deepspeed}", world, ds=ds, ds_source=source), problems
    if fsdp_asked or train.fsdp_config:
        opts, more = fsdp_options(train.fsdp, train.fsdp_config)
        return Engine(FSDP2, f"fsdp={train.fsdp or ''} {('fsdp_config=' + train.fsdp_config) if train.fsdp_config else ''}"
                      .strip(), world, fsdp=opts), problems + more
    if _flag(env, "ACCELERATE_USE_DEEPSPEED"):
        path = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        ds = None
        if path:
            ds, _, problem = _read_mapping(path, "deepspeed")
            if problem:
                problems.append(problem)
        else:
            ds = {"zero_optimization": {"stage": int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))}}
        return Engine(DEEPSPEED, "accelerate launch configuration (DeepSpeed)", world, ds=ds, ds_source=path), problems
    if _flag(env, "ACCELERATE_USE_FSDP"):
        if env.get("FSDP_VERSION", "1") != "2":
            problems.append("the accelerate launch configuration asks for FSDP1; tuneforge drives FSDP2: set "
                            "fsdp_version: 2 in it (or pass fsdp=full_shard instead)")
        opts, _ = fsdp_options("", None)
        opts["reshard_after_forward"] = _truthy(env.get("FSDP_RESHARD_AFTER_FORWARD", "true"))
        opts["offload"] = _truthy(env.get("FSDP_OFFLOAD_PARAMS", "false"))
        opts["activation_checkpointing"] = _truthy(env.get("FSDP_ACTIVATION_CHECKPOINTING", "false"))
        opts["cpu_ram_efficient_loading"] = _truthy(env.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false"))
        if env.get("FSDP_TRANSFORMER_CLS_TO_WRAP"):
            opts["wrap"] = env["FSDP_TRANSFORMER_CLS_TO_WRAP"].split(",")
        return Engine(FSDP2, "accelerate launch configuration (FSDP2)", world, fsdp=opts), problems
    if world > 1:
        return Engine(DDP, f"{world} processes and neither fsdp nor deepspeed set", world), problems
    return Engine(SINGLE, "one process", world), problems


def zero_stage(ds: dict | None) -> int:
    try:
        return int(((ds or {}).get("zero_optimization") or {}).get("stage", 0))
    except (TypeError, ValueError):
        return -1


def _prompt_based(finetuning_type: str) -> bool:
    """The method adds virtual tokens in the adapter's forward (prefix, P-Tuning, prompt tuning)."""
    from tuneforge.config.registry import METHODS

    import tuneforge.adapters  # noqa: F401 — registers the methods

    rec = METHODS.get(finetuning_type)
    return bool(rec and rec.virtual_tokens)


def refusals(cfg, engine: Engine, cuda: bool | None = None) -> list[str]:
    """The refusal table: settings an engine cannot honour, each with the reason and what to do instead."""

    def has_cuda() -> bool:  # asked only where it matters, so a plain run's checks never import torch
        if cuda is not None:
            return cuda
        import torch

        return torch.cuda.is_available()

    t, ft, m = cfg.train, cfg.finetune, cfg.model
    out: list[str] = []
    name = engine.name
    if name == DEEPSPEED:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            out.append("deepspeed is set but DeepSpeed is not installed: pip install deepspeed (or use fsdp "
                       "full_shard, which needs nothing extra)")
        if not has_cuda():
            out.append("deepspeed needs CUDA GPUs: Accelerate enables DeepSpeed only on GPU devices (on a CPU every "
                       "process would run as if alone); on this machine use fsdp full_shard, or plain DDP "
                       "(--nproc_per_node N without deepspeed)")
        stage = zero_stage(engine.ds)
        if stage not in (0, 1, 2, 3):
            out.append(f"deepspeed: zero_optimization.stage must be 0, 1, 2 or 3 (got {stage})")
        if stage == 3 and m.quantization_bit:
            out.append("QLoRA with DeepSpeed ZeRO-3 is not supported: ZeRO-3 partitions the frozen quantized "
                       "weights, which bitsandbytes keeps packed; use fsdp full_shard with quantization_bit 4, or "
                       "ZeRO-2 (examples/deepspeed/ds_z2_config.json)")
        if stage == 3 and getattr(getattr(cfg, "lora", None), "pissa_init", False):
            out.append("pissa_init with DeepSpeed ZeRO-3: the SVD needs whole weights, which ZeRO-3 partitions "
                       "while loading; use ZeRO-2 or fsdp")
        for section in ("optimizer", "scheduler"):
            if engine.ds and section in engine.ds:
                out.append(f"deepspeed config has an {section!r} section: tuneforge builds the optimizer and the "
                           f"learning-rate schedule from optim, learning_rate, lr_scheduler_type, warmup_*; remove "
                           f"the section (the stock configs in examples/deepspeed/ have none)")
        out += _ds_mismatches(cfg, engine.ds or {})
    if name == FSDP2:
        if m.quantization_bit == 8:
            out.append("8-bit QLoRA cannot be sharded by FSDP2 (bitsandbytes' Int8Params are not floating "
                       "tensors); use quantization_bit 4 with fsdp, or DDP / DeepSpeed ZeRO-2 for 8-bit")
        if engine.fsdp.get("activation_checkpointing") and t.gradient_checkpointing:
            out.append("fsdp_config activation_checkpointing and gradient_checkpointing are both on: they do the "
                       "same thing; keep one (FSDP's own is applied per shard unit)")
    if name in (FSDP2, DEEPSPEED) and _prompt_based(ft.finetuning_type):
        out.append(f"finetuning_type {ft.finetuning_type} with {name}: the prompt-based methods train a few "
                   f"thousand parameters, so there is nothing to shard, and peft adds their virtual tokens outside "
                   f"the sharded forward; run them with DDP (drop {'deepspeed' if name == DEEPSPEED else 'fsdp'})")
    if name != SINGLE and ft.offload_embedding:
        out.append("offload_embedding keeps the embedding table in CPU memory outside the engine's replication and "
                   "sharding; drop it in multi-process runs (fsdp offload moves the whole model instead)")
    if name != SINGLE and (getattr(t, "fast_path", None) or getattr(t, "fp8", None)):
        out.append(f"fast_path/fp8 with {name}: {FAST_PATH_ENGINE}; drop fast_path and fp8 (the engine's own "
                   f"forward runs)")
    if engine.sharded and t.shared_prefix:
        out.append(f"shared_prefix with {name}: {SHARED_PREFIX_SHARDED}; drop shared_prefix (it is off by default "
                   f"with sharding)")
    if ft.stage == "ppo" and engine.sharded:
        out.append(f"ppo with {'fsdp' if name == FSDP2 else 'DeepSpeed ZeRO-3'}: the rollouts are generated token "
                   f"by token with the policy outside the sharded forward, so every token would gather the whole "
                   f"model; run ppo with DDP (--nproc_per_node N without {'fsdp' if name == FSDP2 else 'deepspeed'})")
    elif ft.stage == "ppo" and name == DEEPSPEED:
        out.append(f"ppo with DeepSpeed ZeRO-{zero_stage(engine.ds)}: ppo's loop takes several optimiser steps per "
                   f"batch of rollouts, and DeepSpeed's engine steps and clips inside its own backward, which ppo's "
                   f"loop does not drive; run ppo with DDP (--nproc_per_node N without deepspeed)")
    if t.ddp_backend == "nccl" and not has_cuda():
        out.append("ddp_backend nccl needs CUDA GPUs; use ddp_backend gloo (the default without GPUs)")
    return out


def _ds_mismatches(cfg, ds: dict) -> list[str]:
    """Values a DeepSpeed config fixes that contradict tuneforge's own settings (``auto`` never does)."""
    t = cfg.train
    checks = [("train_micro_batch_size_per_gpu", t.per_device_train_batch_size, "per_device_train_batch_size"),
              ("gradient_clipping", t.max_grad_norm, "max_grad_norm")]
    out = []
    for key, ours, name in checks:
        v = ds.get(key, "auto")
        if v != "auto" and float(v) != float(ours):
            out.append(f"deepspeed config {key}={v} but {name}={ours}: set one of them to match (or {key} to "
                       f"\"auto\")")
    for key, ours, name in (("bf16", t.bf16, "bf16"), ("fp16", t.fp16, "fp16")):
        v = (ds.get(key) or {}).get("enabled", "auto") if isinstance(ds.get(key), dict) else "auto"
        if v != "auto" and bool(v) != bool(ours):
            out.append(f"deepspeed config {key}.enabled={v} but {name}={ours}: set {name} {bool(v)} (or "
                       f"{key}.enabled to \"auto\")")
    return out


def launch_problems(train) -> list[str]:
    out = []
    if train.nproc_per_node is not None and train.nproc_per_node < 1:
        out.append(f"nproc_per_node must be ≥ 1 (got {train.nproc_per_node})")
    if train.nnodes < 1:
        out.append(f"nnodes must be ≥ 1 (got {train.nnodes})")
    if not 0 <= train.node_rank < max(train.nnodes, 1):
        out.append(f"node_rank must be in 0..{train.nnodes - 1} for nnodes={train.nnodes} (got {train.node_rank})")
    if train.nnodes > 1 and not train.master_addr:
        out.append("nnodes > 1 needs master_addr: the address of the node_rank 0 machine, reachable from every node")
    if train.ddp_timeout < 1:
        out.append(f"ddp_timeout must be ≥ 1 second (got {train.ddp_timeout})")
    return out


def problems(cfg, env=None) -> list[str]:
    """Everything about distribution that can be checked before any weights load (called by preflight)."""
    engine, found = resolve(cfg.train, env)
    return launch_problems(cfg.train) + found + refusals(cfg, engine)


# ---- the process state --------------------------------------------------------------------------------------------

def quiet_other_ranks() -> None:
    """Only rank 0 logs: the others keep warnings and errors."""
    if rank() != 0:
        log.setup(logging.WARNING)
        log.logger.setLevel(logging.WARNING)


def _ensure_process_env(engine: Engine) -> None:
    """FSDP2 and DeepSpeed need a process group even for one process (``tuneforge train`` without a launcher):
    give this process the variables a launcher would (rank 0 of 1, a free local port)."""
    if engine.name in (FSDP2, DEEPSPEED) and not launched():
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                     "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
            os.environ.setdefault(k, v)


def _pg_kwargs(train) -> dict:
    kw: dict[str, Any] = {"timeout": timedelta(seconds=train.ddp_timeout)}
    if train.ddp_backend:
        kw["backend"] = train.ddp_backend
    return kw


def process_state(train):
    """Accelerate's process state (the process group, with ``ddp_timeout``), created once per process."""
    import torch
    from accelerate import PartialState

    engine, _ = resolve(train)
    _ensure_process_env(engine)
    if engine.name == DEEPSPEED:
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    return PartialState(cpu=not torch.cuda.is_available(), **_pg_kwargs(train))


@contextlib.contextmanager
def main_process_first(train):
    """Rank 0 runs the block first (creating the run folder, deciding resume), then the others; one process: just
    runs it."""
    if world_size() == 1 and resolve(train)[0].name == SINGLE:
        yield
        return
    with process_state(train).main_process_first():
        yield


def make_accelerator(cfg, mixed: str):
    """The Accelerator for this run's engine; ``mixed`` is accelerate's mixed_precision (no / bf16 / fp16)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    engine, found = resolve(cfg.train)
    if found:
        from tuneforge.errors import ConfigError

        raise ConfigError(found)
    cpu = not torch.cuda.is_available()
    _ensure_process_env(engine)
    handlers = [InitProcessGroupKwargs(**_pg_kwargs(cfg.train))]
    kwargs: dict[str, Any] = {"mixed_precision": mixed, "cpu": cpu}
    if engine.name == DDP:
        # Buffers (rotary tables) are the same everywhere; broadcasting them each forward would also make every
        # forward a collective (evaluation runs different numbers of batches per process).
        handlers.append(DistributedDataParallelKwargs(find_unused_parameters=False, broadcast_buffers=False))
    if engine.name == FSDP2:
        kwargs["fsdp_plugin"] = _fsdp_plugin(engine.fsdp)
    if engine.name == DEEPSPEED:
        from accelerate.utils import DeepSpeedPlugin

        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(hf_ds_config=deepspeed_config(cfg, engine))
    accelerator = Accelerator(kwargs_handlers=handlers, **kwargs)
    if engine.name == FSDP2 and cpu:
        from tuneforge import compat

        why = compat.fsdp_on_cpu(accelerator, kwargs["fsdp_plugin"])
        if why:
            from tuneforge.errors import TuneforgeError

            raise TuneforgeError(why, "on CPUs run plain DDP (drop fsdp), or use GPUs")
    accelerator.engine = engine  # our own attribute: the loop and the saves read it
    if engine.name != SINGLE:
        log.choice(f"engine={engine.name} on {accelerator.num_processes} process(es)"
                   + (f" ({accelerator.device.type})" if engine.name != SINGLE else ""), engine.why)
        for k, why in engine.fsdp.get("ignored", {}).items():
            log.choice(f"ignored fsdp_config {k}", why)
    return accelerator


def engine_of(accelerator) -> Engine:
    return getattr(accelerator, "engine", None) or Engine(SINGLE, "one process", 1)


def summary_entry(accelerator, model=None) -> dict:
    """What the run summary says about distribution: the engine this run actually used (tuneforge's name and why),
    Accelerate's own distributed type (one process without fsdp/deepspeed reports ``NO``; on CPU processes it reads
    ``MULTI_CPU`` again after ``prepare`` although fully_shard ran), the process count, the engine's settings (FSDP2
    options or the DeepSpeed ZeRO stage) and, for a sharded engine, whether ``model``'s parameters are in fact
    sharded (FSDP2's DTensors, ZeRO-3's partitioned parameters)."""
    engine = engine_of(accelerator)
    out = {"name": engine.name, "why": engine.why, "processes": accelerator.num_processes,
           "accelerate_distributed_type": str(getattr(accelerator.distributed_type, "value",
                                                      accelerator.distributed_type))}
    if engine.name == FSDP2:
        out["fsdp"] = {k: v for k, v in engine.fsdp.items() if k != "ignored"}
    if engine.name == DEEPSPEED:
        out["zero_stage"] = zero_stage(engine.ds)
        out["deepspeed_config"] = engine.ds_source
    if model is not None and engine.sharded:
        params = list(model.parameters())
        out["sharded_parameters"] = f"{sum(hasattr(p, 'full_tensor') or hasattr(p, 'ds_id') for p in params)} of " \
                                    f"{len(params)}"
    return out


def _fsdp_plugin(opts: dict):
    import torch
    from accelerate import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import CPUOffloadPolicy

    # pinned host memory is for copies to a GPU; torch cannot pin without one (CPU processes: the offloaded shards
    # are where they would be anyway)
    pin = torch.cuda.is_available()
    if opts["offload"] and not pin:
        log.choice("fsdp offload without pinned memory", "no CUDA device: torch pins host memory only for a GPU")
    return FullyShardedDataParallelPlugin(
        fsdp_version=2, reshard_after_forward=opts["reshard_after_forward"],
        cpu_offload=CPUOffloadPolicy(pin_memory=pin) if opts["offload"] else None,
        auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=opts["wrap"], activation_checkpointing=opts["activation_checkpointing"],
        cpu_ram_efficient_loading=opts["cpu_ram_efficient_loading"], state_dict_type="SHARDED_STATE_DICT")


def deepspeed_config(cfg, engine: Engine) -> dict:
    """The DeepSpeed config with its ``auto`` values filled from tuneforge's settings (as transformers' Trainer
    does), and ZeRO-3's consolidated 16-bit save switched on so that the final model can be written."""
    import torch
    t = cfg.train
    ds = json.loads(json.dumps(engine.ds or {}))  # a copy
    world = engine.world
    fill = {"train_micro_batch_size_per_gpu": t.per_device_train_batch_size,
            "gradient_accumulation_steps": t.gradient_accumulation_steps,
            "train_batch_size": t.per_device_train_batch_size * t.gradient_accumulation_steps * world,
            "gradient_clipping": t.max_grad_norm}
    for k, v in fill.items():
        if ds.get(k, "auto") == "auto":
            ds[k] = v
    for key, on in (("bf16", t.bf16 and torch.cuda.is_available()), ("fp16", t.fp16 and torch.cuda.is_available())):
        sec = ds.setdefault(key, {})
        if isinstance(sec, dict) and sec.get("enabled", "auto") == "auto":
            sec["enabled"] = bool(on)
    zero = ds.setdefault("zero_optimization", {"stage": 0})
    if zero_stage(ds) == 3 and zero.get("stage3_gather_16bit_weights_on_model_save", "auto") in ("auto", False):
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if any((zero.get(k) or {}).get("device") == "cpu" for k in ("offload_optimizer", "offload_param")):
        # our optimizer is torch's AdamW (or a bitsandbytes one); DeepSpeed otherwise insists on its CPUAdam
        ds.setdefault("zero_force_ds_cpu_optimizer", False)
    ds.setdefault("zero_allow_untested_optimizer", True)
    ds.setdefault("steps_per_print", 10 ** 9)  # progress is ours
    return ds


def quant_storage(cfg, dtype: torch.dtype) -> torch.dtype | None:
    """QLoRA under FSDP2: 4-bit weights packed in the compute dtype, so that fully_shard can split them."""
    import torch
    if cfg.model.quantization_bit == 4 and resolve(cfg.train)[0].name == FSDP2:
        return dtype
    return None


# ---- the loop's distributed steps ---------------------------------------------------------------------------------

def decoder_layer_classes(model: torch.nn.Module) -> list[str]:
    """The classes that become FSDP2 shard units: the model's ``_no_split_modules`` (its decoder layers)."""
    import torch
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = list(getattr(base, "_no_split_modules", None) or [])
    present = {type(m).__name__ for m in base.modules()}
    return [n for n in names if n in present]


def prepare(accelerator, module: torch.nn.Module, optimizer, model: torch.nn.Module):
    """``accelerator.prepare`` for the loop's module (a loss wrapper around ``model``) and optimizer, after filling
    what the engine needs from the model: FSDP2's shard units, DeepSpeed's hidden-size-based bucket sizes."""
    import torch
    engine = engine_of(accelerator)
    if engine.name == FSDP2:
        plugin = accelerator.state.fsdp_plugin
        if not plugin.transformer_cls_names_to_wrap:
            plugin.transformer_cls_names_to_wrap = decoder_layer_classes(model)
        log.choice(f"fsdp2 shard units: {', '.join(plugin.transformer_cls_names_to_wrap) or 'the whole model'}",
                   "each decoder layer is gathered for its own forward/backward and re-sharded after")
    if engine.name == DEEPSPEED:
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        ds.update(fill_hidden_size(ds, hidden))
    return accelerator.prepare(module, optimizer)


def fill_hidden_size(ds: dict, hidden: int | None) -> dict:
    """DeepSpeed's bucket sizes left ``auto``, from the model's hidden size (transformers' Trainer's values)."""
    zero = dict(ds.get("zero_optimization") or {})
    if hidden:
        for k, v in (("reduce_bucket_size", hidden * hidden), ("stage3_prefetch_bucket_size", int(0.9 * hidden ** 2)),
                     ("stage3_param_persistence_threshold", 10 * hidden)):
            if zero.get(k) == "auto":
                zero[k] = v
    return {"zero_optimization": zero}


def backward(accelerator, loss: torch.Tensor, last: bool) -> None:
    """One micro-batch's backward. ``loss`` is already the micro-batch's share of the step's token average, so
    DeepSpeed must neither divide it by its accumulation count again nor step before the group's last micro-batch
    (the last group of an epoch can be shorter)."""
    import torch
    if engine_of(accelerator).name == DEEPSPEED:
        accelerator.deepspeed_engine_wrapped.backward(loss, sync_gradients=last, scale_wrt_gas=False)
    else:
        accelerator.backward(loss)


def clip_and_norm(accelerator, params: list, max_grad_norm: float) -> float:
    """Clip to ``max_grad_norm`` (0: no clipping) and return the global gradient norm over every process's
    gradients (DeepSpeed clips inside its step, from ``gradient_clipping``)."""
    if engine_of(accelerator).name == DEEPSPEED:  # clipped inside DeepSpeed's step (gradient_clipping)
        norm = accelerator.deepspeed_engine_wrapped.get_global_grad_norm()
        return float("nan") if norm is None else float(norm)
    norm = accelerator.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    if norm is None:
        return float("nan")
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


def fused_ce_ok(accelerator) -> bool:
    """Liger's fused linear+cross-entropy reads the head's weight directly: not under ZeRO-3, which partitions it
    outside the head's own forward (FSDP2 gathers the root unit, which holds the head, for the whole forward)."""
    engine = engine_of(accelerator)
    if engine.name == DEEPSPEED and zero_stage(engine.ds) == 3:
        log.choice("fused linear+cross-entropy off", "DeepSpeed ZeRO-3 partitions the head's weight")
        return False
    return True


SHARED_PREFIX_SHARDED = ("the shared prefix's keys/values are reused by a second decoder call, and a sharded engine "
                         "re-gathers a layer's weights for its backward only through that layer's own outputs")


def shared_prefix_setting(accelerator, asked: bool | None) -> bool | None:
    """``shared_prefix`` for this engine: off (logged) where parameters are sharded."""
    if engine_of(accelerator).sharded and asked is None:
        log.choice("shared_prefix=off", SHARED_PREFIX_SHARDED)
        return False
    return asked


FAST_PATH_ENGINE = "it runs the decoder layers itself, outside the engine's wrapping and sharding"


def fast_path_ok(accelerator, args) -> bool:
    """tuneforge's fast decoder path (fast/) runs only in a plain one-process run."""
    engine = engine_of(accelerator)
    if engine.name == SINGLE:
        return True
    log.choice("fast_path=off", f"engine {engine.name}: {FAST_PATH_ENGINE}")
    return False


def position_for(state: dict, global_batch: int) -> int:
    """The micro-batch to resume at: the checkpoint's position, converted when the global batch (per-process batch
    × processes) differs from the checkpoint's run (another world size): same samples consumed, rounded down."""
    saved = int(state.get("global_batch") or global_batch)
    micro = int(state.get("micro", 0))
    if saved == global_batch:
        return micro
    pos = micro * saved // global_batch
    log.warn(f"resuming with a global batch of {global_batch} samples (the checkpoint's run had {saved}): the epoch "
             f"continues after sample {pos * global_batch} of the shuffled order (it stopped after {micro * saved})")
    return pos


def global_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The weighted mean of ``x`` over every process's rows (a collective when several processes run: each one
    calls it at the same point of its forward)."""
    import torch
    s = torch.stack([(x * weight).sum(), weight.sum()]).float()
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(s)
    return (s[0] / s[1].clamp(min=1)).to(x.dtype)


def describe_sharding(n: int, batch: int, world: int) -> str | None:
    """How an epoch's samples are spread (every sample once per epoch, on exactly one process)."""
    if world == 1:
        return None
    step = batch * world
    last = n % step
    text = f"{n} samples per epoch over {world} processes: global batch {step} ({batch} per process)"
    if last:
        per = -(-last // world)
        idle = sum(1 for r in range(world) if r * per >= last)
        text += (f"; the last batch holds {last}, spread {per} per process"
                 + (f", {idle} process(es) run a fully masked dummy row (no loss, no gradient)" if idle else ""))
    return text


# ---- the final save ----------------------------------------------------------------------------------------------

WRAPPER_PARTS = ("_checkpoint_wrapped_module.", "_orig_mod.")  # activation-checkpoint and compile wrappers


def named_params(model: torch.nn.Module):
    """``named_parameters`` with the names the model has without engine wrappers (FSDP2's activation checkpointing
    wraps each layer), as torch's state-dict API and a one-process run name them."""
    import torch
    for n, p in model.named_parameters():
        for part in WRAPPER_PARTS:
            n = n.replace(part, "")
        yield n, p


def gather_for_save(accelerator, model: torch.nn.Module, everything: bool) -> dict[str, torch.Tensor] | None:
    """Every rank calls this before the final save. Rank 0 gets whole tensors of what is saved — the trainable
    weights (``everything=False``: adapters, value heads) or the whole model state (full/freeze) — through the
    engine's own state-dict API; the other ranks get ``{}``. ``None``: the model's own tensors are already whole
    in every process (one process, DDP, DeepSpeed ZeRO 0-2), save them as they are."""
    import torch
    engine = engine_of(accelerator)
    if not engine.sharded:
        return None
    if engine.name == FSDP2:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        if everything:
            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_model_state_dict(model, options=opts)
        out = {}
        for n, p in named_params(model):
            if p.requires_grad:
                full = p.full_tensor() if hasattr(p, "full_tensor") else p
                if accelerator.is_main_process:
                    out[n] = full.detach().to("cpu", copy=True)
        return out
    # DeepSpeed ZeRO-3: the fp32 masters of the trainable weights (the tensor-fragment API), or every weight
    # gathered one at a time (GatheredParameters), so no process ever holds more than one whole extra tensor
    import deepspeed
    from deepspeed.utils import safe_get_full_fp32_param

    out = {}
    if not everything:
        for n, p in named_params(model):
            if p.requires_grad:
                full = safe_get_full_fp32_param(p)
                if accelerator.is_main_process:
                    out[n] = full.detach().to("cpu", copy=True)
        return out
    seen: set[int] = set()
    for n, t in model.state_dict(keep_vars=True).items():
        if id(t) in seen:  # a tied weight (the head sharing the embedding) is saved once, as save_pretrained does
            continue
        seen.add(id(t))
        for part in WRAPPER_PARTS:
            n = n.replace(part, "")
        with deepspeed.zero.GatheredParameters([t] if hasattr(t, "ds_id") else [], modifier_rank=None):
            if accelerator.is_main_process:
                out[n] = t.detach().to("cpu", copy=True)
    return out


def sub_state(state: dict | None, prefix: str) -> dict | None:
    """The ``prefix`` submodule's own part of a gathered state (None stays None: the module's tensors are whole)."""
    if state is None:
        return None
    p = f"{prefix}."
    return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
