"""An LLaMA-Factory data folder works as LF reads it: entries are resolved only when asked for (an unrelated hub or
broken entry never blocks a run), hub datasets load through datasets.load_dataset from a hub cache offline, every
LF file_name form reads (.txt, folders, globs, arrow), and multimodal data is refused before anything loads.
Hub model ids resolve through huggingface_hub from a hub cache built here, offline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import needs_embedded
from lf_fixtures import ALPACA, HUB_EN, HUB_ZH, lf_data_dir, lf_dataset_cache, model_into_cache
from tuneforge.config import build_config
from tuneforge.data import templates
from tuneforge.data.build import build_data, read_dataset
from tuneforge.data.catalog import check_datasets, load_catalog, lookup
from tuneforge.errors import DataError, ModelError
from tuneforge.models.load import check_model, resolve_model_path
from tuneforge.utils.hub import HubOptions


@pytest.fixture()
def offline_hub(tmp_path, monkeypatch):
    """An offline machine with a hub cache holding the dataset acme/tiny_sft."""
    cache = tmp_path / "hub"
    lf_dataset_cache(cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return HubOptions(cache_dir=str(cache))


def rows(name, data_dir, stage="sft", hub=None, **args):
    cfg = build_config({"dataset": name, "dataset_dir": str(data_dir), **args})
    entry = lookup(load_catalog(data_dir), name, str(data_dir))
    return read_dataset(entry, cfg.data, stage, hub)


def test_local_entries_work_next_to_hub_and_broken_ones(tmp_path):
    d = lf_data_dir(tmp_path)
    assert check_datasets("identity,chat_demo,wiki_demo,folder_demo,glob_demo,arrow_demo", str(d)) == []
    assert check_datasets("alpaca_en,hub_en", str(d)) == []  # hub entries are checked when they load
    items, counts = rows("identity", d)
    assert counts == {"read": 6, "used": 6} and items[0].messages[0].content == ALPACA[0]["instruction"]
    (problem,) = check_datasets("broken", str(d))
    assert "'broken' must be an object" in problem
    (problem,) = check_datasets("scripted", str(d))
    assert "script_url, which tuneforge does not support" in problem


def test_every_file_name_form_reads(tmp_path):
    d = lf_data_dir(tmp_path)
    texts, counts = rows("wiki_demo", d, stage="pt")
    assert texts == ["First document about owls.", "Second document about rivers.", "Third one."]  # blank skipped
    assert counts == {"read": 3, "used": 3}
    folder, _ = rows("folder_demo", d)
    pattern, _ = rows("glob_demo", d)
    assert [c.messages[1].content for c in folder] == [c.messages[1].content for c in pattern] == \
        [r["output"] for r in ALPACA]
    arrow, _ = rows("arrow_demo", d)
    assert [c.messages[1].content for c in arrow] == [r["output"] for r in ALPACA[:2]]
    chat, _ = rows("chat_demo", d)
    assert chat[0].messages[1].content == "Hello."


def test_hub_datasets_load_offline_from_the_hub_cache(tmp_path, offline_hub):
    d = lf_data_dir(tmp_path)
    en, counts = rows("hub_en", d, hub=offline_hub)
    assert [c.messages[1].content for c in en] == [r["output"] for r in HUB_EN] and counts["read"] == 4
    zh, _ = rows("hub_zh", d, hub=offline_hub)
    assert [c.messages[0].content for c in zh] == [r["instruction"] for r in HUB_ZH]
    sampled, counts = rows("hub_folder", d, hub=offline_hub)  # folder = data_dir; num_samples from the entry
    assert counts == {"read": 4, "used": 2} and {c.messages[1].content for c in sampled} <= {r["output"]
                                                                                            for r in HUB_EN}
    online, _ = rows("acme/plain", "ONLINE", hub=offline_hub, max_samples=2)  # dataset_dir ONLINE: hub ids
    assert len(online) == 2


def test_a_missing_hub_dataset_says_how_to_get_it(tmp_path, offline_hub):
    d = lf_data_dir(tmp_path)
    with pytest.raises(DataError) as e:
        rows("alpaca_en", d, hub=offline_hub)
    assert "'llamafactory/alpaca_en' could not be loaded" in e.value.message
    assert "hf download --repo-type dataset llamafactory/alpaca_en" in e.value.hint


def test_modelscope_entries_need_modelscope(tmp_path, offline_hub):
    d = lf_data_dir(tmp_path)
    with pytest.raises(DataError) as e:
        rows("ms_only", d, hub=offline_hub)
    assert "ModelScope" in e.value.message and "pip install modelscope" in e.value.hint


def test_multimodal_data_is_refused_before_anything_loads(tmp_path, tiny_tokenizer):
    d = lf_data_dir(tmp_path)
    (problem,) = check_datasets("mllm_demo", str(d))
    assert "multimodal training is not supported yet" in problem
    (d / "media.jsonl").write_text(json.dumps({"instruction": "<image>What is in the picture?", "output": "A cat."})
                                   + "\n" + json.dumps({"instruction": "q", "output": "a", "images": ["x.png"]}) + "\n")
    info = json.loads((d / "dataset_info.json").read_text())
    info["media"] = {"file_name": "media.jsonl"}
    (d / "dataset_info.json").write_text(json.dumps(info))
    cfg = build_config({"dataset": "media", "dataset_dir": str(d)})
    with pytest.raises(DataError) as e:
        build_data(cfg.data, "sft", tiny_tokenizer, templates.install(tiny_tokenizer, "auto"), seed=0)
    assert "2 row(s) are multimodal" in e.value.message and "never trained as plain text" in e.value.message


def test_remote_dataset_dir_is_refused(tmp_path):
    (problem,) = check_datasets("x", "REMOTE:llamafactory/demo_data")
    assert "REMOTE: catalogs" in problem and "ONLINE" in problem


# ---- hub model ids ------------------------------------------------------------------------------------------------

def test_hub_model_id_resolves_offline_from_a_hub_cache(tiny_model, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snap = model_into_cache(cache, "acme/tiny-llama", tiny_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    opts = HubOptions(cache_dir=str(cache))
    assert check_model("acme/tiny-llama", opts) is None
    assert resolve_model_path("acme/tiny-llama", opts) == snap
    problem = check_model("acme/not-there", opts)
    assert "could not be resolved" in problem and "HF_HUB_OFFLINE" in problem
    with pytest.raises(ModelError) as e:
        resolve_model_path("acme/not-there", opts)
    assert "hf download acme/not-there" in e.value.hint and "local model folder" in e.value.hint


def test_a_missing_hub_model_stops_the_cli_before_anything_loads(tiny_model, tmp_path):
    """`tuneforge train --model_name_or_path org/name` with HF_HUB_OFFLINE=1 and an id the cache lacks: a clear
    error without a traceback (tests/test_lf_yaml.py trains a cached hub id through the CLI)."""
    cache = tmp_path / "hub"
    model_into_cache(cache, "acme/tiny-llama", tiny_model)
    d = lf_data_dir(tmp_path)
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "tuneforge", "train", "--model_name_or_path", "acme/missing",
                        "--cache_dir", str(cache), "--dataset", "identity", "--dataset_dir", str(d), "--output_dir",
                        str(tmp_path / "o2")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "acme/missing" in r.stderr
    assert "hf download acme/missing" in r.stderr


# ---- long rows: LLaMA-Factory's proportional truncation -----------------------------------------------------------

def test_infer_seqlen_is_lfs_rule():
    from tuneforge.data.encode import infer_seqlen

    assert infer_seqlen(300, 50, 256) == (206, 50)  # short reply kept whole, prompt cut
    assert infer_seqlen(100, 400, 256) == (100, 156)  # short prompt kept whole, reply cut
    assert infer_seqlen(300, 300, 256) == (128, 128)  # both cut in proportion
    assert infer_seqlen(10, 10, 256) == (10, 10)


def _long_rows(d, n=6):
    rows = [{"instruction": "word " * (40 + 30 * (i % 3)), "output": "Yes, that is right. " * (1 + i % 2),
             "kto_tag": i % 2 == 0} for i in range(n)]
    (d / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = json.loads((d / "dataset_info.json").read_text())
    info["long"] = {"file_name": "long.jsonl", "columns": {"kto_tag": "kto_tag"}}
    (d / "dataset_info.json").write_text(json.dumps(info))


@pytest.mark.parametrize("stage", ["sft", "kto"])
def test_lf_truncation_keeps_long_rows_that_turns_drops(tmp_path, tiny_tokenizer, stage):
    d = lf_data_dir(tmp_path)
    _long_rows(d)
    fmt = templates.install(tiny_tokenizer, "chatml")
    out = {}
    for mode in ("turns", "lf"):
        cfg = build_config({"dataset": "long", "dataset_dir": str(d), "cutoff_len": 40, "truncation": mode})
        out[mode] = build_data(cfg.data, stage, tiny_tokenizer, fmt, seed=0) if mode == "lf" else None
        if mode == "turns":
            with pytest.raises(DataError) as e:  # every prompt is longer than 40 tokens: nothing left
                build_data(cfg.data, stage, tiny_tokenizer, fmt, seed=0)
            assert "prompt alone is longer than cutoff_len" in e.value.message
    bundle = out["lf"]
    report = bundle.report["train"]
    assert report["samples"] == 6 and report["truncated"] == 6 and report["truncated_tokens"] > 0
    for s in bundle.train:
        sample = s.chosen if stage == "kto" else s
        assert len(sample.input_ids) <= 40 and sample.n_trained > 0


def test_truncation_auto_follows_the_config_style():
    assert build_config({}).data.truncation == "auto"  # = turns
    assert build_config({"do_train": True}).data.truncation == "lf"  # an LLaMA-Factory-style config
    assert build_config({"do_train": True, "truncation": "turns"}).data.truncation == "turns"


# ---- --dry_run: every problem in one round ------------------------------------------------------------------------

def test_dry_run_reports_config_template_and_data_problems_at_once(tiny_model, tmp_path):
    d = lf_data_dir(tmp_path)
    (d / "bad.jsonl").write_text('{"instruction": "q"}\n{"instruction": "q2", "output": "a"}\n')
    info = json.loads((d / "dataset_info.json").read_text())
    info["bad"] = {"file_name": "bad.jsonl"}
    (d / "dataset_info.json").write_text(json.dumps(info))
    cfg = tmp_path / "lf.yaml"
    out = tmp_path / "run"
    cfg.write_text(f"model_name_or_path: {tiny_model}\nstage: sft\ndo_train: true\nfinetuning_type: lora\n"
                   f"dataset: identity,bad,mllm_demo,scripted\ndataset_dir: {d}\ntemplate: chatml\n"
                   f"cutoff_len: 1024\noutput_dir: {out}\nlearning_rate: lots\nlora_rnk: 8\ndeepspeed: ds_z3.json\n")
    r = subprocess.run([sys.executable, "-m", "tuneforge", "train", str(cfg), "--dry_run"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    for needle in ("learning_rate: expected a number", "did you mean 'lora_rank'", "deepspeed 'ds_z3.json': no such file",
                   "multimodal training is not supported yet", "script_url", "dataset 'bad': 1 bad row(s)",
                   "bad.jsonl:1"):
        assert needle in r.stderr, needle
    assert r.stderr.count("script_url, which tuneforge does not support") == 1  # each problem listed once
    assert "dry run: dataset identity: 6 rows read" in r.stderr  # good datasets are still checked and counted
    assert not out.exists()
    cfg.write_text(f"model_name_or_path: {tiny_model}\ndo_train: true\ndataset: identity\n"
                   f"dataset_dir: {d}\ntemplate: qwen3_nothink\noutput_dir: {out}\n")
    from tuneforge.cli import main

    assert main(["train", str(cfg), "--dry_run", "--template", "chatml"]) == 0 and not out.exists()


@needs_embedded
def test_the_embedded_model_by_its_hub_id_offline(embedded_path, tmp_path, monkeypatch):
    """HuggingFaceTB/SmolLM2-135M-Instruct resolves from a hub cache built from the embedded model, offline, and
    answers through the chat engine."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine

    cache = tmp_path / "hub"
    snap = model_into_cache(cache, "HuggingFaceTB/SmolLM2-135M-Instruct", embedded_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    opts = HubOptions(cache_dir=str(cache))
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct", opts) == snap
    engine = ChatEngine("HuggingFaceTB/SmolLM2-135M-Instruct", hub=opts)
    (reply,) = engine.generate([[{"role": "user", "content": "What is the capital of France?"}]],
                               GenerateArgs(max_new_tokens=12))
    assert "Paris" in reply
