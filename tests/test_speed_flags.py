"""Speed/memory flags degrade with a logged reason on CPU and fail with a fix when they cannot work."""

import contextlib

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.config.schema import TrainArgs
from tuneforge.data.collate import collate
from tuneforge.data.encode import Sample
from tuneforge.errors import ConfigError, ModelError


def test_8bit_adamw_needs_cuda_and_says_so():
    from tuneforge.train.optim import build_optimizer

    model = torch.nn.Linear(4, 4)
    with pytest.raises(ConfigError) as e:
        build_optimizer(model, TrainArgs(optim="adamw_8bit"), build_config({"finetuning_type": "full"}))
    assert "CUDA" in str(e.value) and "adamw_torch" in str(e.value)


def test_unknown_optim_lists_the_8bit_choices():
    with pytest.raises(ConfigError) as e:
        build_config({"optim": "adamw_9bit"})
    assert "adamw_8bit" in str(e.value) and "paged_adamw_8bit" in str(e.value)


def test_liger_auto_is_off_on_cpu_and_asked_is_an_error(tiny_model):
    from transformers import AutoModelForCausalLM

    from tuneforge.models.kernels import apply_liger

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    assert apply_liger(model, None) is False
    assert apply_liger(model, False) is False
    with pytest.raises(ModelError) as e:
        apply_liger(model, True)
    assert "enable_liger_kernel False" in e.value.hint


def test_offloading_is_a_no_op_without_cuda():
    from tuneforge.train.memory import activation_offload

    ctx = activation_offload(TrainArgs(enable_activation_offloading=True))
    assert ctx is contextlib.nullcontext


def test_collate_rounds_width_up_without_counting_padding():
    b = collate([Sample([1, 2, 3], [1, 2, 3]), Sample([4] * 70, [4] * 70)], pad_id=0, pad_multiple=64)
    assert b["input_ids"].shape == (2, 128) and int(b["attention_mask"].sum()) == 73
