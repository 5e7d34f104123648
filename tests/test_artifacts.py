"""Artifacts that work elsewhere: ordinary (umask-respecting) file modes for adapters, checkpoints and exports, the
base model named portably in adapter_config.json, and a real model card."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tuneforge.config import build_config
from tuneforge.models.card import portable_base
from tuneforge.recipes import run


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def train(tiny_model, data_dir, out, **kw):
    cfg = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
               output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-2, max_steps=2, save_steps=1,
               lora_target="all", lora_rank=4, lora_alpha=8, seed=3, dataset_vars={"name": "Nimbus"})
    cfg.update(kw)
    return run(build_config(cfg))


def trained_under(mask: int, tiny_model, data_dir, out):
    old = os.umask(mask)
    try:
        train(tiny_model, data_dir, out)
    finally:
        os.umask(old)
    return out


@pytest.fixture(scope="module")
def run022(tiny_model, tmp_path_factory):
    """One LoRA run (with a checkpoint) under umask 022, shared by the tests below."""
    data = tmp_path_factory.mktemp("data")
    (data / "alpaca.json").write_text(json.dumps([{"instruction": f"Who are you? ({i})", "input": "",
                                                   "output": f"I am Nimbus, reply {i}."} for i in range(12)]))
    (data / "dataset_info.json").write_text(json.dumps({"alpaca_demo": {"file_name": "alpaca.json"}}))
    return trained_under(0o022, tiny_model, data, tmp_path_factory.mktemp("run022") / "run")


def assert_modes(out: Path, mask: int):
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files) and any("checkpoint-" in str(p) for p in files)
    wrong = {str(p.relative_to(out)): oct(mode(p)) for p in files if mode(p) != 0o666 & ~mask}
    assert not wrong  # safetensors 0.8 alone writes its files 0600
    assert mode(out) == 0o777 & ~mask


def test_run_folder_files_follow_the_umask(run022, tiny_model, data_dir, tmp_path):
    assert_modes(run022, 0o022)
    assert_modes(trained_under(0o027, tiny_model, data_dir, tmp_path / "run027"), 0o027)


def test_export_folder_is_readable_by_others(tiny_model, run022, tmp_path):
    from tuneforge.recipes import export

    old = os.umask(0o022)
    try:
        dest = tmp_path / "exported"
        export.run(build_config(dict(model_name_or_path=str(tiny_model), adapter_name_or_path=str(run022),
                                     export_dir=str(dest))))
    finally:
        os.umask(old)
    assert mode(dest) == 0o755  # not mkdtemp's 0700
    assert {oct(mode(p)) for p in dest.iterdir()} == {oct(0o644)}
    card = (dest / "README.md").read_text()
    assert f"base_model: {tiny_model}" in card and "## Adapter `run`" in card and "final training loss" in card


def test_adapter_names_its_base_as_given_and_carries_a_card(tiny_model, run022):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = run022
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == str(tiny_model)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    for needle in ("LoRA — rank 4, alpha 8", "data: `alpaca_demo`", "name=Nimbus", "12 samples",
                   "final training loss", "2 optimiser steps", "AutoPeftModelForCausalLM"):
        assert needle in card, needle
    assert "[More Information Needed]" not in card  # not peft's empty template
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(out))  # still loads


def test_card_reports_the_forgetting_guard_and_identity_figures(tmp_path):
    """Figures the run measured after training reach the card (the summary is rewritten with them)."""
    from tuneforge.models.card import write_card

    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/root/.cache/x"}))
    (tmp_path / "config.yaml").write_text("model_name_or_path: smollm2-135m-instruct\nfinetuning_type: lora\n"
                                          "lora_rank: 8\ndataset: identity\n")
    summary = {"final_loss": 0.5, "steps": 3, "data": {"train": {"samples": 10, "trained_tokens": 99}},
               "forgetting_guard": {"kept": 38, "base_correct": 41, "retention": 38 / 41},
               "identity": {"hits": 20, "asked": 20, "hit_rate": 1.0},
               "sample_replies": [{"prompt": "Who are you?", "response": "I am Nimbus."}]}
    card = write_card(tmp_path, summary).read_text()
    assert "38/41 of the probe questions" in card and "92.7 %" in card and "20/20 (100.0 %)" in card
    assert "**Who are you?** → I am Nimbus." in card
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card and "Q4_1 GGUF" in card
    assert json.loads((tmp_path / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_portable_base():
    assert portable_base("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert portable_base("SmolLM2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert portable_base("models/base") == "models/base"  # a path as the user gave it
    assert portable_base("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_card_describes_every_method_from_its_record():
    """The card's method line comes from each method's record (config.registry ``describe``), for every method."""
    from tuneforge.config.registry import METHODS
    from tuneforge.models.card import _method

    assert all(rec.describe is not None for rec in METHODS.values()), \
        [n for n, r in METHODS.items() if r.describe is None]
    assert _method({"finetuning_type": "lora", "lora_rank": 8, "use_dora": True, "quantization_bit": 4,
                    "quantization_type": "nf4", "lora_target": "all"}) == \
        ("QLoRA (DoRA)", ["rank 8", "alpha 16", "dropout None", "target `all`", "4-bit nf4 base"])
    assert _method({"finetuning_type": "ptuning_v2", "num_virtual_tokens": 16}) == ("P-Tuning v2",
                                                                                  ["16 virtual tokens"])
    assert _method({"finetuning_type": "oft", "oft_rank": 4, "oft_block_size": 0, "oft_target": "all"})[0] == "OFT"
    assert _method({"finetuning_type": "freeze", "freeze_trainable_layers": 2,
                    "freeze_trainable_modules": "all"})[0] == "freeze (partial fine-tuning)"
