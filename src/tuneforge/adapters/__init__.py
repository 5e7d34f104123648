"""Fine-tuning methods: one module per family. The only package that talks to peft."""

from __future__ import annotations

import torch

from tuneforge.adapters.freeze import apply_freeze, apply_full
from tuneforge.adapters.lora import apply_lora, load_adapters, merge_adapters, prompt_merge_refusal, split_list
from tuneforge.adapters.prompt import PROMPT_METHODS, apply_prompt, is_prompt_adapter, is_prompt_model
from tuneforge.config.schema import FinetuneArgs
from tuneforge.utils import log


def apply_method(model: torch.nn.Module, args: FinetuneArgs, adapter_paths: list[str]) -> torch.nn.Module:
    """Make the parameters of the chosen method trainable (and only those). Trainable weights are kept in float32."""
    quantized = getattr(model, "hf_quantizer", None) is not None
    if quantized:  # QLoRA: a bitsandbytes-quantized frozen base
        from tuneforge.models.memory import freeze_quantized_base

        model = freeze_quantized_base(model, args.upcast_unquantized)
    if args.finetuning_type == "lora":
        model = apply_lora(model, args, adapter_paths)
    elif args.finetuning_type in PROMPT_METHODS:
        model = apply_prompt(model, args)
    elif args.finetuning_type == "freeze":
        model = apply_freeze(model, args)
    else:
        model = apply_full(model)
    master = torch.bfloat16 if args.pure_bf16 else torch.float32  # pure_bf16: no float32 master weights
    for p in model.parameters():
        if p.requires_grad and p.dtype != master:
            p.data = p.data.to(master)
    if args.finetuning_type == "lora":
        from tuneforge.compat import patch_lora_forward

        patch_lora_forward(model, args.fused_lora)
    from tuneforge.models.memory import offload_embedding

    if args.finetuning_type in PROMPT_METHODS:
        if args.offload_embedding:
            log.choice("offload_embedding=off", "prompt-based methods look tokens up in the adapter's own forward")
    else:
        offload_embedding(model, args.offload_embedding, quantized)
    trainable, total = count_parameters(model)
    log.info(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.3f}%)")
    return model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


__all__ = ["PROMPT_METHODS", "apply_method", "count_parameters", "is_prompt_adapter", "is_prompt_model",
           "load_adapters", "merge_adapters", "prompt_merge_refusal", "split_list"]

