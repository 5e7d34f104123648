"""Shared-prefix batches: the prefix every row shares runs once, with the same loss and gradients as the plain path."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from tuneforge.adapters import apply_method
from tuneforge.config import build_config
from tuneforge.data.collate import collate
from tuneforge.data.encode import IGNORE, Sample
from tuneforge.train.loss import CausalLMLoss, shared_prefix_len

SYSTEM = list(range(10, 30))  # a 20-token "system prompt" every row starts with


def _rows(lengths, seed=0, prefix=SYSTEM):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        body = torch.randint(40, 300, (n,), generator=g).tolist()
        ids = prefix + body
        labels = [IGNORE] * (len(prefix) + n // 2) + ids[len(prefix) + n // 2:]
        out.append(Sample(ids, labels))
    return out


def _lora_model(tiny_model):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = apply_method(model, build_config({"finetuning_type": "lora", "lora_rank": 4, "lora_target": "all"}), [])
    for p in model.parameters():
        if p.requires_grad:  # B starts at zero; give both factors values so every gradient path is exercised
            torch.nn.init.normal_(p, std=0.05)
    return model


def _loss_and_grads(model, batch, shared):
    module = CausalLMLoss(model, shared_prefix=shared)
    params = [p for p in model.parameters() if p.requires_grad]
    loss, _ = module(**batch)
    return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, params)], module


def test_shared_prefix_is_exact(tiny_model):
    model = _lora_model(tiny_model)
    batch = collate(_rows([12, 30, 7, 25]), pad_id=0)  # right padding of different lengths
    assert shared_prefix_len(batch) == 20
    plain, g_plain, m_plain = _loss_and_grads(model, batch, False)
    shared, g_shared, m_shared = _loss_and_grads(model, batch, None)
    assert not m_plain.shared_prefix and m_shared.shared_prefix
    assert torch.allclose(plain, shared, rtol=1e-5)
    for a, b in zip(g_plain, g_shared):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().sum()) > 0 for g in g_shared)


def test_shared_prefix_len_stops_before_supervised_labels_and_row_differences():
    rows = _rows([10, 10])
    rows[1].input_ids[15] += 1  # rows differ from position 15 on
    assert shared_prefix_len(collate(rows, pad_id=0)) == 15
    rows = _rows([10, 10])
    rows[0].labels[12] = rows[0].input_ids[12]  # a supervised label at 12: position 11 must produce a hidden state
    assert shared_prefix_len(collate(rows, pad_id=0)) == 11
    assert shared_prefix_len(collate(_rows([10, 10], prefix=[5, 6, 7]), pad_id=0)) == 0  # too short to bother
    assert shared_prefix_len(collate(_rows([10]), pad_id=0)) == 0  # one row: nothing to share


def test_shared_prefix_is_off_with_gradient_checkpointing(tiny_model):
    model = _lora_model(tiny_model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module = CausalLMLoss(model, shared_prefix=None)
    assert not module.shared_prefix and "checkpointing" in module.why_no_shared_prefix


def test_lora_layers_adapts_only_the_named_layers(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = apply_method(model, build_config({"finetuning_type": "lora", "lora_rank": 4, "lora_layers": "1"}), [])
    layers = {int(n.split(".layers.")[1].split(".")[0]) for n, p in model.named_parameters() if p.requires_grad}
    assert layers == {1}  # the tiny model has 2 layers: "1" = the last one


def test_lora_layers_errors_name_the_problem(tiny_model):
    from tuneforge.config import parse_args
    from tuneforge.config.validate import validate
    from tuneforge.errors import ConfigError

    cfg = parse_args(["--finetuning_type", "lora", "--lora_layers", "5-3", "--dataset", "identity"])
    assert any("runs backwards" in p and "20-29" in p for p in validate(cfg))
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with pytest.raises(ConfigError, match=r"the model has 2 layers"):
        apply_method(model, build_config({"finetuning_type": "lora", "lora_layers": "0-7"}), [])
