"""Choose the numeric precision for a run, and log why."""

from __future__ import annotations

import torch

from tuneforge.utils import log


def resolve_precision(bf16: bool, fp16: bool, pure_bf16: bool = False) -> tuple[str, torch.dtype]:
    """(accelerate mixed_precision setting, dtype for frozen weights)."""
    cuda = torch.cuda.is_available()
    if pure_bf16:
        log.choice("dtype=bfloat16 (pure)", "pure_bf16 asked: every weight, the trainable ones and the optimizer "
                   "states in bfloat16, no autocast")
        return "no", torch.bfloat16
    if fp16:
        if cuda:
            log.choice("dtype=float16", "fp16 asked; frozen weights in float16, trainable weights in float32")
            return "fp16", torch.float16
        log.choice("dtype=float32", "fp16 asked but no CUDA device (float16 math is slow or unsupported on CPU)")
        return "no", torch.float32
    if bf16:
        if cuda and torch.cuda.is_bf16_supported():
            log.choice("dtype=bfloat16", "bf16 asked; frozen weights in bfloat16, trainable weights in float32")
            return "bf16", torch.bfloat16
        why = "this GPU has no bfloat16 support" if cuda else "no CUDA device (bfloat16 is slow on most CPUs)"
        log.choice("dtype=float32", f"bf16 asked but {why}")
        return "no", torch.float32
    log.choice("dtype=float32", "neither bf16 nor fp16 asked")
    return "no", torch.float32
