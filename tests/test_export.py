"""`tuneforge export`: merged LoRA adapters give the same logits as base + adapters, plain transformers loads the
folder, and prompt-based adapters are refused with the reason."""

import json
import subprocess
import sys

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.recipes import run


def train(tiny_model, data_dir, out, **kw):
    cfg = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
               output_dir=str(out), per_device_train_batch_size=4, learning_rate=2e-2, max_steps=3, save_steps=0,
               lora_target="all", seed=3)
    cfg.update(kw)
    run(build_config(cfg))
    return out


@pytest.fixture()
def two_adapters(tiny_model, data_dir, tmp_path):
    a = train(tiny_model, data_dir, tmp_path / "a", template="chatml")
    b = train(tiny_model, data_dir, tmp_path / "b", lora_rank=4, use_dora=True, template="chatml")
    return a, b


def export(*args):
    return subprocess.run([sys.executable, "-m", "tuneforge", "export", *args], capture_output=True, text=True,
                          timeout=600)


def test_merged_export_matches_base_plus_adapters_and_loads_in_plain_transformers(tiny_model, two_adapters, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.adapters import load_adapters

    a, b = two_adapters
    out = tmp_path / "merged"
    r = export("--model_name_or_path", str(tiny_model), "--adapter_name_or_path", f"{a},{b}", "--export_dir",
               str(out), "--export_size", "0.00005", "--export_dtype", "float32")
    assert r.returncode == 0, r.stderr
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (out / "model.safetensors.index.json").is_file()  # sharded at 50 kB
    for f in ("config.json", "generation_config.json", "tokenizer_config.json", "chat_template.jinja", "Modelfile"):
        assert (out / f).is_file(), f

    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()  # plain transformers, no peft
    ref = load_adapters(AutoModelForCausalLM.from_pretrained(str(tiny_model)), [str(a), str(b)], trainable=False)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    prompts = ["Who are you?", "What is the capital of France?", "你好"]
    with torch.no_grad():
        for p in prompts:
            ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)["input_ids"]
            got, want = merged(input_ids=ids).logits, ref.eval()(input_ids=ids).logits
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            assert (got - base(input_ids=ids).logits).abs().max() > 1e-3  # the adapters did change the model
    gen = json.loads((out / "generation_config.json").read_text())
    assert tok.convert_tokens_to_ids("<|im_end|>") in (gen["eos_token_id"] if isinstance(gen["eos_token_id"], list)
                                                       else [gen["eos_token_id"]])
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.count("FROM .") == 1 and 'PARAMETER stop "<|im_end|>"' in modelfile and "<|im_start|>" in modelfile


def test_export_dtype_bfloat16(tiny_model, two_adapters, tmp_path):
    from transformers import AutoConfig

    out = tmp_path / "bf16"
    r = export("--model_name_or_path", str(tiny_model), "--adapter_name_or_path", str(two_adapters[0]),
               "--export_dir", str(out))
    assert r.returncode == 0, r.stderr
    assert str(AutoConfig.from_pretrained(str(out)).dtype).endswith("bfloat16")


def test_prompt_adapter_export_is_refused_with_reason(tiny_model, data_dir, tmp_path):
    p = tmp_path / "p"
    run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                          output_dir=str(p), finetuning_type="prefix", num_virtual_tokens=2, max_steps=1,
                          save_steps=0)))
    r = export("--model_name_or_path", str(tiny_model), "--adapter_name_or_path", str(p), "--export_dir",
               str(tmp_path / "x"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for needle in ("prompt-based (PREFIX_TUNING)", "nothing to merge", "tuneforge chat", "--finetuning_type lora"):
        assert needle in r.stderr, needle
    assert not (tmp_path / "x").exists()


def test_export_needs_export_dir(tiny_model):
    r = export("--model_name_or_path", str(tiny_model), "--learning_rate", "1")
    assert r.returncode == 2 and "learning_rate='1': a training setting; export does not take it" in r.stderr
    r = export("--model_name_or_path", str(tiny_model))
    assert r.returncode == 2 and "export_dir is required" in r.stderr
