"""4-bit (bitsandbytes NF4/FP4) base weights of one decoder layer, dequantized for the fast path's GEMMs.

A QLoRA step dequantizes every frozen weight three times (forward, the layer's recomputation, backward): 7 weights ×
32 layers × 3 = 672 per step for an 8B model. With double quantization each is two bitsandbytes calls — the
weight's 8-bit ``absmax`` to float32 (plus its offset), then the 4-bit weight to bf16 — and on the H200 each call
cost more host time (≈ 37 µs) than its kernel took (docs/benchmarks.md, call E), so the batch-1 step waited on the
host. Here, per layer:

* the 8-bit ``absmax`` of the layer's weights live in one buffer (the quant states hold views of it, no second
  copy), each weight's segment starting on a block of ``blocksize2`` (a short last block padded), so one kernel
  dequantizes all of them and one broadcast add puts back each weight's offset; the result is kept for the one
  layer last asked for, which covers a layer's forward and, under recomputation, its recomputed forward and its
  backward (13.6 MB for an 8B layer);
* each weight is then one kernel, called through bitsandbytes' native library directly on CUDA
  (``compat.bnb_native_dequant``: the same kernel its CUDA backend calls, same arguments), through its registered
  ops elsewhere.

The numbers are bitsandbytes' own: the same kernels on the same inputs, the offset added in float32 per element as
bitsandbytes adds it (``tests/test_fast_path.py`` on a CPU, ``benchmarks/fast_check.py`` on the GPU, bit for bit).
Layers this does not cover (no double quantization, mixed block sizes or code books) keep one bitsandbytes call
per weight (``fast/lora.py``). On the H200 (calls F and G, docs/benchmarks.md): 138 µs of host time per layer
against 402 µs, and the batch-1 QLoRA step 20 % faster.
"""

from __future__ import annotations

import ctypes as ct

import torch

_LAST: dict = {}  # the float32 absmax of the layer dequantized last: {"key": id(LayerQuant), "absmax": tensor}


def clear() -> None:
    _LAST.clear()


class LayerQuant:
    """The 4-bit weights of one layer (``weights``: the ``Params4bit`` of its projections, in any order)."""

    def __init__(self, weights: list):
        states = [w.quant_state for w in weights]
        q0, s0 = states[0], states[0].state2
        self.blocksize2, self.code = s0.blocksize, s0.code
        self.weights = list(weights)
        bs2 = self.blocksize2
        device = q0.absmax.device
        blocks = [-(-qs.absmax.numel() // bs2) for qs in states]  # each weight's segment starts on a block
        u8 = torch.zeros(sum(blocks) * bs2, dtype=torch.uint8, device=device)
        a2 = torch.cat([qs.state2.absmax.reshape(-1).float() for qs in states])
        self.offsets = torch.cat([qs.offset.reshape(1).float().to(device).expand(b)
                                  for qs, b in zip(states, blocks)]).contiguous()
        self.spans: dict[int, tuple[int, int]] = {}
        at = 0
        for w, qs, b in zip(weights, states, blocks):  # the quant states now hold views of the layer's buffers
            n = qs.absmax.numel()
            u8[at:at + n] = qs.absmax.reshape(-1)
            qs.absmax = u8[at:at + n]
            qs.state2.absmax = a2[at // bs2:at // bs2 + b]
            self.spans[id(w)] = (at, at + n)
            at += b * bs2
        self.u8, self.a2 = u8, a2
        self.ptrs = [qs.absmax.data_ptr() for qs in states]
        # per weight, what the native kernel call needs besides the pointers (read once, not per call)
        lib = _native(u8)
        self.native: dict[int, tuple] = {}
        if lib is not None:
            for w, qs in zip(weights, states):
                fn = lib[f"cdequantize_blockwise_{_DTYPES[qs.dtype]}_{qs.quant_type}"]
                self.native[id(w)] = (fn, 4 * self.spans[id(w)][0], ct.c_int32(qs.blocksize),
                                      ct.c_int32(qs.shape.numel()), qs.shape, qs.dtype)
        self.device = device

    @staticmethod
    def reason(weights: list) -> str | None:
        """None when :class:`LayerQuant` covers these weights, else why not."""
        states = [getattr(w, "quant_state", None) for w in weights]
        if any(qs is None for qs in states):
            return "a weight without a bitsandbytes quant state"
        if any(getattr(qs, "packing_format_for_cpu", False) for qs in states):
            return "bitsandbytes' CPU inference layout"
        if not all(qs.nested for qs in states):
            return "no double quantization (one absmax per weight already)"
        q0, s0 = states[0], states[0].state2
        devices = {qs.absmax.device for qs in states} | {w.device for w in weights}
        if len(devices) != 1:
            return "weights on several devices"
        for qs in states:
            s2 = qs.state2
            if (s2.blocksize, qs.blocksize, qs.quant_type, qs.dtype) != (s0.blocksize, q0.blocksize, q0.quant_type,
                                                                          q0.dtype):
                return "mixed block sizes, quant types or dtypes"
            if qs.dtype not in _DTYPES or qs.quant_type not in ("nf4", "fp4"):
                return f"{qs.quant_type} weights dequantized to {qs.dtype}"
            if qs.absmax.dtype != torch.uint8 or s2.absmax.numel() != -(-qs.absmax.numel() // s2.blocksize):
                return "an 8-bit absmax whose second-level blocks do not match it"
            if s2.code.device != s0.code.device or not torch.equal(s2.code, s0.code):
                return "several code books"
            if not torch.is_tensor(qs.offset) or qs.offset.numel() != 1:
                return "an absmax offset that is not one number"
        return None

    def valid(self) -> bool:
        """False once a quant state no longer holds our views (the model was moved or re-quantized)."""
        return all(w.quant_state.absmax.data_ptr() == p for w, p in zip(self.weights, self.ptrs))

    def absmax(self) -> torch.Tensor:
        """The float32 absmax of all the layer's weights (cached for the layer asked for last)."""
        if _LAST.get("key") == id(self):
            return _LAST["absmax"]
        if not self.valid():  # the model was moved since: gather the new quant states' absmax again
            self.__init__(self.weights)
        lib = _native(self.u8)
        if lib is not None:
            out = torch.empty(self.u8.numel(), dtype=torch.float32, device=self.u8.device)
            code = self.code if self.code.device == self.u8.device else self.code.to(self.u8.device)
            lib["cdequantize_blockwise_fp32"](
                ct.c_void_p(code.data_ptr()), ct.c_void_p(self.u8.data_ptr()), ct.c_void_p(self.a2.data_ptr()),
                ct.c_void_p(out.data_ptr()), ct.c_int32(self.blocksize2), ct.c_int32(self.u8.numel()),
                ct.c_void_p(torch._C._cuda_getCurrentRawStream(self.u8.device.index)))
        else:
            out = _ops_blockwise(self.u8, self.a2, self.code.to(self.u8.device), self.blocksize2)
        out.view(-1, self.blocksize2).add_(self.offsets.unsqueeze(1))
        _LAST.clear()
        _LAST.update(key=id(self), absmax=out)
        return out

    def dequantize(self, w) -> torch.Tensor:
        """Weight ``w`` of this layer in its quant state's dtype (a new tensor)."""
        call = self.native.get(id(w))
        if call is not None and self.device.index == torch.cuda.current_device():
            fn, offset, blocksize, n, shape, dtype = call
            absmax = self.absmax()
            out = torch.empty(shape, dtype=dtype, device=self.device)
            fn(None, ct.c_void_p(w.data_ptr()), ct.c_void_p(absmax.data_ptr() + offset),
               ct.c_void_p(out.data_ptr()), blocksize, n,
               ct.c_void_p(torch._C._cuda_getCurrentRawStream(self.device.index)))
            return out
        qs = w.quant_state
        start, end = self.spans[id(w)]
        return torch.ops.bitsandbytes.dequantize_4bit.default(w.data, self.absmax()[start:end], qs.blocksize,
                                                              qs.quant_type, qs.shape, qs.dtype)


def _ops_blockwise(a, absmax, code, blocksize):
    """bitsandbytes' registered op for the 8-bit absmax (off CUDA, or without its native functions)."""
    return torch.ops.bitsandbytes.dequantize_blockwise.default(a, absmax, code, blocksize, torch.float32)


_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _native(t: torch.Tensor):
    """bitsandbytes' native CUDA functions for a tensor on the current CUDA device (None: its registered ops)."""
    if not t.is_cuda or t.device.index != torch.cuda.current_device():
        return None
    from tuneforge.compat import bnb_native_dequant

    return bnb_native_dequant()


def plan(weights: list) -> LayerQuant | None:
    """The layer's :class:`LayerQuant`, or None where it does not apply (then one bitsandbytes call per weight)."""
    return None if LayerQuant.reason(weights) is not None else LayerQuant(weights)
