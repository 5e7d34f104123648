"""Time the identity demo (load, train, answer) with tuneforge and with plain transformers.Trainer + peft.

Both runs use the same tokenized data (tuneforge's encoder, so the supervised tokens are identical), the same model,
LoRA settings, batch size, epochs, learning rate and schedule, on the same machine, one after the other.

    python benchmarks/identity_demo.py [--config examples/identity_lora.yaml] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_tuneforge(config: str, out: Path) -> dict:
    """The README's demo command: one `tuneforge train` process that trains and, through the yaml's
    `sample_prompts`, answers "Who are you?" with the tuned model in memory. `tuneforge chat` on the saved adapter
    is timed afterwards for reference (a second process: imports, load, merge), outside the total."""
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "tuneforge", "train", config, f"output_dir={out}"], check=True,
                   capture_output=True, text=True)
    total = time.time() - t0
    summary = json.loads((out / "run_summary.json").read_text())
    t1 = time.time()
    r = subprocess.run([sys.executable, "-m", "tuneforge", "chat", "--model_name_or_path", "smollm2-135m-instruct",
                        "--adapter_name_or_path", str(out), "--prompt", "Who are you?", "--max_new_tokens", "40"],
                       check=True, capture_output=True, text=True)
    return {"total_s": round(total, 1), "train_loop_s": summary["train_seconds"],
            "tokens_per_s": summary["tokens_per_s"], "final_loss": summary["final_loss"],
            "answer": summary["sample_replies"][0]["response"],
            "chat_cmd_s": round(time.time() - t1, 1), "chat_cmd_answer": r.stdout.strip()}


BASELINE = r'''
import json, sys, time
t0 = time.time()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments
from peft import LoraConfig, get_peft_model
from tuneforge.config import parse_args
from tuneforge.data import templates
from tuneforge.data.build import build_data
from tuneforge.models import resolve_model_path
cfg = parse_args([sys.argv[1]])
path = str(resolve_model_path(cfg.model.model_name_or_path))
tok = AutoTokenizer.from_pretrained(path)
fmt = templates.install(tok, cfg.data.template)
data = build_data(cfg.data, "sft", tok, fmt, cfg.train.seed)
rows = [{"input_ids": s.input_ids, "attention_mask": [1] * len(s.input_ids), "labels": s.labels} for s in data.train]
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
ft = cfg.lora
from tuneforge.adapters.lora import linear_module_names
# peft's "all-linear" cannot be combined with layers_to_transform: name the linear layers instead (same set).
targets = linear_module_names(model) if ft.lora_target == "all" else ft.lora_target.split(",")
from tuneforge.config.validate import parse_layer_spec
layers = parse_layer_spec(ft.lora_layers, model.config.num_hidden_layers) if ft.lora_layers else None
model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=ft.lora_rank, lora_alpha=ft.lora_alpha or 2 * ft.lora_rank,
                                         lora_dropout=ft.lora_dropout, target_modules=targets,
                                         layers_to_transform=layers))
t = cfg.train
args = TrainingArguments(output_dir=sys.argv[2], per_device_train_batch_size=t.per_device_train_batch_size,
                         gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
                         num_train_epochs=t.num_train_epochs, lr_scheduler_type=t.lr_scheduler_type,
                         logging_steps=t.logging_steps, save_strategy="no", report_to=[], seed=t.seed,
                         use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
                         **({"train_sampling_strategy": "group_by_length"} if t.group_by_length else {}))
trainer = Trainer(model=model, args=args, train_dataset=rows,
                  data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
t1 = time.time()
res = trainer.train()
t_loop = time.time() - t1
model = model.merge_and_unload().eval()
ids = tok.apply_chat_template([{"role": "user", "content": "Who are you?"}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=40, do_sample=False)
answer = tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
tokens = sum(len(r["input_ids"]) for r in rows) * t.num_train_epochs
print(json.dumps({"total_s": round(time.time() - t0, 1), "train_loop_s": round(t_loop, 2),
                  "tokens_per_s": round(tokens / t_loop, 2), "final_loss": res.training_loss, "answer": answer.strip()}))
'''


def run_baseline(config: str, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", BASELINE, config, str(out)], check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "examples" / "identity_lora.yaml"))
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        ours = run_tuneforge(a.config, Path(tmp) / "tuneforge")
        base = run_baseline(a.config, Path(tmp) / "baseline")
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}", "config": a.config,
              "tuneforge": ours, "transformers_trainer_peft": base}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
