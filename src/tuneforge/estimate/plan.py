"""The estimate's plan built from a run's config: the same settings `tuneforge train` reads, plus a few of its own."""

from __future__ import annotations

import importlib.util

from tuneforge.config.messages import Msg
from tuneforge.config.parse import Config
from tuneforge.config.registry import METHODS
from tuneforge.errors import ConfigError
from tuneforge.estimate.memory import GPUS, SHORTHANDS, Plan

# Settings only `tuneforge estimate` takes (the rest are the training settings).
EXTRA_KEYS = {"method": "a finetuning_type, or qlora4 | qlora8 (= lora with quantization_bit 4 | 8); default: "
                        "finetuning_type and quantization_bit",
              "gpu": "a GPU name (h200, h100, a100-40gb, rtx4090, …) or a size in GiB",
              "supervised_fraction": "share of tokens that are trained (default 0.5)"}


def liger_default() -> bool:
    """enable_liger_kernel unset: training turns Liger on where it is installed (on CUDA)."""
    return importlib.util.find_spec("liger_kernel") is not None


def plan_from_config(cfg: Config, extra: dict) -> tuple[Plan, str | float | None]:
    """(the plan, the GPU to compare with) for ``cfg`` and the estimate's own settings ``extra``."""
    problems = []
    method = str(extra.get("method", cfg.finetune.finetuning_type))
    bits = cfg.model.quantization_bit
    if method not in METHODS and method not in SHORTHANDS:
        problems.append(Msg("not_one_of", got=method, choices=", ".join([*METHODS, *SHORTHANDS])))
    gpu = extra.get("gpu")
    if gpu is not None and str(gpu).lower() not in GPUS:
        try:
            gpu = float(gpu)
        except ValueError:
            problems.append(f"gpu {gpu!r}: give one of {', '.join(GPUS)} or a size in GiB")
    try:
        fraction = float(extra.get("supervised_fraction", 0.5))
    except ValueError:
        problems.append(f"supervised_fraction {extra['supervised_fraction']!r}: give a number in (0, 1]")
        fraction = 0.5
    if problems:
        raise ConfigError(problems)
    t, d, m = cfg.train, cfg.data, cfg.model
    name = SHORTHANDS[method][0] if method in SHORTHANDS else method
    flat = cfg.to_flat()
    options = METHODS[name].options
    liger = m.enable_liger_kernel
    plan = Plan(method=method, quantization_bit=bits, batch=t.per_device_train_batch_size, seq=d.cutoff_len,
                packing=bool(d.packing or d.neat_packing), gradient_checkpointing=t.gradient_checkpointing,
                offload=t.enable_activation_offloading and t.gradient_checkpointing,
                liger=bool(liger) if liger is not None else liger_default(), optim=t.optim,
                supervised_fraction=fraction,
                weight_bytes=2 if (t.bf16 or t.fp16 or bits or method in SHORTHANDS) else 4,
                offload_embedding=cfg.finetune.offload_embedding,
                settings={k: flat[k] for k in options}, explicit=frozenset(cfg.explicit & set(options)))
    return plan, gpu
