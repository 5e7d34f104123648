"""The non-finite guard (train/guard.py): a NaN/Inf loss or gradient norm skips the step in every loop, K in a row
stop the run with a clear error and a non-zero exit, nothing non-finite is written, metrics.jsonl stays strict JSON.

Faults are injected by patching, inside the test, the function that measures the gradient norm so that it first
fills the real gradients with NaN (the loop, the clipping and the guard then run unchanged)."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.config import build_config
from tuneforge.recipes import run
from tuneforge.train import distributed, steps
from tuneforge.train.checkpoint import list_checkpoints
from tuneforge.train.guard import NonFiniteError, NonFiniteGuard


def strict_rows(path):
    """metrics.jsonl parsed by a strict parser: a bare NaN/Infinity token fails the test."""
    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token} in {path}")
    return [json.loads(x, parse_constant=refuse) for x in path.read_text().splitlines()]


def all_finite(path):
    return all(torch.isfinite(t).all() for t in load_file(str(path)).values())


@pytest.fixture()
def nan_grads_at(monkeypatch):
    """``nan_grads_at(steps)``: the optimiser steps (1-based calls of the norm measurement) whose gradients are
    NaN."""
    real = distributed.clip_and_norm

    def arm(bad):
        calls = {"n": 0}

        def poisoned(accelerator, params, max_grad_norm):
            calls["n"] += 1
            if bad(calls["n"]):
                for p in params:
                    if p.grad is not None:
                        p.grad.fill_(float("nan"))
            return real(accelerator, params, max_grad_norm)

        monkeypatch.setattr(steps.distributed, "clip_and_norm", poisoned)
        return calls
    return arm


def sft(tiny_model, data_dir, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=2, learning_rate=1e-2, logging_steps=1,
                save_steps=0, lora_target="all", seed=7)
    return run(build_config({**base, **kw}))


def test_guard_counts_skips_and_stops_after_patience():
    stops = []
    g = NonFiniteGuard(3, on_stop=lambda step, e: stops.append(step))
    assert g.allows(1, 1.0, 2.0)
    assert not g.allows(2, float("nan"), 1.0) and not g.allows(3, 1.0, float("inf"))
    assert g.allows(4, 0.5, 0.5)  # a good step resets the run of bad ones
    assert not g.allows(5, float("nan"), None) and not g.allows(6, float("nan"), None)
    with pytest.raises(NonFiniteError) as e:
        g.allows(7, float("-inf"), 1.0)
    assert stops == [7] and g.skipped == 5
    text = str(e.value)
    assert "step 7" in text and "learning rate" in text and "bf16" in text and "docs/data.md" in text
    assert "--learning_rate" in e.value.hint and "checkpoint" in e.value.hint
    assert not NonFiniteGuard(0).allows(1, float("nan"), 1.0)  # 0: skip, never stop


def test_one_nan_step_is_skipped_and_the_run_completes(tiny_model, data_dir, tmp_path, nan_grads_at):
    out = tmp_path / "r"
    nan_grads_at(lambda n: n == 3)
    res = sft(tiny_model, data_dir, out, max_steps=6)
    s = res.summary
    assert s["completed"] and s["steps"] == 6 and s["skipped_steps"] == 1 and math.isfinite(s["final_loss"])
    rows = strict_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert "loss" not in rows[2] and rows[2]["grad_norm"] is None and rows[2]["skipped_steps"] == 1
    assert rows[1]["lr"] != rows[2]["lr"] == rows[3]["lr"] != rows[4]["lr"]  # the schedule waited on step 3
    assert all_finite(out / "adapter_model.safetensors")
    assert json.loads((out / "run_summary.json").read_text())["skipped_steps"] == 1


def test_nan_steps_in_a_row_stop_the_run_and_keep_the_good_checkpoints(tiny_model, data_dir, tmp_path, nan_grads_at):
    out = tmp_path / "r"
    nan_grads_at(lambda n: n >= 3)
    with pytest.raises(NonFiniteError, match="training stopped at step 5"):
        sft(tiny_model, data_dir, out, max_steps=8, save_steps=2)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["completed"] is False and summary["stopped_at_step"] == 5 and summary["skipped_steps"] == 3
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    assert all(all_finite(c / "trainable.safetensors") for c in list_checkpoints(out))
    assert not (out / "adapter_model.safetensors").exists()
    strict_rows(out / "metrics.jsonl")
    # the same command again resumes from the last good checkpoint
    nan_grads_at(lambda n: False)
    res = sft(tiny_model, data_dir, out, max_steps=8, save_steps=2)
    assert res.summary["completed"] and res.summary["resumed_from"].endswith("checkpoint-4")
    assert res.summary["skipped_steps"] == 2  # the two skipped before checkpoint-4 (its state counts them)


def test_a_huge_learning_rate_stops_with_a_message_not_nan_weights(tiny_model, data_dir, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(NonFiniteError, match="non-finite") as e:
        sft(tiny_model, data_dir, out, learning_rate=1e6, max_steps=12, save_steps=1, nonfinite_patience=2)
    assert "--learning_rate" in e.value.hint
    assert json.loads((out / "run_summary.json").read_text())["completed"] is False
    assert list_checkpoints(out) and all(all_finite(c / "trainable.safetensors") for c in list_checkpoints(out))
    strict_rows(out / "metrics.jsonl")


def test_non_finite_weights_are_never_written(tiny_model, data_dir, tmp_path, monkeypatch):
    """Weights that went NaN without a NaN loss (the guard cannot see it) are refused by every save."""
    from tuneforge.train import loop

    real = loop.optimizer_step

    def then_poison(accelerator, params, optimizer, *a, **k):
        result = real(accelerator, params, optimizer, *a, **k)
        with torch.no_grad():
            params[0].fill_(float("nan"))
        return result

    monkeypatch.setattr(loop, "optimizer_step", then_poison)
    out = tmp_path / "r"
    with pytest.raises(NonFiniteError, match="checkpoint-2 not written"):
        sft(tiny_model, data_dir, out, max_steps=4, save_steps=2, nonfinite_patience=0)
    assert list_checkpoints(out) == [] and not (out / "checkpoint-2").exists()
    with pytest.raises(NonFiniteError, match="the final model not written"):
        sft(tiny_model, data_dir, out, max_steps=1, save_steps=0, nonfinite_patience=0, overwrite_output_dir=True)
    assert not (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "run_summary.json").read_text())["completed"] is False


@pytest.fixture()
def pref_dir(tmp_path):
    d = tmp_path / "pref"
    d.mkdir()
    rows = [{"instruction": f"Say hi {i}.", "input": "", "chosen": f"Hi {i}. DONE", "rejected": f"Hi {i}."}
            for i in range(8)]
    kto = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}],
            "label": i % 2 == 0} for i in range(8)]
    (d / "p.json").write_text(json.dumps(rows))
    (d / "kto.json").write_text(json.dumps(kto))
    (d / "text.json").write_text(json.dumps([{"text": f"Plain text number {i} for pre-training."} for i in range(8)]))
    (d / "dataset_info.json").write_text(json.dumps({
        "p": {"file_name": "p.json", "ranking": True}, "t": {"file_name": "text.json"},
        "k": {"file_name": "kto.json", "formatting": "openai", "columns": {"messages": "messages",
                                                                           "kto_tag": "label"}}}))
    return d


@pytest.mark.parametrize("stage", ["pt", "rm", "dpo", "kto", "ppo"])
def test_every_stage_stops_on_non_finite_steps(tiny_model, pref_dir, tmp_path, nan_grads_at, stage):
    base = dict(model_name_or_path=str(tiny_model), output_dir=str(tmp_path / stage), per_device_train_batch_size=4,
                learning_rate=5e-3, logging_steps=1, save_steps=0, seed=3, cutoff_len=256, max_steps=5)
    if stage == "ppo":
        rm = tmp_path / "rm"
        run(build_config({**base, "output_dir": str(rm), "stage": "rm", "dataset": "p", "dataset_dir": str(pref_dir),
                          "max_steps": 1, "finetuning_type": "freeze"}))
        base.update(dataset="p", dataset_dir=str(pref_dir), reward_model=str(rm), max_new_tokens=4,
                    ppo_epochs=1)  # one optimiser step per PPO step
    else:
        base.update(dataset={"kto": "k", "pt": "t"}.get(stage, "p"), dataset_dir=str(pref_dir))
    calls = nan_grads_at(lambda n: n >= 2)
    with pytest.raises(NonFiniteError, match="training stopped at step 4"):
        run(build_config({**base, "stage": stage}))
    assert calls["n"] >= 4
    out = tmp_path / stage
    assert json.loads((out / "run_summary.json").read_text())["completed"] is False
    strict_rows(out / "metrics.jsonl")


def test_non_finite_settings_are_refused_with_the_other_problems():
    from tuneforge.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        build_config(dict(model_name_or_path="m", output_dir="o", dataset="d", learning_rate="inf",
                          num_train_epochs="nan", warmup_ratio="-inf", seed=-5, nonfinite_patience=-1))
    text = str(e.value)
    for needle in ("learning_rate: expected a finite number", "num_train_epochs: expected a finite number",
                   "warmup_ratio: expected a finite number", "seed must be in", "nonfinite_patience must be ≥ 0"):
        assert needle in text, needle


@pytest.mark.e2e
def test_the_embedded_model_skips_non_finite_steps_and_stops(embedded_path, tmp_path, nan_grads_at):
    """On the real model: NaN gradients from step 2 on (injected into the real gradients) are skipped, the run stops
    at the patience with a non-zero exit, the checkpoints before it hold finite weights, nothing final is saved."""
    out = tmp_path / "r"
    nan_grads_at(lambda n: n >= 2)
    with pytest.raises(NonFiniteError, match="training stopped at step 3") as e:
        run(build_config(dict(model_name_or_path="smollm2-135m-instruct", dataset="identity", output_dir=str(out),
                              max_steps=4, save_steps=1, per_device_train_batch_size=1, cutoff_len=48,
                              max_samples=4, logging_steps=1, nonfinite_patience=2, seed=1)))
    assert "--learning_rate" in e.value.hint
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["completed"] is False and summary["skipped_steps"] == 2
    assert not (out / "adapter_model.safetensors").exists()
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    assert all(all_finite(c / "trainable.safetensors") for c in list_checkpoints(out))
    rows = strict_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["grad_norm"] is None and "loss" not in rows[1]
