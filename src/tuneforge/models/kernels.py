"""Fused CUDA kernels (Liger-Kernel) and their automatic choices.

Liger-Kernel provides Triton kernels for RMSNorm, rotary embeddings, SwiGLU and a cross-entropy fused with the output
projection (the full logits tensor is never materialised). Its only public way in for RMSNorm/SwiGLU/RoPE is
``_apply_liger_kernel_to_instance``, which swaps the forward of this model's norm and MLP modules and — unavoidably —
the module-level ``apply_rotary_pos_emb`` function of the architecture's transformers module (liger-kernel 0.8.x,
transformers 5.x). That is the one upstream patch we accept; it is applied only when asked and logged. The fused
cross-entropy is ours to call (train/loss.py), so the model's own forward is never replaced.
"""

from __future__ import annotations

import importlib.util

from tuneforge.errors import ModelError
from tuneforge.utils import log


def liger_available() -> str | None:
    """None when Liger can run here, else the reason it cannot."""
    import torch

    if importlib.util.find_spec("liger_kernel") is None:
        return "the liger-kernel package is not installed (pip install liger-kernel)"
    if not torch.cuda.is_available():
        return "Liger's Triton kernels need a CUDA device"
    return None


def apply_liger(model, asked: bool | None) -> bool:
    """Apply Liger's RMSNorm/RoPE/SwiGLU kernels to ``model`` in place. Returns True when the fused linear
    cross-entropy should be used by the loss. ``asked`` None = auto (on where available)."""
    if asked is False:
        return False
    why_not = liger_available()
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if why_not is None:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

        if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
            why_not = f"Liger has no kernels for model type {model_type!r}"
    if why_not is not None:
        if asked:
            raise ModelError(f"enable_liger_kernel=True but {why_not}",
                             "install liger-kernel on a CUDA machine, or set --enable_liger_kernel False")
        log.choice("enable_liger_kernel=off", why_not)
        return False
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)
    log.choice("enable_liger_kernel=on", f"{'asked' if asked else 'auto: CUDA and liger-kernel present'}; fused "
               f"RMSNorm, RoPE, SwiGLU for {model_type} and a linear+cross-entropy fused loss")
    return True


def compile_layers(model) -> None:
    """torch.compile each decoder layer in place (regional compilation: one compiled graph reused by every layer,
    so compile time does not grow with depth)."""
    import torch

    if not torch.cuda.is_available():
        log.choice("torch_compile=off", "compiling for the CPU costs more time than it saves in short runs")
        return
    n = 0
    for module in model.modules():
        if type(module).__name__.endswith("DecoderLayer"):
            module.compile()
            n += 1
    log.choice("torch_compile=on", f"asked; {n} decoder layers compiled (regional compilation)")
