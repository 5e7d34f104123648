"""Crash-safe run folders: each state a crash can leave is injected (patched writes inside the test) and the same
command run again must resume from the newest whole checkpoint — never die on a half-written file."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.recipes import run
from tuneforge.train import checkpoint
from tuneforge.train.checkpoint import MANIFEST, list_checkpoints, verify


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


def cfg(tiny_model, data_dir, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=2, learning_rate=1e-2, logging_steps=1,
                save_steps=2, lora_target="all", seed=7, max_steps=6, lora_dropout=0.0)
    base.update(kw)
    return build_config(base)


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):
    """One uninterrupted run (checkpoints 2 and 4, final weights): what every repaired run must end equal to."""
    from conftest import make_data_dir

    root = tmp_path_factory.mktemp("crash")
    data = make_data_dir(root / "data")
    out = root / "full"
    run(cfg(tiny_model, data, out))
    return data, out


def adapter(out):
    return load_file(str(out / "adapter_model.safetensors"))


def same_final(a, b):
    wa, wb = adapter(a), adapter(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-7)


def interrupted(finished, tmp_path, upto=4):
    """A run folder as a kill after step ``upto`` leaves it: its checkpoints up to there, config and metrics."""
    data, full = finished
    out = tmp_path / "r"
    out.mkdir()
    for ck in list_checkpoints(full):
        if int(ck.name.split("-")[1]) <= upto:
            shutil.copytree(ck, out / ck.name)
    shutil.copy(full / "config.yaml", out / "config.yaml")
    rows = [x for x in (full / "metrics.jsonl").read_text().splitlines() if json.loads(x)["step"] <= upto]
    (out / "metrics.jsonl").write_text("".join(r + "\n" for r in rows))
    return data, out


def test_every_checkpoint_has_a_manifest_written_last(finished):
    for ck in list_checkpoints(finished[1]):
        files = json.loads((ck / MANIFEST).read_text())["files"]
        assert set(files) == {p.name for p in ck.iterdir()} - {MANIFEST}
        assert verify(ck) is None


def test_a_partial_last_metrics_line_and_a_truncated_summary_are_repaired(tiny_model, finished, tmp_path, caplog):
    data, out = interrupted(finished, tmp_path)
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "epoch": 0.8, "lo')  # killed mid-append
    (out / "run_summary.json").write_text('{"completed": fal')  # killed mid-write (before atomic writes)
    res = run(cfg(tiny_model, data, out))
    assert res.summary["completed"] and res.summary["resumed_from"].endswith("checkpoint-4")
    assert (out / "run_summary.json.unreadable").is_file()
    assert "set aside" in caplog.text and "unreadable line" in caplog.text
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    same_final(finished[1], out)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_state_json"])
def test_an_unreadable_checkpoint_is_skipped_for_the_previous_one(tiny_model, finished, tmp_path, caplog, damage):
    data, out = interrupted(finished, tmp_path)
    weights = out / "checkpoint-4" / "trainable.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(weights.read_bytes())
        raw[-1] ^= 0xFF
        weights.write_bytes(bytes(raw))
    else:
        (out / "checkpoint-4" / "scheduler.json").unlink()
    res = run(cfg(tiny_model, data, out))
    assert res.summary["resumed_from"].endswith("checkpoint-2")
    assert "skipping" in caplog.text and "checkpoint-4" in caplog.text
    same_final(finished[1], out)


def test_a_damaged_checkpoint_named_explicitly_is_a_clear_error(tiny_model, finished, tmp_path):
    data, out = interrupted(finished, tmp_path)
    (out / "checkpoint-4" / "optimizer.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(TuneforgeError, match="cannot be resumed from: optimizer.safetensors has 10 bytes"):
        run(cfg(tiny_model, data, out, resume_from_checkpoint=str(out / "checkpoint-4")))


def test_a_kill_while_a_checkpoint_is_written_leaves_the_older_ones(tiny_model, finished, tmp_path, monkeypatch):
    data, out = finished[0], tmp_path / "r"
    real = checkpoint.write_manifest

    def killed_at_4(folder):
        if folder.name.endswith("-4"):
            raise Killed
        return real(folder)

    monkeypatch.setattr(checkpoint, "write_manifest", killed_at_4)
    with pytest.raises(Killed):
        run(cfg(tiny_model, data, out))
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2"] and (out / ".tmp-checkpoint-4").is_dir()
    monkeypatch.setattr(checkpoint, "write_manifest", real)
    res = run(cfg(tiny_model, data, out))
    assert res.summary["resumed_from"].endswith("checkpoint-2") and not (out / ".tmp-checkpoint-4").exists()
    same_final(finished[1], out)


def test_a_kill_while_an_old_checkpoint_is_deleted(tiny_model, finished, tmp_path, monkeypatch):
    """save_total_limit=1: at step 4 checkpoint-2 is deleted; a kill half-way through leaves no half checkpoint."""
    data, out = finished[0], tmp_path / "r"
    real = shutil.rmtree

    def killed_half_way(path, *a, **k):
        if not path.name.startswith(checkpoint.DELETING):
            return real(path, *a, **k)
        files = sorted(p for p in path.iterdir())
        files[0].unlink()  # one file gone, then the process dies
        raise Killed

    monkeypatch.setattr(checkpoint.shutil, "rmtree", killed_half_way)
    with pytest.raises(Killed):
        run(cfg(tiny_model, data, out, save_total_limit=1))
    monkeypatch.setattr(checkpoint.shutil, "rmtree", real)
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-4"] and (out / ".deleting-checkpoint-2").is_dir()
    res = run(cfg(tiny_model, data, out, save_total_limit=1))
    assert res.summary["resumed_from"].endswith("checkpoint-4")
    assert not [p for p in out.iterdir() if p.name.startswith(".deleting-")]
    same_final(finished[1], out)


def test_a_kill_during_the_final_adapter_write(tiny_model, finished, tmp_path, monkeypatch):
    import tuneforge.adapters as adapters

    data, out = finished[0], tmp_path / "r"
    real = adapters.move_in

    def killed_while_moving(stage, dest):
        first = sorted(stage.iterdir())[0]
        first.replace(dest / first.name)  # one file moved in, the others not
        raise Killed

    monkeypatch.setattr(adapters, "move_in", killed_while_moving)
    with pytest.raises(Killed):
        run(cfg(tiny_model, data, out))
    assert not (out / "run_summary.json").exists() and (out / ".tmp-final").is_dir()
    assert not (out / "adapter_model.safetensors").exists() or verify(out / "checkpoint-4") is None
    monkeypatch.setattr(adapters, "move_in", real)
    res = run(cfg(tiny_model, data, out))  # the same command: resumes from checkpoint-4 and writes the final model
    assert res.summary["completed"] and res.summary["resumed_from"].endswith("checkpoint-4")
    assert not (out / ".tmp-final").exists()
    same_final(finished[1], out)


def test_resuming_with_another_rank_or_method_says_which_keys_differ(tiny_model, finished, tmp_path):
    data, out = interrupted(finished, tmp_path)
    with pytest.raises(TuneforgeError) as e:
        run(cfg(tiny_model, data, out, lora_rank=4))
    assert "lora_rank 8 there, 4 now" in str(e.value) and "--overwrite_output_dir True" in e.value.hint
    with pytest.raises(TuneforgeError, match="finetuning_type 'lora' there, 'freeze' now"):
        run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data),
                              output_dir=str(out), finetuning_type="freeze", max_steps=6)))


def test_logged_loss_after_a_resume_matches_when_logging_steps_does_not_divide_save_steps(tiny_model, data_dir,
                                                                                           tmp_path):
    kw = dict(logging_steps=3, save_steps=2, max_steps=6)
    run(cfg(tiny_model, data_dir, tmp_path / "full", **kw))
    out = tmp_path / "r"
    out.mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-4", out / "checkpoint-4")  # between the log lines of 3 and 6
    run(cfg(tiny_model, data_dir, out, **kw))
    full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in full] == [3, 6] and [r["step"] for r in resumed] == [6]
    assert resumed[0]["loss"] == pytest.approx(full[1]["loss"], rel=1e-6)
