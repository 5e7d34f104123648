"""Compare fine-tuning methods on the identity task on the embedded model (SmolLM2-135M-Instruct).

Every method trains on the data and schedule of examples/identity_lora.yaml, read when the script starts: every key
of the recipe that is not about the method (dataset, dataset_vars, template, cutoff_len, epochs, batch,
group_by_length, scheduler, seed, ...). The `lora` row is the demo recipe itself (its LoRA target, rank, dropout,
layers and learning rate); the LoRA variants change only what the variant needs; the other families use settings
usual for them (`method_table`). Each training runs in its own process. Per method it reports: trainable parameters,
peak RAM (the training process's high-water RSS), wall time of the training command and of its loop, final loss,
identity hit rate on 45 held-out re-worded questions and retention of the general answers the base model gets right
(tuneforge.eval.identity).

    python benchmarks/methods.py OUT_DIR [--only lora,prefix,...] [--num_train_epochs N] [--json results.json]
                                         [--extra "--learning_rate 3e-2"]   # a stronger/other setting for one row

The base model's general answers are computed once and cached in OUT_DIR/base_replies.json. Results are appended to
OUT_DIR/results.jsonl as each method finishes, so a partial run still leaves its numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
RECIPE = ROOT / "examples" / "identity_lora.yaml"
# Keys that belong to the method, not to the shared recipe: each method brings its own (LoRA family: the yaml's).
METHOD_KEYS = {"stage", "finetuning_type", "learning_rate", "output_dir", "overwrite_output_dir", "plot_loss",
               "logging_steps", "save_steps", "quantization_bit", "quantization_method", "quantization_type",
               "double_quantization", "num_virtual_tokens", "pre_seq_len", "prefix_projection", "encoder_hidden_size",
               "prompt_tuning_init_text", "freeze_trainable_layers", "freeze_trainable_modules",
               "freeze_extra_modules", "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "lora_layers",
               "additional_target", "use_rslora", "use_dora", "loraplus_lr_ratio", "pissa_init", "pissa_iter"}
LORA_KEYS = ("lora_target", "lora_rank", "lora_alpha", "lora_dropout", "lora_layers", "learning_rate")


def _flags(y: dict, keys) -> list[str]:
    out = []
    for k in keys:
        if k not in y or y[k] is None:
            continue
        v = y[k]
        if isinstance(v, dict):  # dataset_vars
            v = ",".join(f"{a}={b}" for a, b in v.items())
        out += [f"--{k}", str(v)]
    return out


def recipe_flags(epochs: float | None, recipe: Path = RECIPE) -> tuple[list[str], list[str], str, str]:
    """(shared `tuneforge train` flags, the recipe's own LoRA flags, base model, the new name) from the demo recipe.

    Shared: every key of the recipe that is not about the method (data, template, cutoff, epochs, batch,
    group_by_length, scheduler, seed, ...), so the comparison follows the demo when the demo changes. The LoRA
    flags (target, rank, alpha, dropout, layers, learning rate) are the demo's; `lora` below is the demo itself."""
    from tuneforge.config.parse import load_yaml

    y = load_yaml(recipe)
    if epochs is not None:
        y["num_train_epochs"] = epochs
    if y.get("finetuning_type", "lora") != "lora":
        raise SystemExit(f"{recipe}: expected a LoRA recipe (finetuning_type lora), got {y['finetuning_type']}")
    common = _flags(y, [k for k in y if k not in METHOD_KEYS])
    common += ["--logging_steps", "5", "--save_steps", "0", "--overwrite_output_dir", "True"]
    lora = ["--finetuning_type", "lora", *_flags(y, LORA_KEYS)]
    return common, lora, str(y["model_name_or_path"]), str((y.get("dataset_vars") or {}).get("name", "Forge"))


def _with(flags: list[str], key: str, value: str) -> list[str]:
    """``flags`` with ``--key`` set to ``value`` (replaced where present, appended otherwise)."""
    out = list(flags)
    if f"--{key}" in out:
        out[out.index(f"--{key}") + 1] = value
    else:
        out += [f"--{key}", value]
    return out


def method_table(lora: list[str]) -> dict[str, list[str]]:
    """Every method's flags. LoRA variants start from the demo's LoRA flags (``lora``) and change only what the
    variant needs; the other families use settings usual for them (learning rate chosen per family)."""
    lr = float(lora[lora.index("--learning_rate") + 1]) if "--learning_rate" in lora else 2e-4
    rank = int(lora[lora.index("--lora_rank") + 1]) if "--lora_rank" in lora else 8
    return {
        "full": ["--finetuning_type", "full", "--learning_rate", "5e-5"],
        "freeze": ["--finetuning_type", "freeze", "--freeze_trainable_layers", "4", "--learning_rate", "2e-4"],
        "lora": lora,
        # rsLoRA scales the update by alpha/sqrt(r) instead of alpha/r, i.e. sqrt(r) times more at this rank:
        # the learning rate is divided by sqrt(r) so the first steps move the model as much as LoRA's.
        "lora+rslora": _with(lora, "learning_rate", f"{lr / math.sqrt(rank):.2g}") + ["--use_rslora", "True"],
        "dora": lora + ["--use_dora", "True"],
        # PiSSA starts A and B at the principal components (large) instead of B = 0, so the same Adam step changes
        # the weights far more than LoRA's: a lower learning rate.
        "pissa": _with(lora, "learning_rate", "5e-4") + ["--pissa_init", "True"],
        "qlora-4bit": lora + ["--quantization_bit", "4"],
        "qlora-8bit": lora + ["--quantization_bit", "8"],
        "prefix": ["--finetuning_type", "prefix", "--num_virtual_tokens", "16", "--learning_rate", "1e-2"],
        "ptuning": ["--finetuning_type", "ptuning", "--num_virtual_tokens", "16", "--learning_rate", "5e-3"],
        "ptuning_v2": ["--finetuning_type", "ptuning_v2", "--num_virtual_tokens", "16", "--learning_rate", "1e-2"],
        "prompt": ["--finetuning_type", "prompt", "--num_virtual_tokens", "16", "--learning_rate", "3e-2",
                   "--prompt_tuning_init_text", "You are a helpful AI assistant."],
    }


METHOD_NAMES = ("full", "freeze", "lora", "lora+rslora", "dora", "pissa", "qlora-4bit", "qlora-8bit", "prefix",
                "ptuning", "ptuning_v2", "prompt")


def peak_rss_mb(pid_status: str) -> float | None:
    for line in pid_status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def train(out: Path, common: list[str], flags: list[str]) -> dict:
    """Run `tuneforge train` in a child process; peak RSS is the child's high-water mark (VmHWM)."""
    cmd = [sys.executable, "-m", "tuneforge", "train", *common, *flags, "--output_dir", str(out)]
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
            "trainable_parameters": s["trainable_parameters"], "total_parameters": s["total_parameters"],
            "steps": s["steps"], "tokens_per_s": s["tokens_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--only", help="comma list of methods (default: all)")
    ap.add_argument("--num_train_epochs", type=float, help="override the recipe's epochs (same for every method)")
    ap.add_argument("--json", help="also write this invocation's rows to this file")
    ap.add_argument("--extra", default="", help="flags added after the method's own (they win), e.g. "
                                                 "\"--learning_rate 3e-2\"; the row is named METHOD[EXTRA]")
    a = ap.parse_args()
    common, lora, model, name = recipe_flags(a.num_train_epochs)
    methods = method_table(lora)
    names = a.only.split(",") if a.only else list(METHOD_NAMES)
    unknown = [n for n in names if n not in methods]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; choose from {', '.join(METHOD_NAMES)}")
    extra = a.extra.split()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from tuneforge.eval.identity import HeldOut, base_replies, engine_for, evaluate
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.models.quantization import quantization_config

    heldout = HeldOut.load(DATA)
    cache = out / "base_replies.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    if cached.get("model") != model or len(cached.get("replies", [])) != len(heldout.general):
        cached = {"model": model, "replies": base_replies(ChatEngine(model), heldout)}
        cache.write_text(json.dumps(cached, ensure_ascii=False, indent=1))
    base = cached["replies"]
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    rows = []
    for method in names:
        flags = methods[method] + extra
        if extra:
            method = f"{method}[{' '.join(extra)}]"
        run_dir = out / method.replace(" ", "_").replace("[", "_").replace("]", "")
        try:
            r = {"method": method, "flags": " ".join(flags), **train(run_dir, common, flags)}
        except RuntimeError as e:  # record the failure and go on with the other methods
            print(f"{method}: {e}", file=sys.stderr, flush=True)
            with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"method": method, "error": str(e)[-1500:]}) + "\n")
            continue
        t0 = time.time()
        if "--quantization_bit" in flags:  # chat on the quantized base the adapter was trained on
            bits = int(flags[flags.index("--quantization_bit") + 1])
            tuned = ChatEngine(model, str(run_dir), quantization=quantization_config(bits, "nf4", True, torch.float32))
        else:
            tuned = engine_for(run_dir, model)
        rep = evaluate(tuned, name, heldout, base)
        r.update(eval_s=round(time.time() - t0, 1), hits=rep.hits, asked=rep.asked, hit_rate=round(rep.hit_rate, 3),
                 kept=rep.kept, base_correct=rep.base_correct, retention=round(rep.retention or 0.0, 3),
                 misses=[m["reply"] for m in rep.misses][:10], forgotten=rep.forgotten[:10],
                 recipe=" ".join(common), machine=machine, date=time.strftime("%Y-%m-%d %H:%M"))
        rows.append(r)
        with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{method:12s} trainable {r['trainable_parameters']:>11,}  peak {r['peak_rss_mb']:>7} MiB  "
              f"wall {r['wall_s']:>6} s  loss {r['final_loss']:.3f}  {rep.line()}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
