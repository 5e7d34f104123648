"""FP8 (e4m3) frozen base weights for LoRA training (``--fp8 True``).

In a LoRA run the base weights never change, so they can be quantized once: each weight matrix W (out × in) is
stored as e4m3 with one float32 scale per output row, and the forward's ``x · Wᵀ`` runs on the FP8 tensor cores
(``torch._scaled_mm``) with ``x`` quantized per token (row-wise scales, computed on the fly). The backward's
``dy · W`` needs W with the scales along the other axis, so a second e4m3 copy of Wᵀ with one scale per input column
is kept (``backward="fp8"``: 2 bytes per weight in all, the bf16 footprint, both GEMMs on FP8 units), or the
backward dequantizes W to bf16 per call (``backward="bf16"``: 1 byte per weight, only the forward on FP8 units).
The LoRA matrices, their inputs and their gradients stay in bf16/float32 (``fast/lora.py``).

Where it runs: CUDA GPUs of compute capability 8.9 or newer (Ada, Hopper, Blackwell) and torch with
``_scaled_mm``; LoRA on a bf16/fp16 (not quantized) base of an architecture the fast path covers. Anything else is
refused before weights load (``fp8_problems``). On a CPU the same quantized numbers are multiplied in float32
(``_emulated_mm``): that is how the tests check the plumbing.
"""

from __future__ import annotations

import torch

from tuneforge.config.messages import Msg, register

E4M3_MAX = 448.0

register({
    "fp8_no_cuda": ("fp8=True needs a CUDA GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell); {why}",
                    "fp8=True 需要计算能力 8.9 及以上的 CUDA GPU（Ada、Hopper、Blackwell）；{why}"),
    "fp8_method": ("fp8=True holds the frozen base of a LoRA run in FP8; finetuning_type={method} trains the base "
                   "weights themselves. Use finetuning_type lora, or drop fp8",
                   "fp8=True 以 FP8 保存 LoRA 训练中冻结的基座权重；finetuning_type={method} 会训练基座权重本身。"
                   "请使用 finetuning_type lora，或去掉 fp8"),
    "fp8_quant": ("fp8=True and quantization_bit={bits} both set the base weights' format; choose one (fp8 for "
                  "speed at the bf16 footprint, quantization_bit 4 for the smallest memory)",
                  "fp8=True 与 quantization_bit={bits} 都规定了基座权重的格式，只能选一个（fp8 求速度、显存与 bf16 "
                  "相当；quantization_bit 4 求最小显存）"),
    "fp8_variant": ("fp8=True runs the base through tuneforge's own LoRA layers, which do not cover {what}; "
                    "turn {what} off or drop fp8",
                    "fp8=True 通过 tuneforge 自己的 LoRA 层运行基座，不支持 {what}；请关闭 {what} 或去掉 fp8"),
    "fp8_precision": ("fp8=True computes the LoRA part in bf16: set bf16 True",
                      "fp8=True 的 LoRA 部分以 bf16 计算：请设置 bf16 True"),
})


def fp8_device_problem() -> str | None:
    """None when FP8 matmuls can run here, else why not."""
    if not torch.cuda.is_available():
        return "there is no CUDA device here"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (8, 9):
        return f"this GPU ({torch.cuda.get_device_name()}) has compute capability {major}.{minor}"
    if not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no torch._scaled_mm"
    return None


def fp8_problems(cfg, device_problem=fp8_device_problem) -> list[str]:
    """Every reason ``cfg`` cannot train with ``fp8=True`` (empty when it can). ``device_problem`` is injectable
    so the refusals can be tested on a CPU."""
    if not getattr(cfg.train, "fp8", False):
        return []
    out = []
    why = device_problem()
    if why:
        out.append(Msg("fp8_no_cuda", why=why))
    ft = cfg.finetune
    if ft.finetuning_type != "lora":
        out.append(Msg("fp8_method", method=ft.finetuning_type))
    if cfg.model.quantization_bit:
        out.append(Msg("fp8_quant", bits=cfg.model.quantization_bit))
    lora = getattr(cfg, "lora", None)
    for flag in ("use_dora", "pissa_init"):
        if getattr(lora, flag, False):
            out.append(Msg("fp8_variant", what=flag))
    if ft.finetuning_type == "lora" and getattr(lora, "lora_dropout", 0.0):
        out.append(Msg("fp8_variant", what="lora_dropout"))
    if cfg.train.fast_path is False:
        out.append(Msg("fp8_variant", what="fast_path=False"))
    if not cfg.train.bf16:
        out.append(Msg("fp8_precision"))
    return out


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 tensor, float32 scale per row) with ``t ≈ q · scale[:, None]``; each row's largest magnitude maps to
    448 (e4m3's largest finite value)."""
    amax = t.abs().amax(dim=1, keepdim=True).float().clamp_(min=1e-12)
    scale = amax / E4M3_MAX
    q = (t * (1.0 / scale).to(t.dtype)).clamp_(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scale


def _emulated_mm(a, b, sa, sb, out_dtype):
    """``(a · sa) @ (b · sb)`` in float32: the value torch._scaled_mm computes, where it cannot run."""
    return ((a.float() * sa) @ (b.float() * sb)).to(out_dtype)


_SCALED_MM_OK: dict[str, bool] = {}


def scaled_mm(a, b, sa, sb, out_dtype, fast_accum: bool = False):
    """a (M×K e4m3, row-major) @ b (K×N e4m3, column-major) with scales sa (M×1) and sb (1×N)."""
    key = a.device.type
    if _SCALED_MM_OK.get(key, True):
        try:
            return torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=out_dtype, use_fast_accum=fast_accum)
        except (RuntimeError, NotImplementedError, TypeError):
            if a.is_cuda:
                raise
            _SCALED_MM_OK[key] = False
    return _emulated_mm(a, b, sa, sb, out_dtype)


class Fp8Weight:
    """A frozen (out × in) weight held in e4m3: ``w`` with per-row scales for the forward and, with
    ``backward="fp8"``, ``wt`` (Wᵀ) with per-column scales for the backward's input gradient."""

    def __init__(self, weight: torch.Tensor, backward: str = "fp8", fast_accum: bool = True):
        w = weight.detach()
        self.dtype = w.dtype  # the compute dtype: bf16 in training on CUDA (fp32 on a CPU, for the tests)
        self.out_features, self.in_features = w.shape
        self.w, self.sw = quantize_rows(w)
        self.sw_row = self.sw.reshape(1, -1).contiguous()  # (1, out): scale_b of the forward
        self.wt = self.swt_row = None
        if backward == "fp8":
            wt, swt = quantize_rows(w.t().contiguous())
            self.wt, self.swt_row = wt, swt.reshape(1, -1).contiguous()  # (in × out), scale per input column
        self.fast_accum = fast_accum

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.w, self.sw, self.wt, self.swt_row) if t is not None)

    def dequantized(self) -> torch.Tensor:
        return (self.w.float() * self.sw).to(self.dtype)

    def forward(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """x (M × in, compute dtype) · Wᵀ → (M × out) in the compute dtype; ``cache`` shares x's quantization
        among the projections that read the same input."""
        if "fp8_x" not in cache:
            cache["fp8_x"] = quantize_rows(x.contiguous())
        xq, sx = cache["fp8_x"]
        return scaled_mm(xq, self.w.t(), sx, self.sw_row, x.dtype, self.fast_accum)

    def backward(self, dy: torch.Tensor) -> torch.Tensor:
        """dy (M × out) · W → (M × in)."""
        if self.wt is None:
            return torch.mm(dy, self.dequantized().to(dy.dtype))
        dq, sd = quantize_rows(dy.contiguous())
        return scaled_mm(dq, self.wt.t(), sd, self.swt_row, dy.dtype, False)
