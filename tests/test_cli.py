"""The command line: errors are for users (no traceback unless --debug), and chat works on a trained run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


BUILTIN_INFO = Path(__file__).resolve().parent.parent / "src/tuneforge/data/builtin/dataset_info.json"


def tf(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_unknown_flag_and_bad_values_are_reported_together_without_traceback(tmp_path):
    r = tf("train", "--model_name_or_path", "smollm2", "--dataset", "identity", "--output_dir", str(tmp_path),
           "--learnig_rate", "1e-4", "--lora_rank", "x")
    assert r.returncode == 2
    assert "did you mean 'learning_rate'" in r.stderr and "lora_rank: expected a whole number" in r.stderr
    assert "Traceback" not in r.stderr
    r = tf("train", "--learnig_rate", "1e-4", "--debug")
    assert "Traceback" in r.stderr


def test_missing_model_unknown_dataset_and_template_before_loading(tmp_path):
    r = tf("train", "--model_name_or_path", str(tmp_path / "nope"), "--dataset", "identty", "--template", "qwen9",
           "--output_dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for needle in ("3 configuration problems", "no such folder", "smollm2-135m-instruct", "unknown dataset 'identty'",
                   "known datasets: " + ", ".join(sorted(json.loads(BUILTIN_INFO.read_text()))),
                   "unknown template 'qwen9'", "chatml"):
        assert needle in r.stderr, needle


def test_bad_data_row_stops_before_training(tiny_model, tmp_path):
    (tmp_path / "d.jsonl").write_text('{"instruction": "hi", "output": "hello"}\n{"instruction": "x", "output": ""}\n')
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.jsonl"}}))
    r = tf("train", "--model_name_or_path", str(tiny_model), "--dataset", "d", "--dataset_dir", str(tmp_path),
           "--output_dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "d.jsonl:2" in r.stderr and "empty" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "run_summary.json").exists()


def test_env_lists_aliases_templates_and_datasets():
    r = tf("env")
    assert r.returncode == 0
    assert "smollm2-135m-instruct" in r.stdout and "qwen" in r.stdout and "self_cognition" in r.stdout


def test_train_help_documents_every_key():
    r = tf("train", "--help")
    assert r.returncode == 0 and "--lora_target" in r.stdout and "--dataset_vars" in r.stdout


@pytest.mark.parametrize("cmd", ["chat", "export", "estimate", "score", "env"])
def test_every_command_answers_help_with_usage(cmd):
    from tuneforge.cli import main

    for flag in ("--help", "-h"):
        assert main([cmd, flag]) == 0


def test_help_prints_the_usage_of_chat(capsys):
    from tuneforge.cli import main

    assert main(["chat", "--model_name_or_path", "x", "--help"]) == 0
    out = capsys.readouterr().out  # chat's own usage and settings, not the global usage
    assert out.startswith("usage: tuneforge chat") and "--temperature" in out and "tuneforge export" not in out


def test_yaml_train_then_chat_prompts(tiny_model, data_dir, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    out = tmp_path / "run"
    cfg.write_text(f"model_name_or_path: {tiny_model}\ndataset: alpaca_demo\ndataset_dir: {data_dir}\n"
                   f"output_dir: {out}\nmax_steps: 2\nlearning_rate: 1.0e-3\nper_device_train_batch_size: 2\n")
    r = tf("train", str(cfg), "logging_steps=1", "--template", "chatml")
    assert r.returncode == 0, r.stderr
    assert "template: chatml" in (out / "config.yaml").read_text()
    prompts = tmp_path / "p.txt"
    prompts.write_text("Who are you?\n" + json.dumps({"messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    r = tf("chat", "--model_name_or_path", str(tiny_model), "--adapter_name_or_path", str(out), "--prompts",
           str(prompts), "--max_new_tokens", "5")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["prompt"] for x in rows] == ["Who are you?", "Hi"] and all(isinstance(x["response"], str) for x in rows)
    assert "template=chatml" in r.stderr  # chat formats prompts with the template the run was trained with


def test_chat_rejects_training_keys(tiny_model):
    r = tf("chat", "--model_name_or_path", str(tiny_model), "--learning_rate", "1")
    assert r.returncode == 2 and "learning_rate='1': a training setting; chat does not take it" in r.stderr
