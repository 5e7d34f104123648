"""fused_lora, offload_embedding and upcast_unquantized: the same math as peft/transformers, checked on the CPU."""

import pytest
import torch

from tuneforge.config.schema import FinetuneArgs
from tuneforge.errors import ModelError


def _lora(tiny_model, **kw):
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import apply_method

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model = apply_method(model, FinetuneArgs(finetuning_type="lora", lora_target="all", lora_rank=4,
                                             lora_alpha=12, **kw), [])
    for n, p in model.named_parameters():  # lora_B starts at zero: give it values so the update matters
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    return model


def _peft_forward(model):
    """Undo tuneforge's forward patch: every LoRA layer runs peft's own forward again."""
    for m in model.modules():
        if hasattr(m, "_tuneforge_peft_forward"):
            m.forward = m._tuneforge_peft_forward
    return model


@pytest.mark.parametrize("fused_lora", [None, True], ids=["default-rank-scaled", "fused-addmm"])
def test_lora_forward_patches_match_peft_forward_and_gradients(tiny_model, fused_lora):
    from tuneforge.adapters.fused_lora import fuse_lora_forward

    ref = _peft_forward(_lora(tiny_model))
    patched = _lora(tiny_model, fused_lora=fused_lora)
    patched.load_state_dict(ref.state_dict())
    assert sum(hasattr(m, "_tuneforge_peft_forward") for m in patched.modules()) > 0
    assert fuse_lora_forward(patched, fused_lora) == 0  # idempotent
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    outs = []
    for m in (ref, patched):
        m.zero_grad()
        logits = m(input_ids=ids).logits
        logits.float().pow(2).mean().backward()
        outs.append((logits.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad}))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-5)
    assert outs[0][1].keys() == outs[1][1].keys()
    for n in outs[0][1]:
        torch.testing.assert_close(outs[1][1][n], outs[0][1][n], rtol=1e-4, atol=1e-6)
    # the adapter matters: disabling it changes the output (so the comparison above is not vacuous)
    with patched.disable_adapter():
        assert not torch.allclose(patched(input_ids=ids).logits, outs[1][0])


def test_fused_lora_falls_back_with_dropout(tiny_model):
    model = _lora(tiny_model, fused_lora=True, lora_dropout=0.5)
    model.train()
    ids = torch.tensor([[5, 6, 7, 8]])
    torch.manual_seed(1)
    a = model(input_ids=ids).logits
    torch.manual_seed(1)
    b = model(input_ids=ids).logits
    torch.testing.assert_close(a, b)  # same dropout mask through peft's own forward


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
