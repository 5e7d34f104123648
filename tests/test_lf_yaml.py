"""LLaMA-Factory-style YAML files (tests/data/lf_yaml, written in the layout of LF's examples: train_lora, inference,
merge_lora) run unchanged with only the model, data and output paths given on the command line: train a hub model id
on an LF data folder with a hub dataset (both offline, from a hub cache), chat with the inference file, merge with
the merge file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lf_fixtures import jsonl, lf_data_dir, lf_dataset_cache, model_into_cache
from tuneforge.cli import main

YAML = Path(__file__).parent / "data" / "lf_yaml"


@pytest.fixture(scope="module")
def lf_run(tiny_model, tmp_path_factory):
    """`tuneforge train lora_sft.yaml` with paths (and a 2-step budget) on the command line."""
    root = tmp_path_factory.mktemp("lf")
    data = lf_data_dir(root)
    cache = root / "hub"
    lf_dataset_cache(cache)
    model_into_cache(cache, "acme/tiny-llama", tiny_model)  # the model by its hub id, from the hub cache
    out = root / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "tuneforge", "train", str(YAML / "lora_sft.yaml"),
                        "model_name_or_path=acme/tiny-llama", f"output_dir={out}", f"dataset_dir={data}",
                        f"cache_dir={cache}", "max_steps=2"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return root, data, out, r.stderr


def test_lf_training_yaml_runs(lf_run):
    _, _, out, log = lf_run
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["completed"] and summary["template"] == "qwen3_nothink" and summary["model"] == "acme/tiny-llama"
    assert summary["data"]["datasets"] == {"identity": {"read": 6, "used": 6}, "hub_en": {"read": 4, "used": 4}}
    for ignored in ("overwrite_cache", "preprocessing_num_workers", "dataloader_num_workers", "use_unsloth"):
        assert f"ignored {ignored}" in log, ignored
    assert "truncation=lf" in log and "dtype=float32: bf16 asked but no CUDA device" in log
    assert "tuneforge LLaMA-Factory template qwen3_nothink" in (out / "chat_template.jinja").read_text()


def test_lf_inference_yaml_chats(lf_run, tiny_model, capsys):
    _, _, out, _ = lf_run
    rc = main(["chat", str(YAML / "inference.yaml"), f"model_name_or_path={tiny_model}",
               f"adapter_name_or_path={out}", "--prompt", "Who are you?", "--max_new_tokens", "3"])
    assert rc == 0
    capsys.readouterr()  # a random tiny model's three tokens: printed, not judged


def test_lf_merge_yaml_exports(lf_run, tiny_model):
    root, _, out, _ = lf_run
    export = root / "merged"
    rc = main(["export", str(YAML / "merge_lora.yaml"), f"model_name_or_path={tiny_model}",
               f"adapter_name_or_path={out}", f"export_dir={export}"])
    assert rc == 0 and list(export.glob("*.safetensors")) and (export / "tokenizer_config.json").is_file()


def test_lf_dpo_yaml_dry_runs(tiny_model, tmp_path):
    data = lf_data_dir(tmp_path)
    rows = [{"instruction": f"Pick {i}", "chosen": "Good answer.", "rejected": "Bad."} for i in range(4)]
    (data / "pairs.jsonl").write_text(jsonl(rows))
    info = json.loads((data / "dataset_info.json").read_text())
    info["pairs"] = {"file_name": "pairs.jsonl", "ranking": True,
                     "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    rc = main(["train", str(YAML / "dpo.yaml"), f"model_name_or_path={tiny_model}", f"output_dir={tmp_path / 'o'}",
               f"dataset_dir={data}", "--dry_run"])
    assert rc == 0 and not (tmp_path / "o").exists()
