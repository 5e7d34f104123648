"""Every LLaMA-Factory argument name has a decision (implemented / ignored / refused), shared by train, chat and
export; docs/lf-compat.md is generated from the decisions and is current.

The name lists are copies (names only) of LF's hparams dataclass fields and of the Seq2SeqTrainingArguments names it
accepts, in tests/data/lf/ (CI has no /work/shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.config import build_config, parse_args
from tuneforge.config import lf_keys
from tuneforge.config.schema import field_map
from tuneforge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
LF = Path(__file__).parent / "data" / "lf"


def names(file: str) -> list[str]:
    return [ln.strip() for ln in (LF / file).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


ALL_NAMES = sorted(set(names("hparams-names.txt")) | set(names("hf-training-args.txt")))
# A value that asks for something, for each kind of name (refused names must refuse it).
ASKING = {bool: True, int: 3, float: 0.5, str: "x"}


def test_the_lists_are_lf_sized():
    assert len(names("hparams-names.txt")) > 250 and len(names("hf-training-args.txt")) > 100
    assert len(ALL_NAMES) > 370


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_lf_name_has_one_of_three_outcomes(name):
    fmap = field_map()
    d = lf_keys.DECISIONS.get(name)
    assert d is not None, f"{name}: no decision in config/lf_keys.py"
    if d.kind == lf_keys.IMPLEMENTED:
        assert name in fmap, f"{name} is marked implemented but is not a schema field"
        return
    assert name not in fmap, f"{name} is a schema field but decided {d.kind}"
    assert d.reason, name
    # a value that means "nothing" is accepted (LF's saved configs carry every key at its default)
    cfg = build_config({name: None})
    assert name in cfg.ignored
    if d.kind == lf_keys.IGNORED:
        cfg = build_config({name: "something"})
        assert cfg.ignored[name] == d.reason
    else:
        assert d.fix, name
        with pytest.raises(ConfigError) as e:
            build_config({name: "on-purpose"})
        (problem,) = e.value.problems
        assert problem.startswith(f"{name}='on-purpose': {d.reason}") and d.fix in problem
        assert "unknown key" not in problem


def test_no_lf_name_is_an_unknown_key():
    for name in ALL_NAMES:
        action, _, _ = lf_keys.route(name, None, field_map().get(name, (None,))[0])
        assert action != "unknown", name


def test_refusals_name_the_reason_and_the_fix():
    with pytest.raises(ConfigError) as e:
        build_config({"use_kt": True, "accelerator_config": {"split_batches": True},
                      "infer_backend": "vllm",
                      "report_to": "tensorboard,mlflow", "optim": "galore_adamw", "export_legacy_format": True})
    text = str(e.value)
    assert len(e.value.problems) == 6, text
    for needle in ("use_kt=True: KTransformers", "multi-GPU setting is not wired in", "--nproc_per_node N with fsdp",
                   "vLLM/SGLang are not wired in", "mlflow tracker is not built in", "transformers' GaLore optimizers are not wired in",
                   "the legacy .bin format is a pickle"):
        assert needle in text, needle
    assert "unknown key" not in text


def test_refused_names_at_lf_defaults_are_accepted():
    cfg = build_config({"use_badam": False, "deepspeed": None, "freeze_vision_tower": True, "apollo_proj": "random",
                        "ray_num_workers": 1, "export_legacy_format": False, "infer_backend": "huggingface",
                        "local_rank": -1, "reward_model_type": "lora"})
    assert {"use_badam", "freeze_vision_tower", "apollo_proj", "ray_num_workers", "local_rank",
            "reward_model_type"} <= set(cfg.ignored)
    assert cfg.train.deepspeed is None  # implemented (issue #17): None asks for no engine


def test_chat_and_export_share_the_policy(tmp_path):
    """An LF inference yaml (with fine-tuning keys) is accepted by chat; training-loop keys are refused by chat and
    export the way LLaMA-Factory's own chat/export refuse them; LF keys both ignore are ignored by both."""
    yaml = tmp_path / "infer.yaml"
    yaml.write_text("model_name_or_path: m\nadapter_name_or_path: saves/x\ntemplate: qwen\ninfer_backend: huggingface\n"
                    "trust_remote_code: true\nfinetuning_type: lora\nuse_unsloth: false\nvllm_maxlen: 4096\n")
    cfg = parse_args([str(yaml)], command="chat")
    assert cfg.data.template == "qwen" and "finetuning_type" in cfg.ignored and "vllm_maxlen" in cfg.ignored
    for command in ("chat", "export"):
        with pytest.raises(ConfigError) as e:
            build_config({"learning_rate": 1e-4, "deepspeed": "ds.json", "lora_rank": 8, "zzz": 1}, command=command)
        text = str(e.value)
        assert f"learning_rate=0.0001: a training setting; {command} does not take it" in text
        assert "deepspeed='ds.json': a training setting" in text and "unknown key 'zzz'" in text
        assert "lora_rank" not in text  # fine-tuning keys are accepted (and ignored) by inference commands
    cfg = build_config({"export_dir": "out", "export_device": "auto", "export_size": 2}, command="export")
    assert cfg.export.export_device == "auto"
    with pytest.raises(ConfigError):
        build_config({"export_legacy_format": "true"}, command="export")
    with pytest.raises(ConfigError) as e:
        build_config({"infer_backend": "sglang"}, command="chat")
    assert "vLLM/SGLang are not wired in" in str(e.value)


def test_lf_compat_doc_is_current():
    assert (ROOT / "docs" / "lf-compat.md").read_text(encoding="utf-8") == lf_keys.markdown(), \
        "regenerate it: python -m tuneforge.config.lf_keys > docs/lf-compat.md"


def test_lf_value_forms_parse():
    cfg = build_config({"report_to": ["tensorboard", "wandb"], "flash_attn": "disabled",
                        "lr_scheduler_kwargs": {"min_lr_rate": 0.1}, "mix_strategy": "interleave_under",
                        "infer_backend": "hf"})
    assert cfg.train.report_to == "tensorboard,wandb" and cfg.train.lr_scheduler_kwargs == {"min_lr_rate": "0.1"}
    with pytest.raises(ConfigError) as e:
        build_config({"report_to": "tensorboard,nope"})
    assert "'nope' is not one of" in str(e.value)
