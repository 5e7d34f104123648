"""Quantized loading of the frozen base (QLoRA) through bitsandbytes.

bitsandbytes ≥ 0.46 has CPU kernels for 4-bit (nf4/fp4) and 8-bit (LLM.int8) layers, so QLoRA runs on this CPU as
well as on CUDA (checked by tests/test_qlora.py). Trainable adapter weights stay in float32; the compute dtype of the
quantized layers follows the run's precision (bf16/fp16 on CUDA, float32 otherwise).
"""

from __future__ import annotations

import importlib.metadata as md
from typing import TYPE_CHECKING

from tuneforge.config.messages import Msg
from tuneforge.errors import ModelError
from tuneforge.utils import log

if TYPE_CHECKING:  # torch is imported where it is used: check_bitsandbytes runs with the config checks
    import torch

MIN_BNB = (0, 46)  # first bitsandbytes release with the multi-backend (CPU) 4-bit kernels


def check_bitsandbytes() -> str | None:
    """A problem description if bitsandbytes is missing or too old; None when quantized loading can work."""
    try:
        version = md.version("bitsandbytes")
    except md.PackageNotFoundError:
        return Msg("bnb_missing")
    parts = tuple(int(x) for x in version.split(".")[:2] if x.isdigit())
    if parts < MIN_BNB:
        return Msg("bnb_old", need=".".join(map(str, MIN_BNB)), found=version)
    return None


def quantization_config(bits: int | None, quant_type: str, double: bool, compute_dtype: torch.dtype,
                        storage: torch.dtype | None = None):
    """A transformers BitsAndBytesConfig for ``bits`` (None → no quantization), with the choice logged.
    ``storage``: the dtype 4-bit weights are packed in (``bnb_4bit_quant_storage``); FSDP2 can shard them only when
    it is a floating dtype (train/distributed.py asks for the compute dtype)."""
    if not bits:
        return None
    problem = check_bitsandbytes()
    if problem:
        raise ModelError(problem)
    from transformers import BitsAndBytesConfig

    name = str(compute_dtype).removeprefix("torch.")
    if bits == 4:
        log.choice(f"quantization=4-bit {quant_type}" + (" + double quantization" if double else ""),
                   f"quantization_bit=4 (QLoRA); frozen base weights quantized, compute in {name}")
        extra = {"bnb_4bit_quant_storage": storage} if storage is not None else {}
        if storage is not None:
            log.choice(f"4-bit weights stored as {str(storage).removeprefix('torch.')}",
                       "fsdp shards them only when they are packed in a floating dtype")
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                  bnb_4bit_use_double_quant=double, bnb_4bit_compute_dtype=compute_dtype, **extra)
    log.choice("quantization=8-bit LLM.int8", "quantization_bit=8; frozen base weights quantized")
    return BitsAndBytesConfig(load_in_8bit=True)


def device_map_for_quantized() -> dict[str, int | str]:
    """bitsandbytes quantizes while loading onto the target device, so quantized models are placed at load time."""
    import torch

    if torch.cuda.is_available():
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return {"": "cpu"}
