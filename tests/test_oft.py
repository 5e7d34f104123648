"""finetuning_type oft — added through the method registry as one file (adapters/oft.py): it trains, saves a native
peft adapter, chats, merges on export, continues, and takes LLaMA-Factory's oft_* names with their checks."""

import json

import pytest
import torch

from tuneforge.config import build_config, validate
from tuneforge.errors import ConfigError
from tuneforge.recipes import run


def oft_run(tiny_model, data_dir, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=4, learning_rate=2e-2, max_steps=6,
                logging_steps=1, save_steps=0, finetuning_type="oft", seed=5, template="chatml")
    return run(build_config({**base, **kw}))


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    from conftest import make_data_dir

    root = tmp_path_factory.mktemp("oft")
    data = make_data_dir(root / "data")
    out = root / "run"
    res = oft_run(tiny_model, data, out, oft_block_size=16, additional_target="norm")
    return res, out, data


def test_oft_trains_and_saves_a_native_adapter(trained, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    res, out, _ = trained
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "OFT" and cfg["oft_block_size"] == 16 and cfg["r"] == 0
    assert set(cfg["target_modules"]) >= {"q_proj", "down_proj"} and cfg["modules_to_save"] == ["norm"]
    assert res.summary["finetuning_type"] == "oft" and res.summary["trainable_parameters"] > 0
    m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(out))
    assert any("oft_R" in n for n, _ in m.named_parameters())  # plain peft loads it
    # the trained rotation moved the model away from the base
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert not torch.allclose(m.eval()(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-4)


def test_oft_chat_and_export_merge_into_the_same_model(trained, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import load_adapters
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.recipes.export import run as export

    _, out, _ = trained
    engine = ChatEngine(str(tiny_model), str(out))
    assert not hasattr(engine.model, "peft_config")  # merged for decoding, like LoRA
    assert isinstance(engine.generate([[{"role": "user", "content": "Who are you?"}]],
                                      GenerateArgs(max_new_tokens=4))[0], str)
    merged_dir = export(build_config({"model_name_or_path": str(tiny_model), "adapter_name_or_path": str(out),
                                      "export_dir": str(tmp_path / "merged"), "export_dtype": "float32"}))
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    ref = load_adapters(AutoModelForCausalLM.from_pretrained(str(tiny_model)), [str(out)], trainable=False).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, ref(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_oft_continues_its_own_adapter_and_refuses_another_methods(trained, tiny_model, tmp_path):
    from safetensors.torch import load_file

    _, out, data = trained
    res = oft_run(tiny_model, data, tmp_path / "more", adapter_name_or_path=str(out), max_steps=2)
    assert res.summary["completed"]
    before, after = load_file(str(out / "adapter_model.safetensors")), load_file(
        str(tmp_path / "more" / "adapter_model.safetensors"))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ConfigError) as e:  # a LoRA run cannot continue an OFT adapter (nor the reverse)
        run(build_config({"model_name_or_path": str(tiny_model), "dataset": "alpaca_demo",
                          "dataset_dir": str(data), "output_dir": str(tmp_path / "x"),
                          "adapter_name_or_path": str(out)}))
    assert "was trained with oft" in str(e.value) and "--finetuning_type oft" in str(e.value)


def problems(**kw) -> str:
    cfg = build_config({"model_name_or_path": "m", "output_dir": "o", "dataset": "identity",
                        "finetuning_type": "oft", **kw})
    return "\n".join(validate(cfg))


def test_llamafactory_oft_names_and_their_checks():
    from tuneforge.adapters.oft import sizes

    cfg = build_config({"finetuning_type": "oft", "oft_rank": 8})
    assert sizes(cfg, cfg.explicit) == (8, 0)  # a given oft_rank replaces the default block size (LF: one of two)
    cfg = build_config({"finetuning_type": "oft"})
    assert sizes(cfg, cfg.explicit) == (0, 32) and cfg.oft.oft_target == "all" and cfg.oft.module_dropout == 0.0
    assert problems() == ""
    assert "give only one of them" in problems(oft_rank=4, oft_block_size=16)
    assert "both 0" in problems(oft_block_size=0)
    assert "module_dropout must be in [0, 1)" in problems(module_dropout=1.0)
    assert "oft_target is empty" in problems(oft_target=" ")
    assert "lora_rank only applies to finetuning_type lora" in problems(lora_rank=4)
    assert "no quantized (bitsandbytes) layers" in problems(quantization_bit=4)
    assert problems(additional_target="lm_head") == ""  # shared with lora, as in LLaMA-Factory
    assert "oft_rank only applies to finetuning_type oft" in "\n".join(validate(build_config(
        {"model_name_or_path": "m", "output_dir": "o", "dataset": "identity", "oft_rank": 4})))


def test_oft_module_dropout_reaches_peft_and_says_when_peft_ignores_it(tiny_model, caplog):
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import apply_method
    from tuneforge.adapters.oft import peft_applies_module_dropout

    with caplog.at_level("WARNING", logger="tuneforge"):
        model = apply_method(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                             build_config({"finetuning_type": "oft", "module_dropout": 0.5, "oft_block_size": 8}), [])
    drops = [m.oft_dropout["default"] for m in model.modules() if hasattr(m, "oft_dropout")]
    assert drops and all(getattr(d, "p", None) == 0.5 for d in drops)
    # peft 0.18–0.21 build the layer but never call it: the run says so instead of pretending
    assert ("never apply it" in caplog.text) == (not peft_applies_module_dropout())
