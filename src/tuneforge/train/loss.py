"""Causal-LM loss computed only where it is needed.

transformers' ``ForCausalLM.forward`` projects every position onto the vocabulary before the loss picks the few it
needs. For chat data most positions are masked prompt tokens, and on small models the output head is a large share
of the compute (SmolLM2-135M: 28M of 135M parameters), so we run the decoder, gather the hidden states of supervised
positions and project only those. Models that post-process logits (soft-capping, scaling) use the plain forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge import adapters, compat
from tuneforge.data.collate import collate
from tuneforge.utils import log
from tuneforge.data.encode import IGNORE
from tuneforge.models.attention import NAME as VARLEN, uses_varlen, varlen_kwargs

LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def _base(model: torch.nn.Module) -> torch.nn.Module:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "module", base)


def supports_gathered_head(model: torch.nn.Module) -> bool:
    base = _base(model)
    cfg = getattr(base, "config", None)
    if cfg is None or any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in LOGIT_POSTPROCESSING):
        return False
    try:
        return base.get_decoder() is not None and base.get_output_embeddings() is not None
    except (AttributeError, NotImplementedError):
        return False


def full_logits_reason(model: torch.nn.Module) -> str | None:
    """Why the plain forward (logits on every position) must be used, or None when the gathered head is fine."""
    why = adapters.full_forward_reason(model)  # e.g. virtual tokens added inside PeftModel.forward
    if why is not None:
        return why
    if not supports_gathered_head(model):
        return "this model post-processes its logits, so the head runs on every position"
    return None


def _flash_attn_package(model: torch.nn.Module) -> bool:
    """transformers' flash_attention_2/3/4 (the flash-attn package), which finds packed samples from position ids."""
    return "flash" in str(getattr(getattr(_base(model), "config", None), "_attn_implementation", ""))


def flatten_packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Packed rows as one row. transformers' FlashAttention path finds packed samples from position ids only when
    the batch has a single row; joining rows is exact because every row starts a sample (or padding) whose first
    label is masked, so no target crosses a row boundary."""
    return {k: v.reshape(1, -1) for k, v in batch.items()}


MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a second decoder call


def shared_prefix_reason(model: torch.nn.Module) -> str | None:
    """Why a batch's common prefix cannot be computed once, or None when it can (see ``shared_prefix_len``)."""
    import inspect

    base = _base(model)
    if compat.is_checkpointing(base):
        return "gradient checkpointing drops the key/value cache the shared prefix is passed through"
    try:
        params = inspect.signature(base.get_decoder().forward).parameters
    except (AttributeError, ValueError, TypeError, NotImplementedError):
        return "the decoder's forward cannot be inspected"
    if "cache" not in params and "past_key_values" not in params:
        return "the decoder takes no key/value cache"
    attn = str(getattr(base.config, "_attn_implementation", None) or "eager")
    if attn not in ("sdpa", "eager", VARLEN):  # varlen runs SDPA on unpacked batches
        return f"attention {attn}: the shared prefix is only tested with sdpa and eager attention"
    types = set(getattr(base.config, "layer_types", None) or ["full_attention"])
    if types != {"full_attention"}:
        return f"layer types {sorted(types)}: only models with full attention in every layer share prefixes"
    return None


def shared_prefix_len(batch: dict[str, torch.Tensor]) -> int:
    """Length P of the prefix every row of an unpacked batch shares (typically the system prompt), cut so that
    no label at positions ≤ P is supervised: then positions < P never need their own hidden states, and the rows'
    remaining positions can attend to one copy of the prefix's keys and values. 0 when not worth it."""
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    if ids.shape[0] < 2:
        return 0
    same = ((ids == ids[:1]) & (mask == 1)).all(0)
    p = int(same.long().cumprod(0).sum())
    supervised = (labels != IGNORE).any(0).nonzero()
    if len(supervised):
        p = min(p, int(supervised[0]) - 1)
    return p if p >= MIN_SHARED_PREFIX and p < ids.shape[1] - 1 else 0


def _decode_with_shared_prefix(base: torch.nn.Module, batch: dict[str, torch.Tensor], p: int) -> torch.Tensor:
    """Hidden states of positions ≥ p: the prefix runs once (batch 1), its keys/values are repeated for every row
    (autograd sums the rows' gradients back into the one prefix pass), then the rows run on top of it. The same
    numbers as the plain forward up to float rounding (tested), with (rows − 1) × p fewer tokens through the model."""
    from transformers import DynamicCache

    decoder = base.get_decoder()
    key = compat.cache_kwarg(decoder.forward)
    cache = DynamicCache(config=base.config)
    decoder(input_ids=batch["input_ids"][:1, :p], use_cache=True, **{key: cache})
    cache.batch_repeat_interleave(batch["input_ids"].shape[0])
    out = decoder(input_ids=batch["input_ids"][:, p:], attention_mask=batch["attention_mask"], use_cache=True,
                  **{key: cache})
    return out.last_hidden_state


def token_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor], gathered: bool,
                   fused_ce: torch.nn.Module | None = None, offset: int = 0,
                   shared_prefix: bool = False, fast=None) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over supervised positions, number of those positions).

    A batch with ``position_ids`` is packed (data/packing.py): the attention mask is left out so that transformers
    derives the per-sample causal mask from the position restarts. ``fused_ce`` (Liger's linear+cross-entropy, sum
    reduction) replaces the head projection and the loss with a chunked kernel that never materialises logits.
    ``offset``: virtual-token positions in front of the input in the plain forward's logits (prompt/P-Tuning).
    ``shared_prefix``: compute the rows' common prefix once (``shared_prefix_len``; unpacked batches only).
    ``fast``: a ``fast.FastDecoder`` that computes the decoder's hidden states instead of its own forward."""
    varlen = batch.get("position_ids") is not None and uses_varlen(model)
    if batch.get("position_ids") is not None and batch["input_ids"].shape[0] > 1 and _flash_attn_package(model):
        batch = flatten_packed(batch)
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    n = int(keep.sum())
    position_ids = batch.get("position_ids")
    inputs = {"input_ids": batch["input_ids"], "use_cache": False}
    if position_ids is None:
        inputs["attention_mask"] = batch["attention_mask"]
    else:
        inputs["position_ids"] = position_ids
        if varlen:  # sample boundaries for the varlen kernel (models/attention.py)
            inputs.update(varlen_kwargs(position_ids))
    if gathered:
        base = _base(model)
        p = shared_prefix_len(batch) if shared_prefix and position_ids is None else 0
        if p:
            hidden = _decode_with_shared_prefix(base, batch, p)
            labels, keep = labels[:, p:], keep[:, p:]  # no supervised label sits at positions ≤ p
        elif fast is not None and fast.valid():
            seg = varlen_kwargs(position_ids) if position_ids is not None else {}
            hidden = fast(batch["input_ids"], position_ids, seg.get("cu_seq_lens_q"), seg.get("max_length_q"))
        else:
            hidden = base.get_decoder()(**inputs).last_hidden_state
        head = base.get_output_embeddings()
        if fused_ce is not None:
            return fused_ce(head.weight, hidden[:, :-1][keep], labels[keep], getattr(head, "bias", None)), n
        logits = head(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), labels[keep], reduction="sum"), n
    out = model(**inputs)
    logits = out.logits[:, offset:-1]
    return F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum"), n


class CausalLMLoss(torch.nn.Module):
    """The SFT/PT token loss as an objective (train/objective.py): wraps the model so that DDP/FSDP see one forward
    that returns the loss sum over supervised tokens (engines wrap this module). Its automatic choices are logged."""

    collate = staticmethod(collate)

    def __init__(self, model: torch.nn.Module, fused_ce: bool = False, shared_prefix: bool | None = False,
                 fast=None):
        super().__init__()
        self.model = model
        self.fast = fast  # fast.FastDecoder or None (not a module: the model's parameters stay registered once)
        self.why_full_logits = full_logits_reason(model)
        self.gathered = self.why_full_logits is None
        # None = auto: on wherever it is exact and supported.
        self.why_no_shared_prefix = (self.why_full_logits if not self.gathered else shared_prefix_reason(model)) \
            if shared_prefix is not False else "shared_prefix=False"
        self.shared_prefix = self.why_no_shared_prefix is None
        self.offset = adapters.logits_offset(model)
        self.fused_ce = None
        if fused_ce and self.gathered:
            from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

            self.fused_ce = LigerFusedLinearCrossEntropyLoss(reduction="sum")
        if not self.gathered:
            log.choice("loss=full logits", self.why_full_logits)
        if self.shared_prefix:
            log.choice("shared_prefix=on", "the prefix all rows of a batch share (system prompt) runs once per batch")
        elif shared_prefix is not False:
            log.choice("shared_prefix=off", self.why_no_shared_prefix)

    @property
    def saves_activations_itself(self) -> bool:
        """The fast path keeps its layer inputs in pinned CPU memory itself (activation offloading)."""
        return self.fast is not None and self.fast.offloader is not None

    def release(self) -> None:
        if self.fast is not None:
            self.fast.release()

    @staticmethod
    def units(batch: dict) -> int:
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    @staticmethod
    def length(sample) -> int:
        return len(sample.input_ids)

    def forward(self, input_ids, attention_mask, labels, position_ids=None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if position_ids is not None:
            batch["position_ids"] = position_ids
        loss, n = token_loss_sum(self.model, batch, self.gathered, self.fused_ce, self.offset, self.shared_prefix,
                                 self.fast if self.gathered else None)
        return loss, {}
