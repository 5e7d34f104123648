"""No traceback for user mistakes (#16): each ordinary mistake — bad bytes, bad catalog entries, bad numbers, a
resume with other settings, a pickle payload — is answered through `tuneforge.cli.main` with exit code 2 and a
message that says what is wrong and what to do; none reaches the user as a traceback."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from tuneforge.cli import main


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory):
    w = tmp_path_factory.mktemp("mistakes")
    d = w / "data"
    d.mkdir()
    good = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(4)]
    (d / "good.json").write_text(json.dumps(good))
    (d / "latin1.json").write_bytes(b'[{"instruction": "caf\xe9", "output": "x"}]')
    (d / "fake.parquet").write_text("instruction,output\nq,a\n")
    (d / "two.json").write_text(json.dumps(good) + "\n" + json.dumps(good))
    (d / "comma.csv").write_text("instruction,output\nCan you help?,Yes, of course.\n")
    (d / "novalue.json").write_text(json.dumps([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt"}]}]))
    (d / "tools.json").write_text(json.dumps([{"messages": [{"role": "user", "content": "q"},
                                                            {"role": "assistant", "content": "a"}], "tools": [1]}]))
    (d / "deep.json").write_text("[" + '{"a": ' * 100000 + "1" + "}" * 100000 + "]")
    info = {"latin1": {"file_name": "latin1.json"}, "fake": {"file_name": "fake.parquet"},
            "two": {"file_name": "two.json"}, "comma": {"file_name": "comma.csv"},
            "novalue": {"file_name": "novalue.json", "formatting": "sharegpt"},
            "tools": {"file_name": "tools.json", "formatting": "openai"}, "deep": {"file_name": "deep.json"},
            "cols": {"file_name": "good.json", "columns": ["prompt", "response"]},
            "vars": {"file_name": "good.json", "vars": "name=Aster"},
            "nsamples": {"file_name": "good.json", "num_samples": "100"}, "good": {"file_name": "good.json"}}
    (d / "dataset_info.json").write_text(json.dumps(info))
    (w / "latin1.yaml").write_bytes(b"model_name_or_path: x\ndefault_system: caf\xe9\n")
    (w / "dup.yaml").write_text(f"model_name_or_path: {tiny_model}\nlearning_rate: 1e-4\nlearning_rate: 1e-3\n")
    evil_model = w / "evil_model"
    shutil.copytree(tiny_model, evil_model)
    for f in evil_model.glob("*.safetensors"):
        f.unlink()
    with open(evil_model / "pytorch_model.bin", "wb") as fh:
        pickle.dump(Payload(), fh)
    evil_adapter = w / "evil_adapter"
    evil_adapter.mkdir()
    (evil_adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8,
                                                                  "base_model_name_or_path": str(tiny_model)}))
    with open(evil_adapter / "adapter_model.bin", "wb") as fh:
        pickle.dump(Payload(), fh)
    # an interrupted run (a checkpoint, no finished summary) to resume with other settings
    run = w / "run"
    assert main(["train", "--model_name_or_path", str(tiny_model), "--dataset", "good", "--dataset_dir", str(d),
                 "--output_dir", str(run), "--max_steps", "2", "--save_steps", "1", "--lora_rank", "8",
                 "--per_device_train_batch_size", "2"]) == 0
    (run / "run_summary.json").unlink()
    return w


def cases(model: str, w) -> list[tuple[str, list[str], list[str]]]:
    d = str(w / "data")
    train = ["train", "--model_name_or_path", model, "--dataset_dir", d, "--output_dir", str(w / "out")]
    ds = lambda name: [*train, "--dataset", name]  # noqa: E731
    return [
        ("non-UTF-8 data", ds("latin1"), ["latin1.json: not UTF-8 text at byte 21 (line 1)", "iconv"]),
        ("non-UTF-8 YAML", ["train", str(w / "latin1.yaml")], ["not UTF-8 text at byte 41 (line 2)"]),
        ("a .parquet that is not parquet", ds("fake"), ["fake.parquet: not a readable parquet file"]),
        ("two JSON arrays in one file", ds("two"), ["text after the end of the JSON array (another JSON array)"]),
        ("an unquoted comma in a CSV", ds("comma"), ["comma.csv:2: 3 field(s), the header has 2", "quote"]),
        ("a turn without a value", ds("novalue"), ["message 2 (gpt) has no 'value'"]),
        ("tools: [1]", ds("tools"), ["tool 1 must be an object"]),
        ("deeply nested JSON", ds("deep"), ["nested too deeply"]),
        ("columns not a mapping", ds("cols"), ["columns must be a mapping", "docs/data.md"]),
        ("vars not a mapping", ds("vars"), ["vars must be a mapping"]),
        ("num_samples as a string", ds("nsamples"), ["num_samples must be a whole number ≥ 1, got '100'"]),
        ("--seed -5", [*ds("good"), "--seed", "-5"], ["seed must be in [0, 2**32 - 1]"]),
        ("--seed 1e23", [*ds("good"), "--seed", "1e23"], ["seed: expected a whole number, got '1e23'"]),
        ("--num_train_epochs inf", [*ds("good"), "--num_train_epochs", "inf"],
         ["num_train_epochs: expected a finite number"]),
        ("--learning_rate inf", [*ds("good"), "--learning_rate", "inf"], ["learning_rate: expected a finite number"]),
        ("parse and range problems in one list", [*ds("good"), "--learning_rate", "nan", "--lora_rank", "0",
                                                  "--warmup_ratio", "2"],
         ["3 configuration problems", "learning_rate: expected a finite number", "lora_rank must be ≥ 1",
          "warmup_ratio must be in [0, 1)"]),
        ("a duplicated YAML key", ["train", str(w / "dup.yaml")], ["'learning_rate' is set twice (lines 2 and 3)"]),
        ("resume with another lora_rank", ["train", "--model_name_or_path", model, "--dataset", "good",
                                           "--dataset_dir", d, "--output_dir", str(w / "run"), "--max_steps", "2",
                                           "--save_steps", "1", "--lora_rank", "4",
                                           "--per_device_train_batch_size", "2"],
         ["lora_rank 8 there, 4 now", "--overwrite_output_dir True"]),
        ("resume with another method", ["train", "--model_name_or_path", model, "--dataset", "good",
                                        "--dataset_dir", d, "--output_dir", str(w / "run"), "--max_steps", "2",
                                        "--finetuning_type", "freeze", "--per_device_train_batch_size", "2"],
         ["finetuning_type 'lora' there, 'freeze' now"]),
        ("a pickle payload as the model", ["train", "--model_name_or_path", str(w / "evil_model"),
                                           "--dataset", "good", "--dataset_dir", d, "--output_dir", str(w / "o2")],
         ["pytorch_model.bin: a pickle file", "safetensors only"]),
        ("a pickle payload as the adapter", ["chat", "--model_name_or_path", model, "--adapter_name_or_path",
                                             str(w / "evil_adapter")], ["adapter_model.bin: a pickle file"]),
    ]


NAMES = ["non-UTF-8 data", "non-UTF-8 YAML", "a .parquet that is not parquet", "two JSON arrays in one file",
         "an unquoted comma in a CSV", "a turn without a value", "tools: [1]", "deeply nested JSON",
         "columns not a mapping", "vars not a mapping", "num_samples as a string", "--seed -5", "--seed 1e23",
         "--num_train_epochs inf", "--learning_rate inf", "parse and range problems in one list",
         "a duplicated YAML key", "resume with another lora_rank", "resume with another method",
         "a pickle payload as the model", "a pickle payload as the adapter"]


@pytest.mark.parametrize("name", NAMES)
def test_mistake_is_a_message_not_a_traceback(name, tiny_model, world, capsys, monkeypatch):
    found = {c[0]: c for c in cases(str(tiny_model), world)}
    assert sorted(found) == sorted(NAMES)
    monkeypatch.chdir(world)
    from tuneforge.utils import log

    monkeypatch.setattr(log.logger, "handlers", [])  # log to this test's stderr, not an earlier test's closed one
    _, argv, needles = found[name]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (name, err)
    for needle in needles:
        assert needle in err, (name, needle, err)
    assert "Traceback" not in err and "weights_only" not in err
    assert not (world / "PWNED").exists()
