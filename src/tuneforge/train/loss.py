"""Causal-LM loss computed only where it is needed.

transformers' ``ForCausalLM.forward`` projects every position onto the vocabulary before the loss picks the few it
needs. For chat data most positions are masked prompt tokens, and on small models the output head is a large share
of the compute (SmolLM2-135M: 28M of 135M parameters), so we run the decoder, gather the hidden states of supervised
positions and project only those. Models that post-process logits (soft-capping, scaling) use the plain forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.adapters.prompt import is_prompt_model, logits_offset
from tuneforge.data.encode import IGNORE

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
    if is_prompt_model(model):  # virtual tokens are added inside PeftModel.forward; the bare decoder never sees them
        return "prompt-based methods add their virtual tokens in the adapter's forward"
    if not supports_gathered_head(model):
        return "this model post-processes its logits, so the head runs on every position"
    return None


def _varlen_attention(model: torch.nn.Module) -> bool:
    return "flash" in str(getattr(getattr(_base(model), "config", None), "_attn_implementation", ""))


def flatten_packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Packed rows as one row. transformers' FlashAttention path finds packed samples from position ids only when
    the batch has a single row; joining rows is exact because every row starts a sample (or padding) whose first
    label is masked, so no target crosses a row boundary."""
    return {k: v.reshape(1, -1) for k, v in batch.items()}


def token_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor], gathered: bool,
                   fused_ce: torch.nn.Module | None = None, offset: int = 0) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over supervised positions, number of those positions).

    A batch with ``position_ids`` is packed (data/packing.py): the attention mask is left out so that transformers
    derives the per-sample causal mask from the position restarts. ``fused_ce`` (Liger's linear+cross-entropy, sum
    reduction) replaces the head projection and the loss with a chunked kernel that never materialises logits.
    ``offset``: virtual-token positions in front of the input in the plain forward's logits (prompt/P-Tuning)."""
    if batch.get("position_ids") is not None and batch["input_ids"].shape[0] > 1 and _varlen_attention(model):
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
    if gathered:
        base = _base(model)
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
    """Wraps the model so that DDP/FSDP see one forward that returns the loss sum (engines wrap this module)."""

    def __init__(self, model: torch.nn.Module, fused_ce: bool = False):
        super().__init__()
        self.model = model
        self.why_full_logits = full_logits_reason(model)
        self.gathered = self.why_full_logits is None
        self.offset = logits_offset(model)
        self.fused_ce = None
        if fused_ce and self.gathered:
            from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

            self.fused_ce = LigerFusedLinearCrossEntropyLoss(reduction="sum")

    def forward(self, input_ids, attention_mask, labels, position_ids=None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if position_ids is not None:
            batch["position_ids"] = position_ids
        loss, n = token_loss_sum(self.model, batch, self.gathered, self.fused_ce, self.offset)
        return loss
