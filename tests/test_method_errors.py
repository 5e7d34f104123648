"""Bad method settings are clear errors raised before any weights load."""

import pytest

from tuneforge.config import build_config
from tuneforge.errors import ConfigError
from tuneforge.recipes import run


@pytest.fixture()
def no_weights(monkeypatch):
    """Fail the test if a recipe gets as far as loading weights."""
    import tuneforge.recipes.common as common  # every recipe loads its weights through common.load_model

    def boom(*a, **k):
        raise AssertionError("weights were loaded before the config error was raised")

    monkeypatch.setattr(common, "load_model", boom)


def problems(tiny_model, data_dir, tmp_path, **kw) -> str:
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(tmp_path / "o"))
    with pytest.raises(ConfigError) as e:
        run(build_config({**base, **kw}))
    return str(e.value)


def test_unknown_finetuning_type_lists_choices():
    with pytest.raises(ConfigError, match="prefix, ptuning, ptuning_v2, prompt"):
        build_config({"finetuning_type": "p-tuning"})


@pytest.mark.parametrize("kw, needles", [
    ({"quantization_bit": 3}, ["quantization_bit must be 4 or 8", "got 3"]),
    ({"quantization_bit": 4, "finetuning_type": "full"}, ["cannot update quantized weights", "--finetuning_type lora"]),
    ({"quantization_bit": 8, "finetuning_type": "freeze"}, ["finetuning_type is freeze"]),
    ({"finetuning_type": "prefix", "num_virtual_tokens": 0}, ["num_virtual_tokens (pre_seq_len) must be ≥ 1"]),
    ({"finetuning_type": "ptuning_v2", "pre_seq_len": -4}, ["num_virtual_tokens (pre_seq_len) must be ≥ 1"]),
    ({"finetuning_type": "lora", "num_virtual_tokens": 8}, ["num_virtual_tokens only applies to finetuning_type"]),
    ({"finetuning_type": "ptuning", "prompt_tuning_init_text": "hi"}, ["prompt_tuning_init_text only applies"]),
    ({"finetuning_type": "ptuning_v2", "encoder_hidden_size": 64}, ["prefix_projection True"]),
    ({"finetuning_type": "prompt", "lora_rank": 4}, ["lora_rank only applies to finetuning_type lora"]),
    ({"finetuning_type": "full", "lora_rank": 4, "use_dora": True, "additional_target": "lm_head"},
     ["lora_rank, use_dora only apply to finetuning_type lora", "additional_target only applies to finetuning_type lora / oft"]),
])
def test_bad_method_settings_fail_before_loading(tiny_model, data_dir, tmp_path, no_weights, kw, needles):
    msg = problems(tiny_model, data_dir, tmp_path, **kw)
    for n in needles:
        assert n in msg, (n, msg)


def test_several_problems_are_reported_together(tiny_model, data_dir, tmp_path, no_weights):
    msg = problems(tiny_model, data_dir, tmp_path, quantization_bit=3, finetuning_type="prompt", num_virtual_tokens=0)
    assert "2 configuration problems" in msg


def test_pre_seq_len_is_chatglms_name_for_num_virtual_tokens():
    cfg = build_config({"finetuning_type": "ptuning_v2", "pre_seq_len": 64})
    assert cfg.prompt.num_virtual_tokens == 64
