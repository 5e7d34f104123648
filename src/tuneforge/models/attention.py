"""Variable-length attention for packed rows, through PyTorch's own FlashAttention kernel.

With ``packing`` a 2048-token row holds several samples. transformers' SDPA path turns the position-id restarts into
a block-diagonal mask and hands it to SDPA; a masked SDPA call computes the whole row × row causal square — for rows
of three samples about 2.5× the attention work the samples need, because the blocks that mix samples are computed and
then masked away. FlashAttention's variable-length kernel takes the sample boundaries (cumulative lengths) instead
and never touches the mixed blocks. transformers reaches that kernel only through the ``flash-attn`` package
(``flash_attention_2``, a source build on most machines); PyTorch ≥ 2.10 ships the same kernel as
``torch.nn.attention.varlen.varlen_attn``.

``tuneforge_varlen`` is registered as an attention implementation of transformers. It behaves exactly like ``sdpa``
(same mask function, same attention call) unless the forward receives the sample boundaries
(``cu_seq_lens_q/k``, ``max_length_q/k``; ``varlen_kwargs`` builds them from packed position ids), which only the
training loss passes for packed batches. Generation, evaluation, padded batches and exports therefore run the
unchanged SDPA path. The varlen kernel is picked on CUDA only; ``reference_varlen`` (one SDPA call per sample) stands
in for it on other devices, which is how the CPU tests check the plumbing.
"""

from __future__ import annotations

import inspect

import torch

NAME = "tuneforge_varlen"
_registered = False


def varlen_kernel_available() -> str | None:
    """None when torch's FlashAttention varlen kernel can run here, else why not."""
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen (added in 2.10)"
    if not torch.cuda.is_available():
        return "the varlen FlashAttention kernel needs a CUDA device"
    return None


def varlen_kwargs(position_ids: torch.Tensor) -> dict:
    """Sample boundaries of packed rows: every position-id 0 starts a segment (each row starts one, and a row's
    padding tail restarts at 0, so padding is a segment of its own that no real token attends to). Offsets index
    the rows laid end to end. One host sync (the longest segment) per batch."""
    pos = position_ids.reshape(-1)
    starts = (pos == 0).nonzero().flatten()
    total = torch.tensor([pos.numel()], device=pos.device, dtype=starts.dtype)
    cu = torch.cat([starts, total]).to(torch.int32)
    longest = int(cu.diff().max())
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def reference_varlen(q, k, v, cu, scale):
    """One causal SDPA call per segment: the definition the kernel must match ((T, H, D) layout, GQA repeated)."""
    out = torch.empty_like(q)
    rep = q.shape[1] // k.shape[1]
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        qs, ks, vs = (t[a:b].transpose(0, 1) for t in (q, k, v))
        ks, vs = ks.repeat_interleave(rep, 0), vs.repeat_interleave(rep, 0)
        out[a:b] = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=True,
                                                                    scale=scale).transpose(0, 1)
    return out


_KERNEL: dict = {}  # filled by register(), outside any compiled region (torch.compile traces the forward)


def _kernel_options() -> dict:
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    opts = {"fn": varlen_attn, "gqa": "enable_gqa" in params, "native_gqa": False,
            "causal": {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}}  # >2.10 : 2.10
    if not opts["gqa"]:
        opts["native_gqa"] = _native_gqa_works(opts)
    return opts


def _native_gqa_works(opts: dict) -> bool:
    """torch 2.10/2.11's varlen_attn has no ``enable_gqa`` flag, but the FlashAttention kernel under it takes fewer
    key/value heads than query heads natively. Probe it once (forward and gradients against ``reference_varlen``);
    when it works, key/value heads are not repeated (saves a copy of K and V and a reduction per layer)."""
    try:
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(96, 4, 64, device="cuda", generator=g, dtype=torch.bfloat16, requires_grad=True)
        k, v = (torch.randn(96, 2, 64, device="cuda", generator=g, dtype=torch.bfloat16, requires_grad=True)
                for _ in range(2))
        cu = torch.tensor([0, 40, 96], device="cuda", dtype=torch.int32)
        w = torch.randn(96, 4, 64, device="cuda", generator=g)
        got = opts["fn"](q, k, v, cu, cu, 56, 56, scale=0.125, **opts["causal"])
        (got.float() * w).sum().backward()
        grads = [t.grad.float() for t in (q, k, v)]
        qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
        ref = reference_varlen(qf, kf, vf, cu, 0.125)
        (ref * w).sum().backward()
        errs = [float((got.float() - ref).abs().max())] + [float((a - b.grad).abs().max())
                                                          for a, b in zip(grads, (qf, kf, vf))]
        return max(errs) < 5e-2
    except (RuntimeError, ValueError, TypeError):
        return False


def _kernel(q, k, v, cu, longest, scale):
    if not q.is_cuda or not _KERNEL:
        return reference_varlen(q, k, v, cu, scale)
    extra = dict(_KERNEL["causal"])
    if q.shape[1] != k.shape[1]:
        if _KERNEL["gqa"]:
            extra["enable_gqa"] = True
        elif not _KERNEL["native_gqa"]:
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    dtype = q.dtype
    if dtype not in (torch.float16, torch.bfloat16):  # the kernel is half precision only
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    return _KERNEL["fn"](q, k, v, cu, cu, longest, longest, scale=scale, **extra).to(dtype)


def varlen_attention(q, k, v, cu, longest, scale):
    """Causal attention within each segment of packed (T, H, D) tensors (the kernel on CUDA, else the reference):
    what ``fast/decoder.py`` calls for packed rows."""
    if q.is_cuda and not _KERNEL and varlen_kernel_available() is None:
        _KERNEL.update(_kernel_options())
    return _kernel(q, k, v, cu, longest, scale)


def varlen_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                             is_causal=None, **kwargs):
    """transformers attention interface. Query (B, Hq, S, D), key/value (B, Hkv, S, D) → ((B, S, Hq, D), None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    usable = (cu is not None and query.shape[2] == key.shape[2] and dropout == 0.0
              and getattr(module, "sliding_window", None) is None and kwargs.get("sliding_window") is None
              and getattr(module, "is_causal", True) and is_causal is not False)
    if not usable:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    b, hq, s, d = query.shape
    q = query.transpose(1, 2).reshape(b * s, hq, d)  # (B, S, H, D) is usually the memory layout already: a view
    k = key.transpose(1, 2).reshape(b * s, key.shape[1], d)
    v = value.transpose(1, 2).reshape(b * s, value.shape[1], value.shape[3])
    scale = scaling if scaling is not None else d ** -0.5
    out = _kernel(q, k, v, cu, kwargs["max_length_q"], scale)  # no int(): under compile it may be symbolic
    return out.reshape(b, s, hq, out.shape[-1]), None


def register() -> str:
    """Register ``tuneforge_varlen`` with transformers' attention and mask interfaces (idempotent)."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        if varlen_kernel_available() is None:
            _KERNEL.update(_kernel_options())
        AttentionInterface.register(NAME, varlen_attention_forward)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
        _registered = True
    return NAME


def uses_varlen(model: torch.nn.Module) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(getattr(base, "config", None), "_attn_implementation", None) == NAME
