"""compat.py: each upstream workaround computes what the library computes, and falls back to the library's own
behaviour outside its tested versions and for anything it does not know (a peft LoRA variant, a missing helper).

Run under another peft with ``PYTHONPATH=<unpacked peft wheel> python -m pytest tests/test_compat.py``."""

import pytest
import torch

from tuneforge import compat
from tuneforge.errors import ModelError


def lora_model(tiny_model, seed: int = 0, dtype=torch.float32, **lora):
    """The tiny Llama with peft LoRA on every linear layer, B initialised away from zero (so the update matters)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=12, target_modules="all-linear", **lora))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    return model


def forward_and_grads(model, ids):
    model.zero_grad()
    logits = model(input_ids=ids).logits
    logits.float().pow(2).mean().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-5)
    assert a[1].keys() == b[1].keys()
    for n in a[1]:
        torch.testing.assert_close(a[1][n], b[1][n], rtol=1e-4, atol=1e-6)


IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])


# ---- versions ------------------------------------------------------------------------------------------------------

def test_version_windows(monkeypatch):
    window = ("peft", "0.18.0", "0.22")
    for found, inside in (("0.18.0", True), ("0.21.2", True), ("0.22.0.dev0", False), ("0.17.1", False),
                          ("0.22.0", False), ("0.19.0rc1", True)):
        monkeypatch.setattr(compat, "installed", lambda pkg, v=found: v)
        assert (compat.outside(window) is None) is inside, found
    monkeypatch.setattr(compat, "installed", lambda pkg: None)
    assert "not installed" in compat.outside(window)


def test_the_installed_peft_is_in_the_tested_range():
    """If this fails, a new peft is installed: the LoRA workarounds are off (peft's own forward and cast) until
    tests/test_compat.py passes with it and PEFT_LORA's upper bound moves."""
    assert compat.outside(compat.PEFT_LORA) is None


# ---- LoRA forward ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [None, True], ids=["rank-scaled", "fused-addmm"])
def test_patched_lora_forward_equals_peft_forward_and_gradients(tiny_model, fused):
    ref = lora_model(tiny_model)
    patched = lora_model(tiny_model)
    n = compat.patch_lora_forward(patched, fused)
    assert n == sum(type(m).__name__ == "Linear" and hasattr(m, "lora_A") for m in patched.modules()) > 0
    assert compat.patch_lora_forward(patched, fused) == 0  # idempotent
    assert_same(forward_and_grads(patched, IDS), forward_and_grads(ref, IDS))
    with patched.disable_adapter():  # the adapter matters, so the comparison above is not vacuous
        assert not torch.allclose(patched(input_ids=IDS).logits, ref(input_ids=IDS).logits)


def test_a_lora_variant_it_does_not_know_runs_peft_forward(tiny_model):
    """A layer with any peft lora_variant (DoRA and whatever peft adds next) is never computed as plain LoRA."""
    from peft.tuners.lora.layer import LoraLayer

    class Tripled:  # a variant of LoRA that no version of compat.py knows: the update counts three times
        @staticmethod
        def forward(module, active_adapter, x, result, **kwargs):
            a, b = module.lora_A[active_adapter], module.lora_B[active_adapter]
            return result + 3 * b(a(x)) * module.scaling[active_adapter]

    def with_variant(model):
        for m in model.modules():
            if isinstance(m, LoraLayer):
                m.lora_variant["default"] = Tripled()
        return model

    ref = with_variant(lora_model(tiny_model))
    patched = with_variant(lora_model(tiny_model))
    plain = lora_model(tiny_model)
    assert compat.patch_lora_forward(patched, False) > 0
    assert_same(forward_and_grads(patched, IDS), forward_and_grads(ref, IDS))
    assert not torch.allclose(patched(input_ids=IDS).logits, plain(input_ids=IDS).logits)


def test_dora_keeps_peft_forward(tiny_model):
    ref, patched = lora_model(tiny_model, use_dora=True), lora_model(tiny_model, use_dora=True)
    compat.patch_lora_forward(patched, True)
    assert_same(forward_and_grads(patched, IDS), forward_and_grads(ref, IDS))


def test_dropout_keeps_peft_forward(tiny_model):
    model = lora_model(tiny_model, lora_dropout=0.5)
    compat.patch_lora_forward(model, True)
    model.train()
    torch.manual_seed(1)
    a = model(input_ids=IDS).logits
    torch.manual_seed(1)
    b = model(input_ids=IDS).logits
    torch.manual_seed(2)
    c = model(input_ids=IDS).logits
    torch.testing.assert_close(a, b)  # peft's dropout, with the same mask for the same seed
    assert not torch.allclose(a, c)  # … and dropout really runs


def test_outside_the_tested_peft_the_forward_is_peft_own(tiny_model, monkeypatch, caplog):
    monkeypatch.setattr(compat, "installed", lambda pkg: "0.17.0")
    model = lora_model(tiny_model)
    with caplog.at_level("INFO", logger="tuneforge"):
        assert compat.patch_lora_forward(model, None) == 0
    assert not any(hasattr(m, compat.PEFT_FORWARD) for m in model.modules())
    assert "LoRA forward=peft's own: peft 0.17.0 is outside the tested range" in caplog.text


# ---- LoRA input dtype -----------------------------------------------------------------------------------------------

def cast_flags(model) -> list[bool]:
    return [m.cast_input_dtype_enabled for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")]


def test_plain_lora_takes_its_input_in_the_compute_dtype_while_training_only(tiny_model):
    model = lora_model(tiny_model, dtype=torch.bfloat16)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # tuneforge keeps trainable weights in float32
    assert cast_flags(model) and all(cast_flags(model))
    with compat.lora_inputs_in_compute_dtype(model):
        assert not any(cast_flags(model))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # what the loop does: the adapter math runs in bf16
            out = model(input_ids=IDS).logits
        out.float().sum().backward()
    assert all(cast_flags(model))  # restored: chat and export see peft's behaviour
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_A" in n)


def test_variants_and_other_peft_keep_peft_cast(tiny_model, monkeypatch):
    dora = lora_model(tiny_model, use_dora=True)
    with compat.lora_inputs_in_compute_dtype(dora):
        assert all(cast_flags(dora))
    plain = lora_model(tiny_model)
    monkeypatch.setattr(compat, "installed", lambda pkg: "0.22.1")
    with compat.lora_inputs_in_compute_dtype(plain):
        assert all(cast_flags(plain))
    monkeypatch.undo()
    import peft.helpers

    monkeypatch.delattr(peft.helpers, "disable_input_dtype_casting")
    assert compat.input_cast_reason(plain) == (False, "this peft has no peft.helpers.disable_input_dtype_casting")


def test_a_model_without_peft_layers_is_left_alone(tiny_model, caplog):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    with caplog.at_level("INFO", logger="tuneforge"), compat.lora_inputs_in_compute_dtype(model):
        pass
    assert "lora input cast" not in caplog.text


# ---- Liger ---------------------------------------------------------------------------------------------------------

def test_liger_is_used_only_with_the_versions_it_was_tested_on(monkeypatch, tiny_model):
    from transformers import AutoModelForCausalLM

    from tuneforge.models.kernels import apply_liger

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    # this machine: no liger-kernel, no CUDA
    assert compat.liger_unsupported("llama") in ("the liger-kernel package is not installed (pip install "
                                                 "liger-kernel)", "Liger's Triton kernels need a CUDA device")
    # a CUDA machine with a liger-kernel newer than the tested one: never patched; refused when asked for
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "liger_kernel" else real_find_spec(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(compat, "installed", lambda pkg: {"liger-kernel": "0.9.1"}.get(pkg, "5.24.0"))
    patched = []
    monkeypatch.setattr(compat, "liger_patch_instance", lambda m: patched.append(m))
    why = compat.liger_unsupported("llama")
    assert "liger-kernel 0.9.1 is outside the tested range 0.8.0 ≤ version < 0.9" in why
    assert apply_liger(model, None) is False and not patched  # auto: off, logged
    with pytest.raises(ModelError) as e:
        apply_liger(model, True)
    assert "outside the tested range" in e.value.message and "liger-kernel>=0.8.0,<0.9" in e.value.hint
    monkeypatch.setattr(compat, "installed", lambda pkg: {"liger-kernel": "0.8.5"}.get(pkg, "6.1.0"))
    assert "transformers 6.1.0 is outside the tested range" in compat.liger_unsupported("llama")


# ---- renamed APIs --------------------------------------------------------------------------------------------------

def test_renamed_transformers_apis():
    def new(input_ids, cache=None): ...

    def old(input_ids, past_key_values=None): ...

    assert compat.cache_kwarg(new) == "cache" and compat.cache_kwarg(old) == "past_key_values"

    class New:
        is_activation_checkpointing = True

    class Old:
        is_gradient_checkpointing = True

    assert compat.is_checkpointing(New()) and compat.is_checkpointing(Old()) and not compat.is_checkpointing(object())


# ---- file modes and quiet peft -------------------------------------------------------------------------------------

def test_ordinary_modes_follow_the_umask(tmp_path):
    import os
    import stat

    from safetensors.torch import save_file

    folder = tmp_path / "w"
    folder.mkdir(mode=0o700)
    save_file({"a": torch.zeros(2)}, str(folder / "x.safetensors"))
    old = os.umask(0o027)
    try:
        compat.ordinary_modes(folder, include_folder=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(folder / "x.safetensors").st_mode) == 0o640


def test_quiet_peft_drops_only_its_two_messages_and_only_inside(caplog):
    import logging
    import warnings

    bnb = logging.getLogger(compat.BNB_CPU_LOGGER)
    deprecated = "`is_gradient_checkpointing` is deprecated and will be removed in v6."
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger=compat.BNB_CPU_LOGGER):
            with compat.quiet_peft():
                warnings.warn(deprecated, FutureWarning)
                warnings.warn("some other deprecation", FutureWarning)  # a real warning still shows
                bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: no module")
                bnb.warning("another bitsandbytes problem")
            warnings.warn(deprecated, FutureWarning)  # outside the seam: shown
            bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: no module")
    assert [str(w.message) for w in seen] == ["some other deprecation", deprecated]
    assert [r.getMessage()[:27] for r in caplog.records] == ["another bitsandbytes proble", "Failed to load CPU gemm_4bi"]


def test_training_and_chat_print_neither_message(tiny_model, tmp_path):
    """On a real path, in a fresh process (bitsandbytes is imported once): apply LoRA, save, load it back."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "from tuneforge.adapters import apply_method, load_adapters\n"
        "from tuneforge.config import build_config\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tiny_model)!r})\n"
        "m.gradient_checkpointing_enable()\n"
        "m = apply_method(m, build_config({'lora_target': 'all'}), [])\n"
        f"m.save_pretrained({str(tmp_path / 'a')!r})\n"
        f"load_adapters(AutoModelForCausalLM.from_pretrained({str(tiny_model)!r}), [{str(tmp_path / 'a')!r}], False)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "is_gradient_checkpointing" not in r.stderr and "gemm_4bit_forward" not in r.stderr, r.stderr


def test_fsdp_on_cpu_and_deepspeed_states_refuse_outside_their_tested_ranges(monkeypatch):
    """Outside the tested Accelerate / DeepSpeed versions neither workaround touches anything: each returns the
    reason, which the caller turns into a refusal (train/distributed.py, train/dist_checkpoint.py)."""
    from tuneforge import compat

    class Untouched:
        state = None
        optimizer = None

    monkeypatch.setattr(compat, "installed", lambda package: "0.0.1")
    acc = Untouched()
    why = compat.fsdp_on_cpu(acc, plugin=object())
    assert why and "accelerate" in why and "0.0.1" in why and acc.state is None
    why = compat.deepspeed_init_optimizer_states(Untouched())
    assert why and "deepspeed" in why and "0.0.1" in why


class _StandInZero3Config:
    """What transformers' weak reference points at while Accelerate's ZeRO-3 plugin is active (HfDeepSpeedConfig needs
    DeepSpeed installed; only is_zero3() is read by from_pretrained's check)."""

    def is_zero3(self):
        return True


def test_a_reference_loads_whole_beside_zero3_and_the_setting_comes_back(tiny_model, monkeypatch):
    from transformers import AutoModelForCausalLM
    from transformers.integrations import deepspeed as hfds

    held = _StandInZero3Config()
    hfds.set_hf_deepspeed_config(held)
    try:
        assert compat.zero3_init_active()  # from_pretrained would enter deepspeed.zero.Init now
        with compat.whole_model_beside_zero3():
            assert not compat.zero3_init_active()
            model = AutoModelForCausalLM.from_pretrained(tiny_model)  # no DeepSpeed here: this would fail otherwise
        emb = model.get_input_embeddings().weight
        assert emb.shape[0] == model.config.vocab_size and emb.numel() > 0
        assert compat.zero3_init_active() and hfds._hf_deepspeed_config_weak_ref() is held  # put back
        real = compat.installed
        monkeypatch.setattr(compat, "installed", lambda p: "6.1.0" if p == "transformers" else real(p))
        assert "cannot be loaded whole beside DeepSpeed ZeRO-3" in compat.whole_model_refusal()
        assert compat.zero3_init_active()
    finally:
        hfds.unset_hf_deepspeed_config()
    with compat.whole_model_beside_zero3():  # no ZeRO-3 run: nothing to do
        assert not compat.zero3_init_active()


# ---- bitsandbytes' dequantization kernels, called directly -------------------------------------------------------

def test_bnb_native_dequant_falls_back_to_bitsandbytes_ops(monkeypatch):
    """Off CUDA, outside the tested bitsandbytes window or without the native functions, fast/nf4.py uses
    bitsandbytes' registered ops (the GPU side is checked bit for bit by benchmarks/fast_check.py's nf4_layer)."""
    pytest.importorskip("bitsandbytes")
    seen = []
    monkeypatch.setattr(compat.log, "choice", lambda what, why: seen.append((what, why)))
    monkeypatch.setattr(compat, "_NATIVE", [])
    assert compat.bnb_native_dequant() is None  # this machine: no CUDA device
    assert seen[-1] == ("nf4 dequantization=bitsandbytes ops", "no CUDA device")
    assert compat.bnb_native_dequant() is None and len(seen) == 1  # decided once
    monkeypatch.setattr(compat, "_NATIVE", [])
    real = compat.installed
    monkeypatch.setattr(compat, "installed", lambda p: "0.51.0" if p == "bitsandbytes" else real(p))
    assert compat.bnb_native_dequant() is None
    assert "outside the tested range" in seen[-1][1]
    monkeypatch.setattr(compat, "installed", real)
    monkeypatch.setattr(compat, "_NATIVE", [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CPU build of bitsandbytes' library
    assert compat.bnb_native_dequant() is None
    assert seen[-1][1] in ("bitsandbytes' native library is not its CUDA build",) or \
        seen[-1][1].startswith("bitsandbytes' native library did not load")
