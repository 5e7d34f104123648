"""The fast path's decoder forward for Llama-family models (Llama, Mistral, Qwen2) with LoRA or a frozen base.

It reads the weights of the model's own modules (and Liger's kernels where ``models/kernels.py`` applied them: the
norms and the rotary embedding are called through the model's modules and module-level function) and replaces
only the plumbing: per layer ``norm → GroupFn(q, k, v) → RoPE → attention → GroupFn(o) + residual → norm →
MLPFn + residual`` (``fast/lora.py``). Attention is causal SDPA for unpacked rows (right padding never reaches a
real token under a causal mask) and the variable-length FlashAttention kernel for packed rows
(``models/attention.py``). The model object is not changed, except that ``fp8`` moves the frozen projection
weights into FP8 until :meth:`FastDecoder.release`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from tuneforge.fast.checkpoint import LayerCheckpoint, Offloader
from tuneforge.fast.lora import MLP, OPTIONS, Group, GroupFn, MLPFn, Proj
from tuneforge.utils import log

ARCHITECTURES = ("llama", "mistral", "qwen2")
ATTN_PROJ = ("q_proj", "k_proj", "v_proj")


def _base(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "module", base)


def _lora_of(module) -> tuple[str | None, str | None]:
    """(adapter name, None) for a peft LoRA layer the fast path can run, (None, None) for a plain Linear,
    (None, reason) otherwise."""
    if not hasattr(module, "lora_A"):
        return None, None if isinstance(module, torch.nn.Linear) else f"{type(module).__name__} is not a Linear"
    if getattr(module, "merged", False):
        return None, "merged adapters"
    if getattr(module, "disable_adapters", False):
        return None, "disabled adapters"
    active = [a for a in getattr(module, "active_adapters", []) if a in module.lora_A]
    if len(active) > 1:
        return None, "several active adapters"
    if not active:
        return None, None
    name = active[0]
    if name in getattr(module, "lora_variant", {}) or module.use_dora.get(name, False):
        return None, "DoRA (a LoRA variant)"
    if not isinstance(module.lora_dropout[name], torch.nn.Identity):
        return None, "lora_dropout > 0"
    if getattr(module, "lora_bias", {}).get(name, False):
        return None, "lora_bias"
    if getattr(module, "fan_in_fan_out", False):
        return None, "fan_in_fan_out weights"
    return name, None


def _base_linear(module) -> torch.nn.Module:
    return module.base_layer if hasattr(module, "base_layer") else module


def _kind(linear) -> tuple[str | None, str | None]:
    cls = type(linear).__name__
    if cls == "Linear4bit":
        return "nf4", None
    if isinstance(linear, torch.nn.Linear) and cls in ("Linear", "NonDynamicallyQuantizableLinear"):
        if linear.weight.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            return None, f"base weights of dtype {linear.weight.dtype}"
        return "dense", None
    return None, f"base layer {cls} (only nn.Linear and bitsandbytes 4-bit are covered)"


def fast_path_reason(model) -> str | None:
    """None when :class:`FastDecoder` computes exactly what this model's forward computes, else why not."""
    base = _base(model)
    cfg = getattr(base, "config", None)
    mtype = getattr(cfg, "model_type", None)
    if mtype not in ARCHITECTURES:
        return f"model type {mtype!r} (the fast path covers {', '.join(ARCHITECTURES)})"
    if getattr(cfg, "hidden_act", "silu") not in ("silu", "swish"):
        return f"hidden_act {cfg.hidden_act!r}"
    if set(getattr(cfg, "layer_types", None) or ["full_attention"]) != {"full_attention"}:
        return "sliding-window layers"
    if mtype == "mistral" and getattr(cfg, "sliding_window", None) is not None:
        return "sliding-window attention"
    if getattr(cfg, "attention_dropout", 0.0):
        return "attention dropout"
    try:
        decoder = base.get_decoder()
    except (AttributeError, NotImplementedError):
        return "the model has no decoder"
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(decoder, name):
            return f"the decoder has no {name}"
    for i, layer in enumerate(decoder.layers):
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None:
            return f"layer {i} has no self_attn/mlp"
        if getattr(attn, "sliding_window", None) is not None:
            return "sliding-window attention"
        for owner, names in ((attn, (*ATTN_PROJ, "o_proj")), (mlp, ("gate_proj", "up_proj", "down_proj"))):
            for n in names:
                m = getattr(owner, n, None)
                if m is None:
                    return f"layer {i} has no {n}"
                _, why = _lora_of(m)
                if why:
                    return why
                kind, why = _kind(_base_linear(m))
                if why:
                    return why
                if any(p.requires_grad for p in _base_linear(m).parameters()):
                    return "trainable base projections (full or freeze tuning)"
        for n in ("input_layernorm", "post_attention_layernorm"):
            if not hasattr(layer, n):
                return f"layer {i} has no {n}"
    return None  # trainable norms, embedding or head run through their own modules: their gradients flow as usual


@dataclass(eq=False)
class LayerPlan:
    layer: torch.nn.Module
    qkv: Group
    o: Group
    mlp: MLP
    heads: int
    kv_heads: int
    head_dim: int
    scaling: float
    rope: object  # apply_rotary_pos_emb of the layer's modeling module (Liger's when it is patched)

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return self.qkv.params + self.o.params + self.mlp.params


def _proj(owner, name: str, fp8: str | None) -> Proj:
    m = getattr(owner, name)
    adapter, _ = _lora_of(m)
    linear = _base_linear(m)
    kind, _ = _kind(linear)
    p = Proj(name, linear, kind, linear.out_features)
    if adapter is not None:
        p.lora_A, p.lora_B = m.lora_A[adapter].weight, m.lora_B[adapter].weight
        p.scale = float(m.scaling[adapter])
    if fp8 and kind == "dense":
        from tuneforge.fast.fp8 import Fp8Weight

        p.fp8 = Fp8Weight(linear.weight, backward=fp8)
        p.kind = "fp8"
    return p


def _compute_dtype(proj: Proj) -> torch.dtype:
    if proj.kind == "nf4":
        return proj.base.weight.quant_state.dtype
    if proj.kind == "fp8":
        return proj.fp8.dtype
    return proj.base.weight.dtype


class FastDecoder:
    """``hidden = FastDecoder(model)(input_ids, position_ids)``: the decoder's last hidden states (after the final
    norm), computed with the fast path's functions. ``checkpoint``: recompute each layer in the backward;
    ``offload``: with ``checkpoint``, keep the layer inputs in pinned CPU memory (CUDA)."""

    def __init__(self, model, checkpoint: bool = False, offload: bool = False, fp8: str | None = None,
                 attn_backend: str | None = None):
        self.model = model
        self.base = _base(model)
        self.decoder = self.base.get_decoder()
        self.checkpoint = checkpoint
        self.attn_backend = attn_backend or OPTIONS.attn_backend
        device = self.decoder.embed_tokens.weight.device
        if hasattr(self.decoder.embed_tokens, "target"):  # models/memory.CPUEmbedding
            device = self.decoder.embed_tokens.target
        self.device = torch.device(device)
        self.offloader = Offloader(self.device) if checkpoint and offload else None
        self.fp8 = fp8
        self.layers = [self._plan(layer) for layer in self.decoder.layers]
        self._released = False

    def _plan(self, layer) -> LayerPlan:
        attn, mlp = layer.self_attn, layer.mlp
        qkv = [_proj(attn, n, self.fp8) for n in ATTN_PROJ]
        o = _proj(attn, "o_proj", self.fp8)
        gate, up, down = (_proj(mlp, n, self.fp8) for n in ("gate_proj", "up_proj", "down_proj"))
        dtype = _compute_dtype(qkv[0])
        quantized = [p for p in (*qkv, o, gate, up, down) if p.kind == "nf4"]
        if quantized:  # the layer's 4-bit weights: one absmax dequantization per layer (fast/nf4.py)
            from tuneforge.fast import nf4

            lq = nf4.plan([p.base.weight for p in quantized])
            for p in quantized:
                p.quant = lq
        if self.fp8:
            for p in (*qkv, o, gate, up, down):  # the bf16 copies are gone until release()
                p.base.weight = torch.nn.Parameter(torch.empty(0, dtype=p.base.weight.dtype,
                                                               device=p.base.weight.device), requires_grad=False)
        cfg = self.base.config
        head_dim = getattr(attn, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return LayerPlan(layer, Group(qkv, dtype), Group([o], dtype),
                         MLP(Group([gate, up], dtype), Group([down], dtype)),
                         cfg.num_attention_heads, cfg.num_key_value_heads, head_dim,
                         float(getattr(attn, "scaling", head_dim ** -0.5)),
                         getattr(sys.modules[type(attn).__module__], "apply_rotary_pos_emb"))

    def valid(self) -> bool:
        """False once the adapters were merged, disabled or switched (then the model's own forward is used)."""
        if self._released:
            return False
        for lp in self.layers[:1]:
            m = lp.layer.self_attn.q_proj
            if hasattr(m, "lora_A"):
                name, why = _lora_of(m)
                if why or (name is None) != (lp.qkv.projs[0].lora_A is None):
                    return False
        return True

    def release(self) -> None:
        """Give the projections their bf16 weights back (dequantized from FP8): the model's own forward works
        again (generation after training, merging)."""
        if self.fp8 and not self._released:
            for lp in self.layers:
                for p in (*lp.qkv.projs, *lp.o.projs, *lp.mlp.up_group.projs, *lp.mlp.down.projs):
                    if p.fp8 is not None:
                        p.base.weight = torch.nn.Parameter(p.fp8.dequantized(), requires_grad=False)
                        p.fp8, p.kind = None, "dense"
        from tuneforge.fast import nf4
        from tuneforge.fast.lora import _CASTS

        _CASTS.clear()  # the adapters' compute-dtype copies
        nf4.clear()  # the last layer's float32 absmax
        self._released = True

    def _attention(self, lp: LayerPlan, q, k, v, varlen):
        """q (B, Hq, S, D), k/v (B, Hkv, S, D) → (B, S, Hq·D)."""
        b, _, s, d = q.shape
        if varlen is not None:
            from tuneforge.models.attention import varlen_attention

            qs = q.transpose(1, 2).reshape(b * s, lp.heads, d)
            ks = k.transpose(1, 2).reshape(b * s, lp.kv_heads, d)
            vs = v.transpose(1, 2).reshape(b * s, lp.kv_heads, d)
            out = varlen_attention(qs, ks, vs, varlen[0], varlen[1], lp.scaling)
            return out.reshape(b, s, lp.heads * d)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        gqa = {"enable_gqa": True} if lp.heads != lp.kv_heads else {}
        with _sdpa_backend(self.attn_backend, q.is_cuda):
            out = sdpa(q, k, v, is_causal=True, scale=lp.scaling, **gqa)
        return out.transpose(1, 2).reshape(b, s, lp.heads * d)

    def _layer(self, lp: LayerPlan, hidden, cos, sin, varlen):
        b, s, _ = hidden.shape
        x = lp.layer.input_layernorm(hidden)
        q, k, v = GroupFn.apply(x, lp.qkv, None, *lp.qkv.params)
        q = q.view(b, s, lp.heads, lp.head_dim).transpose(1, 2)
        k = k.view(b, s, lp.kv_heads, lp.head_dim).transpose(1, 2)
        v = v.view(b, s, lp.kv_heads, lp.head_dim).transpose(1, 2)
        q, k = lp.rope(q, k, cos, sin)
        o = self._attention(lp, q, k, v, varlen)
        hidden = GroupFn.apply(o, lp.o, hidden, *lp.o.params)
        x = lp.layer.post_attention_layernorm(hidden)
        return MLPFn.apply(x, lp.mlp, hidden, *lp.mlp.params)

    def __call__(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                 cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None) -> torch.Tensor:
        from tuneforge.fast.lora import _CASTS

        _CASTS.clear()  # the adapters may have changed since the last forward (optimizer step)
        hidden = self.decoder.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=hidden.device).unsqueeze(0)
        cos, sin = self.decoder.rotary_emb(hidden, position_ids)
        varlen = (cu_seqlens, max_seqlen) if cu_seqlens is not None else None
        grad = torch.is_grad_enabled()
        if self.offloader is not None and grad:
            self.offloader.begin()
        for i, lp in enumerate(self.layers):
            if self.checkpoint and grad:
                params = [p for p in lp.params if p.requires_grad]
                if not params and not hidden.requires_grad:  # nothing to train below here: no graph, no saving
                    with torch.no_grad():
                        hidden = self._layer(lp, hidden, cos, sin, varlen)
                    continue

                def run(h, lp=lp):
                    return self._layer(lp, h, cos, sin, varlen)

                hidden = LayerCheckpoint.apply(hidden, run, i, self.offloader, *params)
            else:
                hidden = self._layer(lp, hidden, cos, sin, varlen)
        return self.decoder.norm(hidden)


class _NoBackend:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _sdpa_backend(name: str, cuda: bool):
    if name == "auto" or not cuda:
        return _NoBackend()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = {"cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION],
             "flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION],
             "efficient": [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION]}[name]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:  # torch without set_priority
        return sdpa_kernel(order[:1])


def build_fast_decoder(model, asked: bool | None, checkpoint: bool, offload: bool, fp8: str | None = None,
                       attn_backend: str | None = None) -> FastDecoder | None:
    """The fast decoder for ``model`` when ``asked`` (None = auto: wherever it applies), else None; logs why."""
    if asked is False:
        log.choice("fast_path=off", "fast_path=False")
        return None
    why = fast_path_reason(model)
    if why is not None:
        if asked or fp8:
            from tuneforge.errors import ModelError

            raise ModelError(f"fast_path{'/fp8' if fp8 else ''} cannot run this model: {why}",
                             "set fast_path False (and drop fp8) to train through the model's own forward")
        log.choice("fast_path=off", why)
        return None
    fast = FastDecoder(model, checkpoint, offload, fp8, attn_backend)
    n = sum(1 for lp in fast.layers for g in (lp.qkv, lp.o, lp.mlp.up_group, lp.mlp.down) for _ in g.adapted)
    extra = (", layers recomputed in the backward" if checkpoint else "") + \
            (" with their inputs in pinned CPU memory" if fast.offloader else "") + \
            (f", frozen base in FP8 (backward {fp8})" if fp8 else "")
    log.choice("fast_path=on", f"{'asked' if asked else 'auto'}: tuneforge's LoRA layer functions for "
               f"{len(fast.layers)} layers ({n} adapted projections){extra}")
    return fast


def build_for_training(model, args, world: int = 1) -> FastDecoder | None:
    """The fast decoder for an SFT/pt training run from its TrainArgs, or None (the reason is logged)."""
    asked, fp8 = args.fast_path, OPTIONS.fp8_backward if args.fp8 else None
    why = None
    if world > 1:
        why = "multi-process training (the fast path runs in one process)"
    elif args.torch_compile:
        why = "torch_compile compiles the model's own layers"
    elif asked is None and not fp8 and not torch.cuda.is_available():
        why = "auto: on for CUDA runs (where it was measured); fast_path=True uses it on this device too"
    if why is not None:
        if asked or fp8:
            from tuneforge.errors import ModelError

            raise ModelError(f"fast_path{'/fp8' if fp8 else ''} cannot run here: {why}",
                             "drop fp8 / set fast_path False, or run without that setting")
        log.choice("fast_path=off", why)
        return None
    offload = args.enable_activation_offloading and torch.cuda.is_available()
    return build_fast_decoder(model, asked, args.gradient_checkpointing, offload, fp8)
