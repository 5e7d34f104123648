"""Compare fine-tuning methods on the identity task on the embedded model (SmolLM2-135M-Instruct).

Every method trains on the same data with the same schedule as examples/identity_lora.yaml (identity + general,
2 epochs, batch 8, cosine, cutoff 256, seed 42); only the method flags and the learning rate (chosen for the family)
differ. Each training runs in its own process, one after the other. Per method it reports: trainable parameters,
peak RAM of the training process, wall time of the training command, final loss, identity hit rate on 45 held-out
re-worded questions and retention of the 41 general answers the base model gets right (src/tuneforge/eval/identity.py).

    python benchmarks/methods.py OUT_DIR [--only lora,prefix,...] [--json results.json]

The base model's general answers are computed once per invocation. Results are appended to OUT_DIR/results.jsonl as
each method finishes, so a partial run still leaves its numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
NAME = "Nimbus"
COMMON = ["--model_name_or_path", "smollm2-135m-instruct", "--dataset", "identity,general", "--dataset_vars",
          f"name={NAME},author=Orchard Labs", "--template", "auto", "--cutoff_len", "256", "--num_train_epochs", "2",
          "--per_device_train_batch_size", "8", "--lr_scheduler_type", "cosine", "--logging_steps", "5",
          "--save_steps", "0", "--seed", "42", "--overwrite_output_dir", "True"]
LORA = ["--finetuning_type", "lora", "--lora_target", "all", "--lora_rank", "8", "--learning_rate", "2e-3"]
METHODS: dict[str, list[str]] = {
    "full": ["--finetuning_type", "full", "--learning_rate", "5e-5"],
    "freeze": ["--finetuning_type", "freeze", "--freeze_trainable_layers", "4", "--learning_rate", "2e-4"],
    "lora": LORA,
    "lora+rslora": LORA[:-1] + ["1e-3", "--use_rslora", "True"],
    "dora": LORA + ["--use_dora", "True"],
    "pissa": LORA[:-1] + ["5e-4", "--pissa_init", "True"],
    "qlora-4bit": LORA + ["--quantization_bit", "4"],
    "qlora-8bit": LORA + ["--quantization_bit", "8"],
    "prefix": ["--finetuning_type", "prefix", "--num_virtual_tokens", "16", "--learning_rate", "1e-2"],
    "ptuning": ["--finetuning_type", "ptuning", "--num_virtual_tokens", "16", "--learning_rate", "5e-3"],
    "ptuning_v2": ["--finetuning_type", "ptuning_v2", "--num_virtual_tokens", "16", "--learning_rate", "1e-2"],
    "prompt": ["--finetuning_type", "prompt", "--num_virtual_tokens", "16", "--learning_rate", "3e-2",
               "--prompt_tuning_init_text", "You are a helpful AI assistant."],
}


def peak_rss_mb(pid_status: str) -> float | None:
    for line in pid_status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def train(out: Path, flags: list[str]) -> dict:
    """Run `tuneforge train` in a child process; peak RSS is the child's high-water mark (VmHWM)."""
    cmd = [sys.executable, "-m", "tuneforge", "train", *COMMON, *flags, "--output_dir", str(out)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            peak = max(peak, peak_rss_mb(status.read_text()) or 0.0)
        except OSError:
            pass
        time.sleep(0.5)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({' '.join(cmd)}):\n{stderr[-3000:]}")
    s = json.loads((out / "run_summary.json").read_text())
    return {"wall_s": round(time.time() - t0, 1), "train_loop_s": s["train_seconds"],
            "peak_rss_mb": max(peak, s["peak_memory_mb"]), "final_loss": round(s["final_loss"], 4),
            "trainable_parameters": s["trainable_parameters"], "total_parameters": s["total_parameters"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--only", help="comma list of methods (default: all)")
    ap.add_argument("--json")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from tuneforge.config.schema import GenerateArgs
    from tuneforge.eval.identity import score
    from tuneforge.infer.engine import ChatEngine

    identity = json.loads((DATA / "identity_heldout.json").read_text())
    general = json.loads((DATA / "general_heldout.json").read_text())
    gen = GenerateArgs(max_new_tokens=40)

    def ask(engine, qs):
        return engine.generate([[{"role": "user", "content": q}] for q in qs], gen, batch_size=25)

    base = ask(ChatEngine("smollm2-135m-instruct"), [g["question"] for g in general])
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    rows = []
    for name in names:
        run_dir = out / name
        try:
            r = {"method": name, "flags": " ".join(METHODS[name]), **train(run_dir, METHODS[name])}
        except RuntimeError as e:  # record the failure and go on with the other methods
            print(f"{name}: {e}", file=sys.stderr, flush=True)
            with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"method": name, "error": str(e)[-1500:]}) + "\n")
            continue
        tuned = ChatEngine("smollm2-135m-instruct", str(run_dir))
        rep = score(NAME, [q["question"] for q in identity], ask(tuned, [q["question"] for q in identity]), general,
                    base, ask(tuned, [g["question"] for g in general]))
        r.update(hits=rep.hits, asked=rep.asked, hit_rate=round(rep.hit_rate, 3), kept=rep.kept,
                 base_correct=rep.base_correct, retention=round(rep.retention or 0.0, 3),
                 forgotten=[f["question"] for f in rep.forgotten], machine=machine, date=time.strftime("%Y-%m-%d"))
        rows.append(r)
        with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{name:12s} trainable {r['trainable_parameters']:>11,}  peak {r['peak_rss_mb']:>7} MiB  "
              f"wall {r['wall_s']:>6} s  loss {r['final_loss']:.3f}  hit {rep.hits}/{rep.asked}  "
              f"kept {rep.kept}/{rep.base_correct}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
