from pathlib import Path

import pytest

from tuneforge.config import build_config, parse_args, validate
from tuneforge.errors import ConfigError

SEED = ("--stage sft --do_train True --model_name_or_path smollm2-135m-instruct --finetuning_type lora "
        "--template qwen --dataset_dir data --dataset self_cognition --cutoff_len 1024 --learning_rate 0.0001 "
        "--num_train_epochs 10.0 --max_samples 100000 --per_device_train_batch_size 4 "
        "--gradient_accumulation_steps 4 --lr_scheduler_type cosine --max_grad_norm 1.0 --logging_steps 5 "
        "--save_steps 100 --warmup_steps 0 --output_dir saves/smollm2/lora/identity --fp16 True --lora_rank 8 "
        "--lora_dropout 0.1 --lora_target q_proj,v_proj --plot_loss True").split()


def test_llamafactory_flags_parse_verbatim():
    cfg = parse_args(SEED)
    assert cfg.finetune.finetuning_type == "lora" and cfg.data.template == "qwen"
    assert cfg.train.learning_rate == 1e-4 and cfg.train.num_train_epochs == 10.0
    assert cfg.train.fp16 is True and cfg.train.plot_loss is True
    assert cfg.data.cutoff_len == 1024 and cfg.data.max_samples == 100000
    assert cfg.lora.lora_target == "q_proj,v_proj" and cfg.lora.lora_dropout == 0.1
    assert validate(cfg) == []


def test_yaml_then_overrides_win(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_text("model_name_or_path: m\ndataset: identity\noutput_dir: o\nlearning_rate: 1.0e-3\nlora_rank: 4\n"
                 "dataset_vars:\n  name: Nimbus\n  author: Orchard Labs\n")
    cfg = parse_args([str(f), "learning_rate=2e-4", "--lora_rank", "16", "--num_train_epochs=2"])
    assert cfg.train.learning_rate == 2e-4 and cfg.lora.lora_rank == 16 and cfg.train.num_train_epochs == 2
    assert cfg.data.dataset_vars == {"name": "Nimbus", "author": "Orchard Labs"}


def test_dataset_vars_from_command_line():
    cfg = parse_args(["--dataset_vars", "name=Nimbus,author=Orchard Labs"])
    assert cfg.data.dataset_vars == {"name": "Nimbus", "author": "Orchard Labs"}


def test_unknown_keys_and_bad_values_reported_together():
    with pytest.raises(ConfigError) as e:
        parse_args(["--learnig_rate", "1e-4", "--lora_rank", "eight", "--lr_scheduler_type", "cosin", "--fp16", "maybe"])
    msg = str(e.value)
    assert len(e.value.problems) == 4
    assert "did you mean 'learning_rate'" in msg
    assert "lora_rank: expected a whole number" in msg
    assert "linear, cosine, constant, constant_with_warmup" in msg
    assert "expected True or False" in msg


def test_cross_field_validation_collects_everything():
    cfg = build_config({"learning_rate": -1, "bf16": True, "fp16": True, "finetuning_type": "full",
                        "lora_rank": 4, "per_device_train_batch_size": 0})
    problems = validate(cfg)
    text = "\n".join(problems)
    for needle in ("model_name_or_path is required", "output_dir is required", "dataset is required",
                   "learning_rate must be > 0", "bf16 and fp16", "only applies to finetuning_type lora",
                   "per_device_train_batch_size"):
        assert needle in text, needle


def test_resolved_yaml_round_trips(tmp_path):
    cfg = parse_args(SEED + ["--dataset_vars", "name=A,author=B"])
    f = tmp_path / "config.yaml"
    f.write_text(cfg.to_yaml())
    again = parse_args([str(f)])
    assert again.to_flat() == cfg.to_flat()


def test_llamafactory_compat_keys_are_accepted_and_reported():
    cfg = build_config({"overwrite_cache": True, "preprocessing_num_workers": 16})
    assert set(cfg.ignored) == {"overwrite_cache", "preprocessing_num_workers"}


def test_saved_config_of_a_freeze_run_validates_again(tmp_path):
    cfg = build_config({"model_name_or_path": "m", "dataset": "identity", "output_dir": "o",
                        "finetuning_type": "freeze", "freeze_trainable_layers": 3})
    f = tmp_path / "config.yaml"
    f.write_text(cfg.to_yaml())
    assert validate(parse_args([str(f)])) == []  # every key is in the file, but lora_* keep their defaults


def test_every_example_config_resolves_without_problems():
    """examples/*.yaml are what the README tells users to run: each parses and validates (no weights load)."""
    root = Path(__file__).resolve().parent.parent / "examples"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 6
    for f in files:
        cfg = parse_args([str(f)])
        assert validate(cfg) == [], (f.name, validate(cfg))
