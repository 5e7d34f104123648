"""QLoRA: LoRA (and prompt tuning) on a bitsandbytes 4/8-bit quantized frozen base, on this CPU (bitsandbytes ≥ 0.46
has CPU kernels) or CUDA."""

import importlib.util
import json

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.recipes import run

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                                reason="bitsandbytes not installed: pip install 'tuneforge[qlora]'")


def cfg_for(model, data_dir, out, **kw):
    base = dict(model_name_or_path=str(model), dataset="alpaca_demo", dataset_dir=str(data_dir), output_dir=str(out),
                per_device_train_batch_size=2, learning_rate=1e-2, num_train_epochs=4, logging_steps=1, save_steps=0,
                lora_target="all", seed=7)
    base.update(kw)
    return build_config(base)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """bitsandbytes quantizes in blocks of 64 and leaves tiny layers badly rounded; width 64 keeps the test honest."""
    from conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-64"), width=64)


@pytest.mark.parametrize("bits, extra", [(4, {}), (4, {"quantization_type": "fp4", "double_quantization": False}),
                                         (8, {}), (4, {"use_dora": True})])
def test_qlora_trains_on_a_quantized_base(wide_model, data_dir, tmp_path, bits, extra):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "q"
    res = run(cfg_for(wide_model, data_dir, out, quantization_bit=bits, **extra))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.25, (first, last)
    assert res.summary["trainable_parameters"] < res.summary["total_parameters"] / 4
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"
    # The adapter is a plain peft adapter: it loads on the unquantized base.
    m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(wide_model)), str(out))
    assert sum(p.numel() for n, p in m.named_parameters() if "lora_" in n) > 0


def test_quantized_layers_are_really_used(wide_model):
    import bitsandbytes as bnb

    from tuneforge.models import load_model
    from tuneforge.models.quantization import quantization_config

    m = load_model(wide_model, torch.float32, quantization=quantization_config(4, "nf4", True, torch.float32))
    assert isinstance(m.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert m.model.layers[0].self_attn.q_proj.weight.dtype == torch.uint8


def test_prompt_tuning_on_a_quantized_base(wide_model, data_dir, tmp_path):
    res = run(build_config(dict(model_name_or_path=str(wide_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                                output_dir=str(tmp_path / "p"), quantization_bit=4, finetuning_type="prompt",
                                num_virtual_tokens=4, max_steps=2, save_steps=0)))
    assert res.summary["completed"] and res.summary["steps"] == 2


def test_chat_and_export_with_a_qlora_adapter(wide_model, data_dir, tmp_path):
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.models.quantization import quantization_config
    from tuneforge.recipes.export import run as export

    out = tmp_path / "q"
    run(cfg_for(wide_model, data_dir, out, quantization_bit=4, max_steps=2))
    engine = ChatEngine(str(wide_model), str(out), quantization=quantization_config(4, "nf4", True, torch.float32))
    assert isinstance(engine.ask("Who are you?", GenerateArgs(max_new_tokens=3)), str)
    dest = export(build_config(dict(model_name_or_path=str(wide_model), adapter_name_or_path=str(out),
                                    quantization_bit=4, export_dir=str(tmp_path / "e"), export_dtype="float32")))
    assert (dest / "config.json").is_file() and "quantization_config" not in (dest / "config.json").read_text()
