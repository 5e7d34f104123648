"""Fused CUDA kernels (Liger-Kernel) and their automatic choices.

Liger-Kernel provides Triton kernels for RMSNorm, rotary embeddings, SwiGLU and a cross-entropy fused with the output
projection (the full logits tensor is never materialised). The kernels reach the model through Liger's private
instance patcher, an upstream workaround kept in ``tuneforge/compat.py`` with the versions it was tested on. The
fused cross-entropy is ours to call (train/loss.py), so the model's own forward is never replaced.
"""

from __future__ import annotations

from tuneforge import compat
from tuneforge.errors import ModelError
from tuneforge.utils import log


def apply_liger(model, asked: bool | None, fused_loss: bool = True) -> bool:
    """Apply Liger's RMSNorm/RoPE/SwiGLU kernels to ``model`` in place. Returns True when the fused linear
    cross-entropy should be used by the loss (``fused_loss``: the run's loss is the token loss that can use it).
    ``asked`` None = auto (on where available)."""
    if asked is False:
        return False
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    why_not = compat.liger_unsupported(model_type)
    if why_not is not None:
        if asked:
            _, low, high = compat.LIGER
            raise ModelError(f"enable_liger_kernel=True but {why_not}",
                             f"on a CUDA machine, pip install 'liger-kernel>={low},<{high}'; or set "
                             f"--enable_liger_kernel False")
        log.choice("enable_liger_kernel=off", why_not)
        return False
    compat.liger_patch_instance(model)
    loss = ("and a linear+cross-entropy fused loss" if fused_loss else
            "(this stage's loss is not the token loss, so Liger's fused linear cross-entropy is not used)")
    log.choice("enable_liger_kernel=on", f"{'asked' if asked else 'auto: CUDA and liger-kernel present'}; fused "
               f"RMSNorm, RoPE, SwiGLU for {model_type} {loss}")
    return fused_loss


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
