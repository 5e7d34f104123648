"""End-to-end on the embedded real model (SmolLM2-135M-Instruct): the identity demo with QLoRA (4-bit base) reaches
the LoRA demo's two bars (adapter on the full-precision base, as exported), and chat through a prompt-based adapter decodes exactly as the adapter's training forward
predicts. (The exported LoRA demo is checked in test_e2e_identity.py, which trains that adapter anyway.)"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, needs_embedded

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.e2e, needs_embedded]
needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                               reason="needs bitsandbytes: pip install 'tuneforge[qlora]'")


def tf(*args):
    r = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


@needs_bnb
def test_qlora_4bit_identity_demo_reaches_both_bars(tmp_path, embedded_path):
    """examples/identity_lora.yaml as it is, plus quantization_bit=4: the frozen base is 4-bit NF4 (bitsandbytes'
    CPU kernels here), only the LoRA weights train. The adapter, used as `tuneforge export` merges it (on the
    full-precision base: how chat loads it by default), learns the name and keeps general answers. On the 4-bit base
    itself the name holds too; its general answers are not held to the 90% bar: 4-bit rounding of this 135M model
    alone loses ~22% of them, and even an adapter trained only on the model's own answers keeps just 86% of the
    4-bit model's own correct ones there (docs/benchmarks.md, "QLoRA: where the lost general answers go")."""
    import torch

    from tuneforge.eval.identity import HeldOut, base_replies, evaluate
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.models.quantization import quantization_config

    out = tmp_path / "qlora"
    r = tf("train", str(ROOT / "examples" / "identity_lora.yaml"), f"output_dir={out}", "quantization_bit=4",
           "forgetting_guard=False")  # the test scores general answers itself (the guard: test_e2e_identity)
    assert "quantization=4-bit nf4 + double quantization" in r.stderr
    assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == "LORA"

    heldout = HeldOut.load(DATA)
    base = base_replies(ChatEngine("smollm2-135m-instruct"), heldout)
    report = evaluate(ChatEngine("smollm2-135m-instruct", str(out)), "Nimbus", heldout, base)
    print("full-precision base:", report.line(), json.dumps(report.to_dict(), ensure_ascii=False))
    assert report.base_correct >= 30
    assert report.hit_rate >= 0.9, report.misses
    assert report.retention >= 0.9, report.forgotten
    # Chat on the 4-bit base it was trained on: the name is there as well.
    q4 = quantization_config(4, "nf4", True, torch.float32)
    on_4bit = evaluate(ChatEngine("smollm2-135m-instruct", str(out), quantization=q4), "Nimbus", heldout)
    print("4-bit base:", on_4bit.line())
    assert on_4bit.hit_rate >= 0.9, on_4bit.misses


def test_prompt_method_chat_equals_teacher_forced_argmax(tmp_path, embedded_path):
    """A short P-Tuning run on the embedded model; its chat reply, fed back through the adapter's training forward
    (prompt + reply in one pass, as train/loss.py runs it), is that forward's argmax at every reply position."""
    import torch

    from tuneforge.adapters import logits_offset, mergeable
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine

    out = tmp_path / "ptuning"
    tf("train", "--model_name_or_path", "smollm2-135m-instruct", "--dataset", "identity", "--dataset_vars",
       "name=Nimbus,author=Orchard Labs", "--finetuning_type", "ptuning", "--num_virtual_tokens", "8",
       "--learning_rate", "5e-3", "--max_steps", "4", "--per_device_train_batch_size", "4", "--cutoff_len", "96",
       "--save_steps", "0", "--forgetting_guard", "False", "--output_dir", str(out))
    engine = ChatEngine("smollm2-135m-instruct", str(out))
    assert not mergeable(engine.model)
    for question in ["Who are you?", "What is the capital of France?"]:
        prompt = engine.tokenizer(engine.prompt_text([{"role": "user", "content": question}]), return_tensors="pt",
                                  add_special_tokens=False)["input_ids"]
        reply = engine._generate({"input_ids": prompt, "attention_mask": torch.ones_like(prompt)},
                                 engine.gen_kwargs(GenerateArgs(max_new_tokens=24)))[0, prompt.shape[1]:]
        text = engine.tokenizer.decode(reply, skip_special_tokens=True)
        assert len(reply) >= 4 and any(c.isalpha() for c in text), text
        full = torch.cat([prompt[0], reply])[None]
        with torch.no_grad():  # the training forward: PeftModel.forward with an all-ones mask, no cache
            logits = engine.model(input_ids=full, attention_mask=torch.ones_like(full), use_cache=False).logits
        start = logits_offset(engine.model) + prompt.shape[1] - 1
        forced = logits[0, start: start + len(reply)].argmax(-1)
        assert forced.tolist() == reply.tolist(), (text, engine.tokenizer.decode(forced))
