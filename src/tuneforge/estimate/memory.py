"""Predict peak GPU memory of a training run from the model's config.json alone (no weights are read).

The model is a sum of parts, each from a count of parameters or tokens times bytes:

- weights: frozen weights in bf16/fp16 (2 bytes), trainable weights in float32 (4 bytes; tuneforge keeps trainable
  weights in float32), 4-/8-bit quantized linear layers at 0.516/1.03 bytes (bitsandbytes NF4 with double
  quantization / LLM.int8), embeddings and head unquantized;
- adapter (the method's trainable parameters, counted by its record — e.g. LoRA r·(in+out) per adapted linear
  layer — in float32), gradients (4 bytes per trainable parameter), optimizer states (AdamW 8 bytes, 8-bit AdamW 2
  bytes, SGD 0);
- activations per token per layer, in 2-byte elements: 8·d + 2·kv + 3·ffn with Liger's kernels (10·d + 2·kv + 4·ffn
  without: RMSNorm's float32 copies and a separate SiLU output are saved too). With gradient checkpointing only each
  layer's input (d) is kept, plus one layer's full set while it is recomputed; offloading moves the layer inputs to
  CPU memory;
- logits: the supervised positions × vocabulary in bf16 + float32 + float32 gradient (10 bytes each) unless Liger's
  fused linear cross-entropy runs it in chunks;
- workspace: what the allocator holds beyond live tensors (reserved − allocated) and the CUDA context: 5% + 0.5 GiB.

The coefficients were checked against peaks measured on an H200 (docs/benchmarks.md, "Memory estimate vs measured").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config.messages import Msg
from tuneforge.config.registry import Method, method as method_record
from tuneforge.errors import ConfigError, TuneforgeError

GiB = 2**30
GPUS = {  # usable memory in GiB as torch reports it (total_memory), rounded down
    "h200": 139.8, "h100": 79.1, "a100-80gb": 79.1, "a100-40gb": 39.4, "l40s": 44.3, "a6000": 47.5,
    "rtx4090": 23.6, "rtx3090": 23.6, "a10": 22.0, "l4": 22.0, "v100-32gb": 31.7, "v100-16gb": 15.8, "t4": 14.7,
}
# `--method qlora4|qlora8`: shorthands kept from before --quantization_bit was read (= lora on a 4/8-bit base)
SHORTHANDS = {"qlora4": ("lora", 4), "qlora8": ("lora", 8)}


@dataclass
class Shape:
    vocab: int
    d: int
    layers: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    bias: bool
    model_type: str

    @classmethod
    def from_config(cls, cfg: dict) -> "Shape":
        text = cfg.get("text_config") or cfg
        try:
            d, heads = int(text["hidden_size"]), int(text["num_attention_heads"])
            return cls(vocab=int(text["vocab_size"]), d=d, layers=int(text["num_hidden_layers"]),
                       ffn=int(text["intermediate_size"]), heads=heads,
                       kv_heads=int(text.get("num_key_value_heads") or heads),
                       head_dim=int(text.get("head_dim") or d // heads),
                       tied=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
                       bias=bool(text.get("attention_bias", text.get("model_type") == "qwen2")),
                       model_type=str(text.get("model_type", "?")))
        except KeyError as e:
            raise TuneforgeError(f"config.json has no {e.args[0]!r}: only decoder-only transformer configs (Llama, "
                                 f"Qwen, Mistral, Gemma, …) can be estimated", "give the model's config.json")

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (self.d, q), "k_proj": (self.d, kv), "v_proj": (self.d, kv), "o_proj": (q, self.d),
                "gate_proj": (self.d, self.ffn), "up_proj": (self.d, self.ffn), "down_proj": (self.ffn, self.d)}

    @property
    def linear_params(self) -> int:
        per = sum(a * b for a, b in self.linear_shapes().values())
        if self.bias:
            per += self.heads * self.head_dim + 2 * self.kv_heads * self.head_dim
        return per * self.layers

    @property
    def embed_params(self) -> int:
        return self.vocab * self.d * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        norms = self.d * (2 * self.layers + 1)
        return self.linear_params + self.embed_params + norms


@dataclass
class Plan:
    """One training run as the estimate sees it. ``method`` is a finetuning_type (or a shorthand, qlora4/qlora8);
    ``settings`` are the method's own options by their flat names (missing ones take their defaults) and
    ``explicit`` the ones the user set (some defaults depend on it)."""

    method: str = "lora"
    quantization_bit: int | None = None
    batch: int = 1
    seq: int = 2048
    packing: bool = False
    gradient_checkpointing: bool = False
    offload: bool = False
    liger: bool = False
    optim: str = "adamw_torch"
    supervised_fraction: float = 0.5
    weight_bytes: int = 2  # bf16/fp16 (4 for float32 runs)
    offload_embedding: bool | None = None  # None = as training does it: on for quantized bases, untied embedding
    settings: dict = field(default_factory=dict)
    explicit: frozenset = None  # type: ignore[assignment]  # default: the keys given in settings

    def __post_init__(self):
        from tuneforge.config.parse import Config

        if self.method in SHORTHANDS:
            self.method, self.quantization_bit = SHORTHANDS[self.method]
        rec = self.record
        if self.quantization_bit is not None:
            if self.quantization_bit not in (4, 8):
                raise ConfigError([Msg("quantization_bits", got=self.quantization_bit)])
            if rec.quantized_refusal:
                raise ConfigError([Msg(rec.quantized_refusal, method=rec.name)])
        if self.explicit is None:
            self.explicit = frozenset(self.settings)
        defaults = Config().to_flat()
        self.settings = {k: self.settings.get(k, defaults[k]) for k in rec.options}

    @property
    def record(self) -> Method:
        return method_record(self.method)

    @property
    def label(self) -> str:
        return self.method + (f" on a {self.quantization_bit}-bit base" if self.quantization_bit else "")


@dataclass
class Estimate:
    parts: dict[str, float] = field(default_factory=dict)  # GiB
    notes: list[str] = field(default_factory=list)

    @property
    def allocated(self) -> float:
        return sum(v for k, v in self.parts.items() if k != "workspace")

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def load_shape(name: str) -> Shape:
    """A Shape from a config.json file, a model folder, or a cached model alias. Never reads weights."""
    p = Path(name).expanduser()
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        from tuneforge.models.load import ALIASES, cache_root

        em = ALIASES.get(name.lower())
        cached = em and cache_root() / em.gguf_file.removesuffix(".gguf").lower() / "config.json"
        if cached and cached.is_file():
            p = cached
        else:
            raise TuneforgeError(f"no config.json for {name!r}",
                                 "give a config.json file, a Hugging Face model folder, or an alias that has been "
                                 f"used once (cached): {', '.join(sorted(ALIASES))}")
    try:
        return Shape.from_config(json.loads(p.read_text()))
    except json.JSONDecodeError as e:
        raise TuneforgeError(f"{p}: not valid JSON ({e.msg})", "give the model's config.json") from None


def trainable_params(s: Shape, plan: Plan) -> int:
    """The method's trainable parameters, as its record counts them."""
    return plan.record.estimate(s, plan)


def estimate(s: Shape, plan: Plan) -> Estimate:
    e = Estimate()
    rec = plan.record
    n_train = trainable_params(s, plan)
    wb = plan.weight_bytes
    if plan.quantization_bit:  # quantized frozen base (the record allows it: checked in Plan)
        per = 0.516 if plan.quantization_bit == 4 else 1.03
        e.parts["weights"] = (s.linear_params * per + (s.params - s.linear_params) * wb) / GiB
        e.notes.append("quantized linear layers: NF4 + double quantization ≈ 4.13 bits/parameter" if
                       plan.quantization_bit == 4 else "LLM.int8 linear layers ≈ 8.25 bits/parameter")
        if plan.quantization_bit == 8:
            e.notes.append("8-bit figures are not yet validated against a measured peak (4-bit ones are: "
                           "docs/benchmarks.md)")
    elif rec.adapter:  # a frozen base and separate adapter weights
        e.parts["weights"] = s.params * wb / GiB
    else:  # the method trains base weights: those in float32, the rest frozen
        e.parts["weights"] = ((s.params - n_train) * wb + n_train * 4) / GiB
    offload = plan.offload_embedding
    if offload is None:
        offload = plan.quantization_bit is not None
    if offload and not s.tied and rec.keeps_embedding is None and n_train < s.params:
        e.parts["weights"] -= s.vocab * s.d * wb / GiB
        e.notes.append(f"offload_embedding: the input embedding ({s.vocab * s.d * wb / GiB:.2f} GiB) stays in "
                       f"CPU memory")
    e.parts["adapter"] = n_train * 4 / GiB if rec.adapter else 0.0
    e.parts["gradients"] = n_train * 4 / GiB
    state_bytes = {"sgd": 0, "adamw_8bit": 2, "paged_adamw_8bit": 2}.get(plan.optim, 8)
    e.parts["optimizer"] = n_train * state_bytes / GiB
    if plan.optim == "paged_adamw_8bit":
        e.notes.append("paged_adamw_8bit: states can page out to CPU memory under pressure (counted on the GPU here)")
    # Activations.
    tokens = plan.batch * plan.seq  # packed rows are full; an unpacked batch is as wide as its longest sample
    kv = s.kv_heads * s.head_dim
    per_tok_layer = 2 * ((8 * s.d + 2 * kv + 3 * s.ffn) if plan.liger else (10 * s.d + 2 * kv + 4 * s.ffn))
    if rec.virtual_tokens:
        tokens += plan.batch * plan.settings["num_virtual_tokens"]
    if plan.gradient_checkpointing:
        inputs = 0 if plan.offload else tokens * s.d * 2 * s.layers
        act = inputs + tokens * per_tok_layer + 2 * tokens * s.d * 2  # + the layer being recomputed, 2 in flight
        e.notes.append("gradient checkpointing: layer inputs kept" + (" on the CPU (offloaded)" if plan.offload
                                                                       else "") + ", one layer recomputed at a time")
    else:
        act = tokens * per_tok_layer * s.layers
    e.parts["activations"] = act / GiB
    n_sup = tokens * plan.supervised_fraction
    if plan.liger:
        # Liger picks chunks of next_power_of_2(ceil(tokens / ceil(vocab / d))) positions
        per = -(-int(n_sup) // -(-s.vocab // s.d))
        chunk = min(n_sup, 1 << max(0, per - 1).bit_length())
        e.parts["logits"] = (chunk * s.vocab * 6 + n_sup * s.d * 4) / GiB
        e.notes.append("logits: Liger's fused linear cross-entropy, in chunks (the full logits are never stored)")
    else:
        e.parts["logits"] = n_sup * s.vocab * 10 / GiB
        e.notes.append(f"logits: {plan.supervised_fraction:.0%} of positions supervised (only those are "
                       f"projected); bf16 + float32 + float32 gradient")
    e.parts["workspace"] = 0.05 * e.allocated + 0.5
    return e


def fits(e: Estimate, gpu: str | float) -> tuple[bool, str, float]:
    if isinstance(gpu, (int, float)) or str(gpu).replace(".", "", 1).isdigit():
        size, name = float(gpu), f"{float(gpu):g} GiB"
    else:
        key = str(gpu).lower()
        if key not in GPUS:
            raise TuneforgeError(f"unknown GPU {gpu!r}", f"give one of {', '.join(GPUS)} or a size in GiB")
        size, name = GPUS[key], f"{key} ({GPUS[key]} GiB usable)"
    return e.total <= size, name, size


def render(s: Shape, plan: Plan, e: Estimate, gpu: str | float | None) -> str:
    lines = [f"model: {s.model_type}, {s.params / 1e9:.2f}B parameters ({s.layers} layers, d={s.d}, "
             f"ffn={s.ffn}, vocab={s.vocab})",
             f"run: {plan.label}, batch {plan.batch} × {plan.seq} tokens"
             + (" (packed)" if plan.packing else " (padded to the longest sample)")
             + f", gradient checkpointing {'on' if plan.gradient_checkpointing else 'off'}"
             + (", offloaded" if plan.offload else "") + f", liger {'on' if plan.liger else 'off'}, {plan.optim}",
             "predicted peak GPU memory:"]
    for k, v in e.parts.items():
        lines.append(f"  {k:12s} {v:8.2f} GiB")
    lines.append(f"  {'total':12s} {e.total:8.2f} GiB  ({e.total * GiB / 1e9:.1f} GB; allocated "
                 f"{e.allocated:.2f} GiB + workspace)")
    lines += [f"  note: {n}" for n in e.notes]
    for g in ([gpu] if gpu is not None else ["h200", "h100", "a100-40gb", "rtx4090"]):
        ok, name, size = fits(e, g)
        lines.append(f"{'fits' if ok else 'does NOT fit'} on {name}" + ("" if ok else
                     f": {e.total - size:.1f} GiB over — try gradient_checkpointing, enable_liger_kernel, a smaller "
                     f"batch or cutoff_len, adamw_8bit, or qlora"))
    return "\n".join(lines)
