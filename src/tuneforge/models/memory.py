"""GPU-memory savers applied to a loaded model: the frozen input embedding kept in CPU memory, and a frozen
quantized base prepared for training without the float32 upcast of its unquantized weights.

Why these two (measured on an H200, Llama-3.1-8B shape, docs/benchmarks.md): the input embedding table is
vocab × hidden bf16 = 0.98 GiB, a fifth of a 4-bit model's footprint, and a lookup needs only the rows of the batch's
tokens (2048 × 4096 × 2 bytes = 16 MiB a step over PCIe). peft's ``prepare_model_for_kbit_training`` casts every
unquantized weight — embedding and output head included — to float32: +1.96 GiB of frozen weights, and a float32
head makes float32 logits.
"""

from __future__ import annotations

import torch

from tuneforge.utils import log


class CPUEmbedding(torch.nn.Module):
    """An ``nn.Embedding`` whose table stays in CPU memory; outputs are moved to ``device``.

    The table is held outside the module tree (not a registered parameter), so ``model.to(device)``, accelerate's
    device placement and optimisers never see it. It must be frozen."""

    def __init__(self, embedding: torch.nn.Embedding, device: torch.device):
        super().__init__()
        table = embedding.weight.detach().to("cpu")
        object.__setattr__(self, "_table", table)
        self.padding_idx = embedding.padding_idx
        self.num_embeddings, self.embedding_dim = table.shape
        self.target = torch.device(device)
        self.pin = self.target.type == "cuda"

    @property
    def weight(self) -> torch.Tensor:  # read-only view for code that inspects dtype/shape
        return self._table

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.embedding(input_ids.to("cpu"), self._table, self.padding_idx)
        if self.pin:
            rows = rows.pin_memory()
        return rows.to(self.target, non_blocking=self.pin)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, table on cpu -> {self.target}"


def offload_embedding_reason(model: torch.nn.Module, asked: bool | None, quantized: bool) -> str | None:
    """None when the input embedding should move to CPU memory, else why not (for the log)."""
    if asked is False:
        return "offload_embedding=False"
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(emb, torch.nn.Embedding):
        return "the model has no plain input embedding"
    if emb.weight.device.type != "cuda":
        return "the embedding is not on a CUDA device"
    if emb.weight.requires_grad:
        return "the embedding is trained"
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is emb.weight:
        return "the embedding is tied to the output head, which must stay on the GPU"
    if asked is None and not quantized:
        return "auto: on only for quantized (QLoRA) bases, where the table is a large share of GPU memory"
    return None


def offload_embedding(model: torch.nn.Module, asked: bool | None, quantized: bool = False) -> bool:
    """Replace the frozen input embedding of ``model`` (a transformers model or a peft wrapper) by a
    :class:`CPUEmbedding`. Call after the method is applied (so the embedding's trainability is known)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    why_not = offload_embedding_reason(base, asked, quantized)
    if why_not is not None:
        if asked:
            from tuneforge.errors import ModelError

            raise ModelError(f"offload_embedding=True but {why_not}",
                             "set --offload_embedding False (it needs a frozen, untied embedding on a CUDA device)")
        log.choice("offload_embedding=off", why_not)
        return False
    emb = base.get_input_embeddings()
    size = emb.weight.numel() * emb.weight.element_size()
    base.set_input_embeddings(CPUEmbedding(emb, emb.weight.device))
    del emb
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.choice("offload_embedding=on", f"{'asked' if asked else 'auto: quantized base'}; the frozen input "
               f"embedding ({size / 2**30:.2f} GiB) stays in CPU memory and only the batch's rows are copied over")
    return True


def freeze_quantized_base(model: torch.nn.Module, upcast: bool = False) -> torch.nn.Module:
    """Prepare a bitsandbytes-quantized base for adapter training: every base weight frozen. ``upcast`` (peft's
    ``prepare_model_for_kbit_training``) would also cast the unquantized weights — norms, embedding, head — to
    float32; by default they stay in the compute dtype, as in unquantized LoRA runs."""
    if upcast:
        from peft import prepare_model_for_kbit_training

        log.choice("quantized base: unquantized weights upcast to float32", "upcast_unquantized=True (peft's "
                   "prepare_model_for_kbit_training)")
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    extra = 0
    for p in model.parameters():
        p.requires_grad_(False)
        if p.dtype in (torch.float16, torch.bfloat16) and p.__class__.__name__ not in ("Params4bit", "Int8Params"):
            extra += p.numel() * 2
    log.choice("quantized base: unquantized weights kept in the compute dtype",
               f"a float32 copy (peft's prepare_model_for_kbit_training) would add {extra / 2**30:.2f} GiB of frozen "
               f"weights and float32 logits; set upcast_unquantized=True for peft's behaviour")
    return model
