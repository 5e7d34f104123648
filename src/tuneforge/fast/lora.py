"""Autograd functions for the LoRA-adapted projections of a decoder layer.

peft computes every adapted projection as ``base(x) + lora_B(lora_A(x)) · s``: five kernels forward (base GEMM, A
GEMM, the scale, B GEMM, the add), about eight backward (with two full-width adds), and each projection reads its
input again for its own ``A``. Here a *group* of projections that share one input (q/k/v; gate/up) is one function:

* forward: ``h = x · [A₁; A₂; …]ᵀ`` (one skinny GEMM reads ``x`` once for all adapters), then per projection the
  base GEMM and ``y += s · h_i · B_iᵀ`` added in place by ``addmm_`` (the B product never exists on its own);
* backward: ``dx = Σ dy_i · W_i`` accumulated in place (``addmm_``), ``dh_i = s · dy_i · B_i``,
  ``dx += dh · [A₁; A₂; …]`` in one GEMM, ``dB_i = s · dy_iᵀ · h_i``, ``dA = dhᵀ · x`` (one GEMM for the group);
* o_proj and down_proj also take the residual stream and return ``residual + projection`` (the residual is the
  GEMM's C operand, no separate add kernel);
* the MLP (gate/up → SwiGLU → down) is one function that keeps ``x``, the gate and up outputs and the rank-r
  activations, and recomputes the SwiGLU product in its backward (transformers keeps it too: one
  tokens × intermediate tensor per layer less).

Frozen base weights come as bf16/fp32 tensors, as bitsandbytes NF4/FP4 (dequantized per call, as bitsandbytes
itself does for training batches) or as FP8 (``fast/fp8.py``). Only the LoRA matrices get gradients; base weights
are frozen by construction (``fast/decoder.py`` refuses models where they are not).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch


@dataclass
class Options:
    """Implementation choices with the same math; defaults from the H200 measurements (docs/benchmarks.md)."""

    inplace_lora: bool = True  # y.addmm_(h, Bᵀ) instead of y.add_(h · Bᵀ)
    fuse_residual: bool = True  # residual as the base GEMM's C operand instead of a separate add
    # SDPA backend for unpacked rows on CUDA: auto (PyTorch's choice: flash), flash, cudnn. cuDNN ran attention
    # alone 1.85x faster on the H200 (fast_check) but the whole step no faster (call B): kept as an option.
    attn_backend: str = "auto"
    fp8_backward: str = "fp8"  # fp8: Wᵀ kept in FP8 for the input gradient ("fp8") or dequantized ("bf16")


OPTIONS = Options()


@dataclass(eq=False)
class Proj:
    """One projection of a layer: its frozen base linear and, when adapted, the peft adapter's name."""

    name: str
    base: torch.nn.Module  # nn.Linear or bitsandbytes Linear4bit
    kind: str  # "dense", "nf4" (bitsandbytes 4-bit) or "fp8"
    out_features: int
    lora_A: torch.nn.Parameter | None = None
    lora_B: torch.nn.Parameter | None = None
    scale: float = 1.0
    fp8: object = None  # fast.fp8.Fp8Weight when kind == "fp8"
    quant: object = None  # fast.nf4.LayerQuant of its layer when kind == "nf4" and it applies

    @property
    def rank(self) -> int:
        return 0 if self.lora_A is None else self.lora_A.shape[0]


@dataclass(eq=False)
class Group:
    """Projections that read the same input. ``params`` are the LoRA tensors in the order the function takes them."""

    projs: list[Proj]
    dtype: torch.dtype
    params: list[torch.nn.Parameter] = field(default_factory=list)

    def __post_init__(self):
        self.params = [t for p in self.projs if p.lora_A is not None for t in (p.lora_A, p.lora_B)]
        self.adapted = [p for p in self.projs if p.lora_A is not None]


def _dequantize_4bit(w) -> torch.Tensor:
    """bitsandbytes' dequantization, calling its registered ops directly (the same kernels as
    ``bitsandbytes.functional.dequantize_4bit``, without its per-call argument checks: this runs 3 × 7 times per
    layer and step)."""
    qs = w.quant_state
    if getattr(qs, "packing_format_for_cpu", False):  # bitsandbytes' CPU inference layout
        from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse

        w.data, w.quant_state = _convert_weight_packed_for_cpu_inverse(w.data, qs)
        qs = w.quant_state
    try:
        ops = torch.ops.bitsandbytes
        absmax = qs.absmax
        if qs.nested:
            s2 = qs.state2
            absmax = ops.dequantize_blockwise.default(absmax, s2.absmax, s2.code.to(absmax.device), s2.blocksize,
                                                      torch.float32)
            absmax = absmax.add_(qs.offset)
        return ops.dequantize_4bit.default(w.data, absmax, qs.blocksize, qs.quant_type, qs.shape, qs.dtype)
    except (AttributeError, RuntimeError, TypeError):  # another bitsandbytes: its public function
        import bitsandbytes.functional as bnbf

        return bnbf.dequantize_4bit(w.data, qs)


def _cast(t: torch.Tensor, dtype: torch.dtype, cache: dict) -> torch.Tensor:
    """``t.to(dtype)``, made once per forward: the LoRA matrices are cast once for the forward, the layer
    recomputation and the backward of a micro-batch instead of in each. ``FastDecoder`` empties the cache at the
    start of every forward. (Not keyed on the tensor's version counter: torch's fused AdamW and bitsandbytes'
    8-bit optimizers update parameters in place without bumping it — measured on the H200, call B, where such a
    cache kept the initial adapters and nothing trained; tests/test_fast_path.py runs the fused optimizer.)"""
    if t.dtype == dtype:
        return t
    key = id(t)
    hit = cache.get(key)
    if hit is not None and hit[0]() is t:
        return hit[1]
    out = t.detach().to(dtype)
    cache[key] = (weakref.ref(t), out)
    return out


_CASTS: dict = {}  # emptied by FastDecoder.__call__ (each forward) and FastDecoder.release()


def _dense(p: Proj, dtype: torch.dtype) -> torch.Tensor:
    """The base weight (out × in) in the compute dtype; 4-bit weights are dequantized (a temporary)."""
    w = p.base.weight
    if p.kind == "nf4":
        w = p.quant.dequantize(w) if p.quant is not None else _dequantize_4bit(w)
    return w if w.dtype == dtype else w.to(dtype)


def base_forward(x: torch.Tensor, p: Proj, dtype: torch.dtype, cache: dict, residual: torch.Tensor | None = None):
    """``residual + x · Wᵀ + b`` for a 2-D ``x``. ``cache`` holds what the group's projections share (FP8 input)."""
    bias = p.base.bias
    if p.kind == "fp8":
        y = p.fp8.forward(x, cache)
        if bias is not None:
            y.add_(bias.to(y.dtype))
        return y if residual is None else y.add_(residual)
    w = _dense(p, dtype)
    if residual is not None and OPTIONS.fuse_residual:
        y = torch.addmm(residual, x, w.t())
        return y if bias is None else y.add_(bias.to(dtype))
    y = torch.mm(x, w.t()) if bias is None else torch.addmm(bias.to(dtype), x, w.t())
    return y if residual is None else y.add_(residual)


def base_backward(dy: torch.Tensor, p: Proj, dtype: torch.dtype, acc: torch.Tensor | None) -> torch.Tensor:
    """``acc + dy · W`` (a new tensor when ``acc`` is None)."""
    if p.kind == "fp8":
        g = p.fp8.backward(dy)
        return g if acc is None else acc.add_(g)
    w = _dense(p, dtype)
    return torch.mm(dy, w) if acc is None else acc.addmm_(dy, w)


def _add_lora(y: torch.Tensor, h: torch.Tensor, p: Proj, dtype: torch.dtype) -> None:
    b = _cast(p.lora_B, dtype, _CASTS)
    if OPTIONS.inplace_lora:
        y.addmm_(h, b.t(), alpha=p.scale)
    else:
        y.add_(torch.mm(h, b.t()), alpha=p.scale)


def _lora_forward_h(x: torch.Tensor, g: Group) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """h = x · [A₁; A₂; …]ᵀ for the group's adapted projections (None when none is adapted)."""
    if not g.adapted:
        return None, []
    a = _stacked_A(g)
    return torch.mm(x, a.t()), [a]


def _stacked_A(g: Group) -> torch.Tensor:
    """[A₁; A₂; …] of the group's adapted projections in the compute dtype (once per forward, see ``_cast``)."""
    key = ("A", id(g))
    hit = _CASTS.get(key)
    if hit is not None and hit[0]() is g:
        return hit[1]
    a = torch.cat([p.lora_A.detach().to(g.dtype) for p in g.adapted]) if len(g.adapted) > 1 else \
        g.adapted[0].lora_A.detach().to(g.dtype)
    _CASTS[key] = (weakref.ref(g), a)
    return a


def _slices(g: Group) -> dict[int, slice]:
    out, at = {}, 0
    for p in g.adapted:
        out[id(p)] = slice(at, at + p.rank)
        at += p.rank
    return out


def _lora_backward(dys: list[torch.Tensor | None], x: torch.Tensor, h: torch.Tensor, g: Group,
                   dx: torch.Tensor | None, need_dx: bool = True) -> tuple[torch.Tensor | None, list]:
    """Gradients of the LoRA matrices of ``g`` and, when ``need_dx``, the adapters' share of the input gradient
    added into ``dx`` in place."""
    if not g.adapted:
        return dx, []
    sl = _slices(g)
    dh_parts, grads = [], []
    for p, dy in zip(g.projs, dys):
        if p.lora_A is None:
            continue
        hi = h[:, sl[id(p)]]
        if dy is None:
            dh_parts.append(torch.zeros_like(hi))
            grads += [torch.zeros_like(p.lora_A), torch.zeros_like(p.lora_B)]
            continue
        dh_parts.append(torch.mm(dy, _cast(p.lora_B, g.dtype, _CASTS)).mul_(p.scale))
        grads.append(None)  # dA filled below
        grads.append(torch.mm(dy.t(), hi).mul_(p.scale).to(p.lora_B.dtype))
    dh = torch.cat(dh_parts, 1) if len(dh_parts) > 1 else dh_parts[0]
    a = _stacked_A(g)
    if need_dx:
        dx = torch.mm(dh, a) if dx is None else dx.addmm_(dh, a)
    da = torch.mm(dh.t(), x)
    for i, p in enumerate(g.adapted):
        if grads[2 * i] is None:
            grads[2 * i] = da[sl[id(p)]].to(p.lora_A.dtype)
    return dx, grads


class GroupFn(torch.autograd.Function):
    """``outs_i = x · W_iᵀ + b_i + s_i · x · A_iᵀ · B_iᵀ`` (+ ``residual`` for a one-projection group)."""

    @staticmethod
    def forward(ctx, x, g: Group, residual, *params):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if x2.dtype != g.dtype:
            x2 = x2.to(g.dtype)
        h, _ = _lora_forward_h(x2, g)
        sl = _slices(g)
        res2 = None if residual is None else residual.reshape(-1, residual.shape[-1]).to(g.dtype)
        cache: dict = {}
        outs = []
        for i, p in enumerate(g.projs):
            y = base_forward(x2, p, g.dtype, cache, res2 if i == 0 else None)
            if p.lora_A is not None:
                _add_lora(y, h[:, sl[id(p)]], p, g.dtype)
            outs.append(y.view(*shape[:-1], p.out_features))
        ctx.g, ctx.x_dtype, ctx.x_shape = g, x.dtype, shape
        ctx.res_dtype = None if residual is None else residual.dtype
        ctx.save_for_backward(x2, h)
        return tuple(outs) if len(outs) > 1 else outs[0]

    @staticmethod
    def backward(ctx, *grads):
        x2, h = ctx.saved_tensors
        g = ctx.g
        dys = [None if d is None else d.reshape(-1, p.out_features).to(g.dtype) for d, p in zip(grads, g.projs)]
        dx = None
        if ctx.needs_input_grad[0]:
            for p, dy in zip(g.projs, dys):
                if dy is not None:
                    dx = base_backward(dy, p, g.dtype, dx)
        lora_dx, pgrads = _lora_backward(dys, x2, h, g, dx, ctx.needs_input_grad[0])
        if ctx.needs_input_grad[0]:
            dx = lora_dx if lora_dx is not None else (dx if dx is not None else torch.zeros_like(x2))
            dx = dx.view(ctx.x_shape).to(ctx.x_dtype)
        else:
            dx = None
        dres = None if ctx.res_dtype is None or grads[0] is None else grads[0].to(ctx.res_dtype)
        return (dx, None, dres, *pgrads)


def _swiglu(e: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    if e.is_cuda and _liger_swiglu() is not None:
        return _liger_swiglu()[0](e, u)[2]
    return torch.nn.functional.silu(e) * u


def _swiglu_backward(e: torch.Tensor, u: torch.Tensor, da: torch.Tensor):
    """(d gate, d up); on CUDA computed in place into ``e`` and ``u`` (Liger's kernel)."""
    if e.is_cuda and _liger_swiglu() is not None:
        return _liger_swiglu()[1](e, u, da)
    ef = e.float()
    sig = torch.sigmoid(ef)
    silu = ef * sig
    du = (da.float() * silu).to(u.dtype)
    de = (da.float() * u.float() * sig * (1 + ef * (1 - sig))).to(e.dtype)
    return de, du


_LIGER: list = []


def _liger_swiglu():
    if not _LIGER:
        try:
            from liger_kernel.ops.swiglu import swiglu_backward, swiglu_forward

            _LIGER.append((swiglu_forward, swiglu_backward))
        except Exception:  # noqa: BLE001 - liger-kernel missing or without these functions: torch below
            _LIGER.append(None)
    return _LIGER[0]


@dataclass(eq=False)
class MLP:
    up_group: Group  # gate, up
    down: Group  # down (one projection)

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return self.up_group.params + self.down.params


class MLPFn(torch.autograd.Function):
    """``residual + down(silu(gate(x)) · up(x))`` with LoRA on any of the three projections."""

    @staticmethod
    def forward(ctx, x, m: MLP, residual, *params):
        shape = x.shape
        gu, dn = m.up_group, m.down
        dtype = gu.dtype
        x2 = x.reshape(-1, shape[-1])
        if x2.dtype != dtype:
            x2 = x2.to(dtype)
        h_gu, _ = _lora_forward_h(x2, gu)
        sl = _slices(gu)
        cache: dict = {}
        gate, up = gu.projs
        e = base_forward(x2, gate, dtype, cache)
        u = base_forward(x2, up, dtype, cache)
        for p, y in ((gate, e), (up, u)):
            if p.lora_A is not None:
                _add_lora(y, h_gu[:, sl[id(p)]], p, dtype)
        a = _swiglu(e, u)
        h_d, _ = _lora_forward_h(a, dn)
        res2 = None if residual is None else residual.reshape(-1, residual.shape[-1]).to(dtype)
        down = dn.projs[0]
        out = base_forward(a, down, dtype, {}, res2)
        if down.lora_A is not None:
            _add_lora(out, h_d, down, dtype)
        del a
        ctx.m, ctx.x_dtype, ctx.x_shape = m, x.dtype, shape
        ctx.res_dtype = None if residual is None else residual.dtype
        ctx.save_for_backward(x2, e, u, h_gu, h_d)
        return out.view(*shape[:-1], down.out_features)

    @staticmethod
    def backward(ctx, dout):
        x2, e, u, h_gu, h_d = ctx.saved_tensors
        m = ctx.m
        gu, dn = m.up_group, m.down
        dtype = gu.dtype
        d2 = dout.reshape(-1, dout.shape[-1]).to(dtype)
        a = _swiglu(e, u)  # recomputed: not kept from the forward
        da = base_backward(d2, dn.projs[0], dtype, None)
        da, dgrads = _lora_backward([d2], a, h_d, dn, da)
        del a
        de, du = _swiglu_backward(e, u, da)
        del da
        dx = None
        if ctx.needs_input_grad[0]:
            dx = base_backward(de, gu.projs[0], dtype, None)
            dx = base_backward(du, gu.projs[1], dtype, dx)
        dx2, ugrads = _lora_backward([de, du], x2, h_gu, gu, dx, ctx.needs_input_grad[0])
        dx = dx2.view(ctx.x_shape).to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
        dres = None if ctx.res_dtype is None else dout.to(ctx.res_dtype)
        return (dx, None, dres, *ugrads, *dgrads)
