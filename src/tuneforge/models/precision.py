"""Choose the numeric precision for a run, and log why.

``bf16`` / ``fp16`` are True (asked), False (refused) or None (automatic, the default): on a CUDA GPU with bfloat16
support, bf16 mixed precision (LLaMA-Factory's choice too; half the weight memory of float32 and no loss scaling);
on a CUDA GPU without it (pre-Ampere), fp16; on a CPU, float32 (half-precision math is slow or missing there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneforge.utils import log

if TYPE_CHECKING:
    import torch


def resolve_precision(bf16: bool | None, fp16: bool | None, pure_bf16: bool = False) -> tuple[str, torch.dtype]:
    """(accelerate mixed_precision setting, dtype for frozen weights)."""
    import torch  # here, not at import: config checks (``tuneforge.models``' check_model) run without torch

    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
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
        if bf16_ok:
            log.choice("dtype=bfloat16", "bf16 asked; frozen weights in bfloat16, trainable weights in float32")
            return "bf16", torch.bfloat16
        why = "this GPU has no bfloat16 support" if cuda else "no CUDA device (bfloat16 is slow on most CPUs)"
        log.choice("dtype=float32", f"bf16 asked but {why}")
        return "no", torch.float32
    if not cuda:
        log.choice("dtype=float32", "no CUDA device (half precision is slow or unsupported on CPU)")
        return "no", torch.float32
    if bf16_ok and bf16 is None:
        log.choice("dtype=bfloat16", "automatic: this GPU supports bfloat16 (frozen weights in bfloat16, trainable "
                   "weights in float32); --bf16 False trains in float32")
        return "bf16", torch.bfloat16
    if not bf16_ok and fp16 is None:
        log.choice("dtype=float16", "automatic: this GPU has no bfloat16 support, so float16 mixed precision with "
                   "loss scaling; --fp16 False trains in float32")
        return "fp16", torch.float16
    log.choice("dtype=float32", "bf16=False asked" if bf16_ok else "fp16=False asked on a GPU without bfloat16")
    return "no", torch.float32
