"""The fast path (src/tuneforge/fast/) computes the plain path's loss and gradients: every LoRA matrix's gradient is
compared with what transformers + peft give on the same batch, for Llama (GQA) and Qwen2 (q/k/v bias) shapes,
unpacked (right-padded) and packed rows, with and without layer recomputation and CPU-offloaded layer inputs, on a
layer subset, on a 4-bit base, and with FP8 base weights (within FP8's rounding)."""

from __future__ import annotations

import json

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.config.schema import TrainArgs
from tuneforge.data.encode import IGNORE
from tuneforge.fast import FastDecoder, fast_path_reason
from tuneforge.train.loss import CausalLMLoss


def make_model(kind: str = "llama", layers: int = 3, seed: int = 0):
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=layers, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=211, max_position_embeddings=256, tie_word_embeddings=False)
    cfg = AutoConfig.for_model(kind, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def with_lora(model, **kw):
    from tuneforge.adapters import apply_method

    cfg = build_config({"finetuning_type": "lora", "lora_rank": 4, "lora_alpha": 8, "lora_target": "all", **kw})
    model = apply_method(model, cfg, [])
    torch.manual_seed(1)
    for n, p in model.named_parameters():  # peft starts B at zero: make every gradient non-trivial
        if "lora_B" in n:
            p.data.normal_(0, 0.05)
    return model


def batch(packed: bool, rows: int = 3, width: int = 40, vocab: int = 211, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, width), generator=g)
    labels = ids.clone()
    labels[:, :5] = IGNORE
    mask = torch.ones_like(ids)
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if packed:  # row 0: three samples, row 1: two, row 2: one with a padding tail (its own segment)
        pos = torch.arange(width).repeat(rows, 1)
        pos[0, 12:] -= 12
        pos[0, 30:] = torch.arange(width - 30)
        pos[1, 21:] -= 21
        pos[2, 33:] = torch.arange(width - 33)
        for r, starts in ((0, (0, 12, 30)), (1, (0, 21)), (2, (0, 33))):
            for s in starts:
                labels[r, s] = IGNORE
        labels[2, 33:] = IGNORE
        mask[2, 33:] = 0
        out["position_ids"] = pos
    else:  # right padding on two rows
        mask[1, 31:] = 0
        mask[2, 17:] = 0
        labels[mask == 0] = IGNORE
    return out


def loss_and_grads(model, b, fast=None):
    model.zero_grad(set_to_none=True)
    loss = CausalLMLoss(model, False, False, fast)(**b)[0]
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss), grads


def assert_same(plain, fast, rtol=1e-4):
    (l0, g0), (l1, g1) = plain, fast
    assert abs(l0 - l1) <= rtol * abs(l0), (l0, l1)
    assert g0.keys() == g1.keys() and g0
    for n in g0:
        err = float((g0[n] - g1[n]).norm() / g0[n].norm().clamp(min=1e-12))
        assert err < rtol * 10, (n, err)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("checkpoint", [False, True])
def test_fast_path_matches_the_plain_path(kind, packed, checkpoint):
    model = with_lora(make_model(kind))
    assert fast_path_reason(model) is None
    b = batch(packed)
    plain = loss_and_grads(model, b)
    fast = loss_and_grads(model, b, FastDecoder(model, checkpoint=checkpoint))
    assert_same(plain, fast)


def test_offloaded_layer_inputs_and_a_layer_subset():
    """lora_layers 2 (the upper two of three): the lowest layer has no adapter and no graph; the inputs of the
    others round-trip through the offloader (synchronous copies on a CPU: the bookkeeping is what is tested)."""
    model = with_lora(make_model("llama"), lora_layers="2")
    b = batch(True)
    plain = loss_and_grads(model, b)
    fast = FastDecoder(model, checkpoint=True, offload=True)
    assert fast.offloader is not None
    got = loss_and_grads(model, b, fast)
    assert_same(plain, got)
    assert sorted(fast.offloader.host) == [1, 2]  # layer 0 (no adapter, frozen input) is not saved
    again = loss_and_grads(model, batch(True, seed=5), fast)  # buffers reused by the next step
    assert_same(loss_and_grads(model, batch(True, seed=5)), again)


def test_gradient_accumulation_of_two_micro_batches():
    model = with_lora(make_model("llama"))
    b1, b2 = batch(False, seed=3), batch(True, seed=4)
    plain = CausalLMLoss(model, False, False)
    model.zero_grad(set_to_none=True)
    (plain(**b1)[0] + plain(**b2)[0]).backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    fast = CausalLMLoss(model, False, False, FastDecoder(model, checkpoint=True, offload=True))
    model.zero_grad(set_to_none=True)
    fast(**b1)[0].backward()
    fast(**b2)[0].backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, want[n], rtol=1e-4, atol=1e-6), n


def _load_4bit(ref, double_quant: bool = False):
    """``ref`` saved and loaded back with its linear layers in 4-bit NF4 (bitsandbytes, on the CPU)."""
    import tempfile

    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=double_quant,
                           bnb_4bit_compute_dtype=torch.float32)
    with tempfile.TemporaryDirectory() as d:
        ref.save_pretrained(d)
        return AutoModelForCausalLM.from_pretrained(d, quantization_config=q, dtype=torch.float32,
                                                    attn_implementation="sdpa", device_map={"": "cpu"})


def test_qlora_base_matches_the_plain_path():
    """A 4-bit (NF4) base: the fast path against the plain path on the same dequantized weights. (bitsandbytes'
    own CPU forward computes in bf16 and repacks the weights on its first call, so the reference model holds the
    dequantized weights as ordinary Linear layers and the same adapters.)"""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as bnbf

    from tuneforge.models.memory import freeze_quantized_base

    ref = make_model("llama", layers=2)
    model = _load_4bit(ref)
    model.config.use_cache = False
    for name, m in model.named_modules():
        if type(m).__name__ == "Linear4bit":
            ref.get_submodule(name).weight.data = bnbf.dequantize_4bit(m.weight.data, m.weight.quant_state).float()
    model, ref = with_lora(freeze_quantized_base(model)), with_lora(ref)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    for n, p in ref.named_parameters():
        if "lora_" in n:
            p.data.copy_(lora[n].data)
    assert fast_path_reason(model) is None
    fast = FastDecoder(model, checkpoint=True)
    assert {p.kind for lp in fast.layers for p in lp.qkv.projs} == {"nf4"}
    b = batch(False)
    assert_same(loss_and_grads(ref, b), loss_and_grads(model, b, fast))


def test_double_quantized_layers_dequantize_their_absmax_once_and_bit_identically():
    """Double quantization (the QLoRA default): fast/nf4.py gathers a layer's 8-bit absmax into one buffer and
    dequantizes it once per layer. Every weight comes out bit-identical to bitsandbytes' own
    ``dequantize_4bit``, the layer's absmax is dequantized once for all seven weights, and the fast path's loss
    and gradients match the plain path on the dequantized weights."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as bnbf

    from tuneforge.fast import nf4
    from tuneforge.models.memory import freeze_quantized_base

    ref = make_model("llama", layers=2)
    model = _load_4bit(ref, double_quant=True)
    model.config.use_cache = False
    want, by_weight = {}, {}
    for name, m in model.named_modules():
        if type(m).__name__ == "Linear4bit":
            assert m.weight.quant_state.nested
            want[name] = by_weight[id(m.weight)] = bnbf.dequantize_4bit(m.weight.data, m.weight.quant_state)
            ref.get_submodule(name).weight.data = want[name].float()
    model, ref = with_lora(freeze_quantized_base(model)), with_lora(ref)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    for n, p in ref.named_parameters():
        if "lora_" in n:
            p.data.copy_(lora[n].data)
    fast = FastDecoder(model, checkpoint=True)
    projs = [p for lp in fast.layers for g in (lp.qkv, lp.o, lp.mlp.up_group, lp.mlp.down) for p in g.projs]
    assert len(projs) == 14
    plans = {id(p.quant) for p in projs if p.quant is not None}
    assert len(plans) == 2 and all(p.quant is not None for p in projs)  # one LayerQuant per layer
    calls = []
    kernel = nf4._ops_blockwise
    weights = {id(m.weight): m.weight for m in model.modules() if type(m).__name__ == "Linear4bit"}
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nf4, "_ops_blockwise", lambda *a: calls.append(1) or kernel(*a))
            for p in projs:
                got = p.quant.dequantize(p.base.weight)
                ref_w = bnbf.dequantize_4bit(p.base.weight.data, p.base.weight.quant_state)
                assert got.dtype == ref_w.dtype and torch.equal(got, ref_w), p.name
        assert len(calls) == 2, calls  # one absmax dequantization per layer, for all its seven weights
        # against the weights dequantized before the layer's absmax were gathered into one buffer
        assert len(by_weight) == 14 and all(id(p.base.weight) in weights for p in projs)
        for p in projs:
            assert torch.equal(p.quant.dequantize(p.base.weight), by_weight[id(p.base.weight)]), p.name
    finally:
        nf4.clear()
    b = batch(False)
    assert_same(loss_and_grads(ref, b), loss_and_grads(model, b, fast))


def test_a_quantized_model_still_saves_and_reloads_after_its_absmax_were_gathered():
    """fast/nf4.py has the quant states hold views of one per-layer buffer: transformers still saves the 4-bit
    model, and every reloaded weight dequantizes to exactly what it was. (bitsandbytes' own CPU forward of a
    reloaded double-quantized model fails here with or without the fast path, so weights are compared, not
    logits.)"""
    pytest.importorskip("bitsandbytes")
    import tempfile

    import bitsandbytes.functional as bnbf
    from transformers import AutoModelForCausalLM

    model = _load_4bit(make_model("llama", layers=2), double_quant=True)

    def weights(m):
        return {n: bnbf.dequantize_4bit(x.weight.data, x.weight.quant_state) for n, x in m.named_modules()
                if type(x).__name__ == "Linear4bit"}

    want = weights(model)
    fast = FastDecoder(model)
    assert all(p.quant is not None for lp in fast.layers for p in lp.qkv.projs)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        got = weights(AutoModelForCausalLM.from_pretrained(d, device_map={"": "cpu"}))
    assert len(got) == len(want) == 14 and all(torch.equal(got[n], want[n]) for n in want)


def test_fp8_base_stays_close_to_bf16_and_release_restores_the_model():
    from tuneforge.fast.fp8 import Fp8Weight, _emulated_mm, quantize_rows

    w = torch.randn(48, 64) * 0.02
    f = Fp8Weight(w.to(torch.bfloat16))
    x = torch.randn(10, 64, dtype=torch.bfloat16)
    xq, sx = quantize_rows(x)
    want = _emulated_mm(xq, f.w.t(), sx, f.sw_row, torch.float32)
    got = f.forward(x, {}).float()
    assert torch.allclose(got, want, rtol=2e-2, atol=1e-3)  # torch._scaled_mm (or its emulation) = the definition
    assert float((got - x.float() @ w.t()).norm() / (x.float() @ w.t()).norm()) < 0.06  # e4m3: ~3 bits of mantissa
    dy = torch.randn(10, 48, dtype=torch.bfloat16)
    assert float((f.backward(dy).float() - dy.float() @ w).norm() / (dy.float() @ w).norm()) < 0.06

    model = with_lora(make_model("llama")).to(torch.bfloat16)
    b = batch(False)
    plain = loss_and_grads(model, b)
    fast = FastDecoder(model, fp8="fp8")
    assert all(lp.qkv.projs[0].base.weight.numel() == 0 for lp in fast.layers)  # the bf16 copies are gone
    (l0, g0), (l1, g1) = plain, loss_and_grads(model, b, fast)
    assert abs(l0 - l1) < 0.02 * abs(l0)
    for n in g0:
        cos = torch.nn.functional.cosine_similarity(g0[n].flatten().float(), g1[n].flatten().float(), dim=0)
        assert cos > 0.97, (n, float(cos))
    fast.release()
    assert not fast.valid()
    l2, _ = loss_and_grads(model, b)  # the model's own forward runs again on the dequantized weights
    assert abs(l2 - l1) < 0.02 * abs(l0)


def test_fast_path_reason_names_what_it_does_not_cover():
    assert fast_path_reason(with_lora(make_model("llama"), use_dora=True)) == "DoRA (a LoRA variant)"
    assert fast_path_reason(with_lora(make_model("llama"), lora_dropout=0.1)) == "lora_dropout > 0"
    from tuneforge.adapters import apply_method

    full = apply_method(make_model("llama"), build_config({"finetuning_type": "full"}), [])
    assert "trainable base projections" in fast_path_reason(full)
    from transformers import AutoConfig, AutoModelForCausalLM

    gemma = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "gemma", hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, vocab_size=64))
    assert "model type 'gemma'" in fast_path_reason(gemma)


def test_train_loop_uses_the_fast_path_and_trains_the_same(tmp_path, monkeypatch):
    """Through train_loop (what `tuneforge train` runs): the same per-step losses with and without the fast path."""
    from accelerate import Accelerator

    calls = []
    original = FastDecoder.__call__
    monkeypatch.setattr(FastDecoder, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))

    from tuneforge.data.encode import Sample
    from tuneforge.fast.decoder import build_for_training
    from tuneforge.train.loop import LoopData, plan_steps, train_loop
    from tuneforge.train.steps import optimizer_and_schedule

    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(8):
        ids = torch.randint(3, 211, (int(torch.randint(20, 40, (1,), generator=g)),), generator=g).tolist()
        samples.append(Sample(ids, [IGNORE] * 4 + ids[4:]))
    losses = {}
    for fast in (False, True):
        model = with_lora(make_model("llama"))
        ft = build_config({"finetuning_type": "lora", "lora_rank": 4, "lora_alpha": 8, "lora_target": "all"})
        args = TrainArgs(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, logging_steps=1,
                         save_steps=0, learning_rate=1e-2, gradient_checkpointing=True, fast_path=fast)
        out = tmp_path / f"run{int(fast)}"
        out.mkdir()
        acc = Accelerator(cpu=True)
        ft.train = args
        objective = CausalLMLoss(model, False, False, build_for_training(model, args))  # as recipes/sft.py does
        optimizer, schedule = optimizer_and_schedule(model, ft, plan_steps(len(samples), args, 1)[1])
        res = train_loop(objective, optimizer, schedule, LoopData(samples, [], 0), args, out, acc, None)
        rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
        losses[fast] = [r["loss"] for r in rows]
        assert res.steps == 3
        assert len(calls) == (3 if fast else 0)
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def test_bf16_base_with_float32_adapters_under_autocast_follows_optimizer_steps():
    """The training set-up on a GPU: bf16 base, float32 LoRA matrices, autocast, fused AdamW (which updates in
    place without bumping the tensors' version counters). The fast path casts the adapters once per forward;
    after each optimizer step both paths still agree (a cache that outlived the step made H200 call B train
    nothing)."""
    from tuneforge.adapters import apply_method

    model = make_model("llama").to(torch.bfloat16)
    model = apply_method(model, build_config({"finetuning_type": "lora", "lora_rank": 4, "lora_alpha": 8,
                                              "lora_target": "all"}), [])
    params = [p for p in model.parameters() if p.requires_grad]
    assert {p.dtype for p in params} == {torch.float32}
    fast = FastDecoder(model)
    opt = torch.optim.AdamW(params, lr=5e-2, fused=True)
    b = batch(False)
    for _ in range(3):
        got = []
        for f in (None, fast):
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = CausalLMLoss(model, False, False, f)(**b)[0]
            loss.backward()
            got.append((float(loss), [p.grad.clone() for p in params]))
        (l0, g0), (l1, g1) = got
        assert abs(l0 - l1) < 5e-3 * abs(l0)
        cos = min(float(torch.nn.functional.cosine_similarity(a.flatten(), c.flatten(), 0)) for a, c in zip(g0, g1)
                  if a.norm() > 0)
        assert cos > 0.98
        opt.step()  # in place, version counters unchanged: the bf16 copies must be rebuilt anyway


def test_offloaded_mode_keeps_the_adapter_copies_of_one_layer_at_a_time():
    """The lowest-memory mode (recomputation + offloaded inputs) drops the adapters' bf16 copies after each layer
    (forward and backward) instead of holding every layer's for the step; the gradients are those of the mode
    that keeps them."""
    from tuneforge.adapters import apply_method
    from tuneforge.fast import lora as fl

    model = make_model("llama").to(torch.bfloat16)
    model = apply_method(model, build_config({"finetuning_type": "lora", "lora_rank": 4, "lora_alpha": 8,
                                              "lora_target": "all"}), [])
    params = [p for p in model.parameters() if p.requires_grad]
    b = batch(False)
    seen, got = {}, {}
    for offload in (False, True):
        fast = FastDecoder(model, checkpoint=True, offload=offload)
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = CausalLMLoss(model, False, False, fast)(**b)[0]
        seen[offload] = len(fl._CASTS)  # after the forward, before the backward
        loss.backward()
        got[offload] = (float(loss), [p.grad.clone() for p in params])
    assert seen[False] >= 3 * 9  # every layer's A stacks and B copies kept for the step
    assert seen[True] == 0
    assert got[False][0] == got[True][0]
    for a, c in zip(got[False][1], got[True][1]):
        assert torch.equal(a, c)


def test_fp8_is_refused_with_the_reasons_before_any_weights_load(tiny_model, tmp_path):
    """`--fp8 True` where it cannot run: every reason at once, each naming the fix (no traceback, no weights)."""
    from tuneforge.cli import main

    from tuneforge.config import parse_args
    from tuneforge.fast.fp8 import fp8_problems

    cfg = parse_args(["--model_name_or_path", str(tiny_model), "--dataset", "identity", "--fp8", "True",
                      "--finetuning_type", "full", "--bf16", "False", "--output_dir", str(tmp_path / "o")])
    problems = fp8_problems(cfg)  # this machine: no CUDA device
    assert any("compute capability 8.9" in p and "no CUDA device" in p for p in problems)
    assert any("finetuning_type=full trains the base weights" in p for p in problems)
    assert any("set bf16 True" in p for p in problems)
    assert fp8_problems(cfg, device_problem=lambda: None) and not fp8_problems(parse_args(
        ["--model_name_or_path", str(tiny_model), "--dataset", "identity", "--fp8", "True",
         "--output_dir", str(tmp_path / "o")]), device_problem=lambda: None)  # bf16 unset: automatic
    rc = main(["train", "--model_name_or_path", str(tiny_model), "--dataset", "identity", "--fp8", "True",
               "--output_dir", str(tmp_path / "o2")])
    assert rc != 0 and not (tmp_path / "o2" / "adapter_model.safetensors").exists()
