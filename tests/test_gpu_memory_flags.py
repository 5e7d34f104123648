"""offload_embedding and upcast_unquantized: the same math as peft/transformers, checked on the CPU (the LoRA forward
and fused_lora: tests/test_compat.py)."""

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.errors import ModelError


def _lora(tiny_model, **kw):
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import apply_method

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model = apply_method(model, build_config({"finetuning_type": "lora", "lora_target": "all", "lora_rank": 4,
                                              "lora_alpha": 12, **kw}), [])
    for n, p in model.named_parameters():  # lora_B starts at zero: give it values so the update matters
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    return model


def test_cpu_embedding_gives_the_same_rows():
    from tuneforge.models.memory import CPUEmbedding

    emb = torch.nn.Embedding(50, 8, padding_idx=0)
    wrapped = CPUEmbedding(emb, torch.device("cpu"))
    ids = torch.tensor([[0, 3, 49], [7, 7, 1]])
    torch.testing.assert_close(wrapped(ids), emb(ids))
    assert list(wrapped.parameters()) == []  # the table is invisible to .to(), optimisers and state dicts
    assert wrapped.weight.shape == (50, 8)


def test_offload_embedding_off_on_cpu_and_asked_is_an_error(tiny_model):
    from tuneforge.models.memory import offload_embedding_reason

    model = _lora(tiny_model)  # auto: off with a logged reason
    assert type(model.get_input_embeddings()).__name__ == "Embedding"
    assert "CUDA" in offload_embedding_reason(model.get_base_model(), None, True)
    with pytest.raises(ModelError) as e:
        _lora(tiny_model, offload_embedding=True)
    assert "offload_embedding False" in e.value.hint


def test_quantized_base_keeps_compute_dtype_unless_upcast_asked():
    from tuneforge.models.memory import freeze_quantized_base

    m = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    freeze_quantized_base(m)
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in m.parameters())
