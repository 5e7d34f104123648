"""Fine-tuning methods: one module per family, the only package that talks to peft.

Each module declares its options (a settings group) and its record (``config.registry.Method``); importing this
package registers them all (the ``tuneforge`` package does so on import). The functions below work for any method by
reading its record, so nothing outside ``adapters/<method>.py`` names a method.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tuneforge.adapters import full, freeze, lora, prompt, oft  # noqa: F401  (each registers its record)
from tuneforge.adapters.folders import (
    adapter_peft_type, check_adapter_dir, load_adapters, load_named_adapters, merge_adapters, merge_refusal,
    method_of_adapter, split_list, use_adapter,
)
from tuneforge.compat import ordinary_modes, quiet_peft
from tuneforge.config.registry import METHODS, Method, for_peft_type, method
from tuneforge.errors import ConfigError
from tuneforge.utils import log


def method_of(model) -> Method | None:
    """The record of the method behind a loaded model's active peft adapter (None: no peft adapter)."""
    cfg = getattr(model, "active_peft_config", None)
    if cfg is None:
        return None
    peft_type = getattr(cfg.peft_type, "value", cfg.peft_type)
    return for_peft_type(str(peft_type))


@quiet_peft()
def apply_method(model, cfg, adapter_paths: list[str]):
    """Make the parameters of the chosen method trainable (and only those). Trainable weights are kept in float32."""
    import torch

    rec = method(cfg.finetune.finetuning_type)
    if adapter_paths and not rec.continues:  # validation says so first; this guards direct callers
        raise ConfigError([f"finetuning_type {rec.name} cannot continue adapter_name_or_path"])
    quantized = getattr(model, "hf_quantizer", None) is not None
    if quantized:  # a bitsandbytes-quantized frozen base (QLoRA and the like)
        from tuneforge.models.memory import freeze_quantized_base

        model = freeze_quantized_base(model, cfg.finetune.upcast_unquantized)
    model = rec.apply(model, cfg, adapter_paths)
    master = torch.bfloat16 if cfg.finetune.pure_bf16 else torch.float32  # pure_bf16: no float32 master weights
    for p in model.parameters():
        if p.requires_grad and p.dtype != master:
            p.data = p.data.to(master)
    if rec.keeps_embedding is not None:
        if cfg.finetune.offload_embedding:
            log.choice("offload_embedding=off", rec.keeps_embedding)
    else:
        from tuneforge.models.memory import offload_embedding

        offload_embedding(model, cfg.finetune.offload_embedding, quantized)
    trainable, total = count_parameters(model)
    log.info(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.3f}%)")
    return model


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def full_forward_reason(model) -> str | None:
    """Why the loss must run the model's own (adapter) forward rather than the decoder plus a gathered head."""
    rec = method_of(model)
    return rec.full_forward if rec is not None else None


def logits_offset(model) -> int:
    """How many positions the model's logits carry in front of the input's (virtual tokens prepended)."""
    rec = method_of(model)
    return rec.logits_offset(model) if rec is not None else 0


def mergeable(model) -> bool:
    """Whether the model's live adapter can be merged into its weights (False: decode through the adapter)."""
    rec = method_of(model)
    return rec is None or rec.merges


def generate(model, input_ids, attention_mask, **kw):
    """Generate with ``model``: its method's own decoding where ``model.generate`` is not right for it."""
    rec = method_of(model)
    if rec is not None and rec.generate is not None:
        return rec.generate(model, input_ids, attention_mask, **kw)
    return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)


def save_trained(model, out, state_dict: dict | None = None) -> None:
    """The trained model in its Hugging Face form (an adapter folder or a model folder), as its method saves it.
    ``state_dict``: the weights gathered from every rank of a sharded run (train/distributed.py) instead of the
    model's own (sharded) tensors."""
    extra = {"state_dict": state_dict} if state_dict is not None else {}
    rec = method_of(model)
    if rec is not None and rec.save is not None:
        save_staged(out, lambda stage: rec.save(model, stage, **extra))
    else:
        save_staged(out, lambda stage: model.save_pretrained(str(stage), safe_serialization=True, **extra))


STAGING = ".tmp-final"


def save_staged(out, write) -> None:
    """``write(folder)`` into a staging folder inside ``out``, then every file moved in by rename: a crash never
    leaves half a file under its final name (the final model, adapter and tokenizer files of a run)."""
    out = Path(out)
    stage = out / STAGING
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    write(stage)
    ordinary_modes(stage)  # safetensors writes 0600 files (compat.py)
    move_in(stage, out)


def move_in(stage: Path, out: Path) -> None:
    """Move every file of ``stage`` into ``out`` by rename, each flushed to disk first; ``stage`` is removed."""
    for f in sorted(stage.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    for f in sorted(stage.iterdir()):
        target = out / f.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(f, target)
    stage.rmdir()


__all__ = ["METHODS", "Method", "adapter_peft_type", "apply_method", "check_adapter_dir", "count_parameters",
           "full_forward_reason", "generate", "load_adapters", "load_named_adapters", "logits_offset", "merge_adapters",
           "merge_refusal", "mergeable", "method", "method_of", "method_of_adapter", "save_staged", "save_trained",
           "split_list",
           "use_adapter"]
