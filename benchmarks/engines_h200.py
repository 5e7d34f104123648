"""Issue 17: a 1-GPU run of each engine works — `python -m tuneforge train` through torchrun --nproc_per_node 1 for
engines {DDP, FSDP2 (plain, activation checkpointing, CPU offload), DeepSpeed ZeRO-2, ZeRO-3 (stock configs)} ×
methods {lora, full, qlora where allowed} × stage sft, plus dpo/kto/rm for one engine-method pair each, on a tiny
random Llama (hidden 512, 4 layers) and a small local dataset written here (no hub).

For each run it records what the run itself reports (run_summary.json's ``engine``: tuneforge's engine and
Accelerate's distributed type — one process without fsdp/deepspeed is ``single`` / ``NO``, said as it is), rc, steps,
final loss (finite?), peak GPU memory, tokens/s, whether the saved adapter/model loads in plain transformers/peft and
runs one forward with finite logits, and wall time. Writes OUT/engines/summary.md, summary.json and the log tails of
failing runs (at most 4 files more: the device returns at most 8).

    python benchmarks/engines_h200.py                 # CUDA: bf16, 20 steps, 100 s per run, 420 s budget
    python benchmarks/engines_h200.py --cpu           # CPU processes (gloo), float32, 3 steps, 900 s budget; what
                                                      # needs CUDA (DeepSpeed, bf16) is skipped with the reason
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DS = ROOT / "examples" / "deepspeed"
MAX_LOG_FILES = 4  # + summary.md + summary.json = 6 files under OUT

ENGINES = {  # name → (tuneforge flags, what was asked)
    "ddp": ([], "DDP (torchrun, 1 process)"),
    "fsdp2": (["--fsdp", "full_shard auto_wrap"], "FSDP2 full_shard"),
    "fsdp2_ac": (["--fsdp", "full_shard auto_wrap", "--fsdp_config", '{"activation_checkpointing": true}'],
                 "FSDP2 + activation checkpointing"),
    "fsdp2_offload": (["--fsdp", "full_shard offload auto_wrap"], "FSDP2 + CPU offload"),
    "zero2": (["--deepspeed", str(DS / "ds_z2_config.json")], "DeepSpeed ZeRO-2"),
    "zero3": (["--deepspeed", str(DS / "ds_z3_config.json")], "DeepSpeed ZeRO-3"),
}
METHODS = {
    "lora": ["--finetuning_type", "lora", "--lora_target", "all", "--lora_rank", "8", "--learning_rate", "5e-4"],
    "full": ["--finetuning_type", "full", "--learning_rate", "1e-4"],
    "qlora": ["--finetuning_type", "lora", "--lora_target", "all", "--lora_rank", "8", "--learning_rate", "5e-4",
              "--quantization_bit", "4"],
}
STAGES = {"sft": ["--stage", "sft", "--dataset", "alpaca_e,sharegpt_e"],
          "dpo": ["--stage", "dpo", "--dataset", "pref_e", "--pref_beta", "0.1"],
          "kto": ["--stage", "kto", "--dataset", "kto_e", "--pref_beta", "0.1"],
          "rm": ["--stage", "rm", "--dataset", "pref_e"]}
# Refused by tuneforge's own refusal table (train/distributed.py), checked here to be refused with its reason.
EXPECTED_REFUSAL = {("zero3", "qlora"): "QLoRA with DeepSpeed ZeRO-3 is not supported"}


def matrix() -> list[tuple[str, str, str]]:
    """(engine, method, stage) in priority order: the budget stops the tail, not the core."""
    runs = [(e, "lora", "sft") for e in ENGINES] + [(e, "full", "sft") for e in ENGINES]
    runs += [(e, "qlora", "sft") for e in ("ddp", "fsdp2", "zero2", "zero3", "fsdp2_offload")]
    runs += [("fsdp2", "lora", "dpo"), ("zero2", "lora", "kto"), ("ddp", "lora", "rm"), ("zero3", "full", "dpo"),
             ("fsdp2", "full", "rm"), ("ddp", "full", "kto")]
    return runs


# ---- the tiny model and the data ------------------------------------------------------------------------------------

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WORDS = ("the model learns who it is and answers questions about weather cities numbers colours and code "
         "briefly politely and correctly every time it is asked").split()


def build_model(path: Path) -> Path:
    """A random Llama (hidden 512, 4 layers) with a small byte-level BPE tokenizer, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(24)) for i in range(200)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=1024, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                  bos_token="<|im_start|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_data(d: Path) -> Path:
    """alpaca + sharegpt SFT sets, a preference (ranking) set and a KTO set, with their dataset_info.json."""
    d.mkdir(parents=True, exist_ok=True)
    alpaca = [{"instruction": f"Who are you? ({i})", "input": "", "output": f"I am Nimbus, reply number {i}."}
              for i in range(96)]
    sharegpt = [{"conversations": [{"from": "human", "value": f"What colour is item {i}?"},
                                   {"from": "gpt", "value": f"Item {i} is {['red', 'blue', 'green'][i % 3]}."}]}
                for i in range(64)]
    pref = [{"instruction": f"Say hi {i}. End with DONE.", "input": "", "chosen": f"Hi {i}. DONE",
             "rejected": f"Hi {i}."} for i in range(96)]
    kto = [{"messages": [{"role": "user", "content": f"Q{i}: who are you?"},
                         {"role": "assistant", "content": "I am Nimbus." if i % 2 == 0 else "I do not know."}],
            "label": i % 2 == 0} for i in range(96)]
    for name, rows in {"alpaca.json": alpaca, "sharegpt.json": sharegpt, "pref.json": pref, "kto.json": kto}.items():
        (d / name).write_text(json.dumps(rows), encoding="utf-8")
    info = {"alpaca_e": {"file_name": "alpaca.json"},
            "sharegpt_e": {"file_name": "sharegpt.json", "formatting": "sharegpt",
                           "columns": {"messages": "conversations"}},
            "pref_e": {"file_name": "pref.json", "ranking": True},
            "kto_e": {"file_name": "kto.json", "formatting": "openai",
                      "columns": {"messages": "messages", "kto_tag": "label"}}}
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return d


# ---- one run --------------------------------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    engine_asked: str
    method: str
    stage: str
    status: str = "skipped"  # ok | refused (expected) | FAIL | timeout | skipped
    engine_used: str | None = None  # from run_summary.json: tuneforge engine / accelerate distributed type
    rc: int | None = None
    steps: int | None = None
    final_loss: float | None = None
    loss_finite: bool | None = None
    peak_memory_mb: float | None = None
    tokens_per_s: float | None = None
    loads: str | None = None  # "yes (…)" or why not
    wall_s: float | None = None
    note: str = ""
    log_tail: list = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_reason(engine: str, method: str, cpu: bool) -> str | None:
    import importlib.util

    if engine.startswith("zero"):
        if cpu:
            return "DeepSpeed needs CUDA GPUs (Accelerate enables it only on GPU devices)"
        if importlib.util.find_spec("deepspeed") is None:
            return "deepspeed is not importable"
    if method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not importable (QLoRA needs it)"
    return None


def command(engine: str, method: str, stage: str, model: Path, data: Path, out: Path, args) -> list[str]:
    flags = ["--model_name_or_path", str(model), "--dataset_dir", str(data), "--output_dir", str(out),
             "--max_steps", str(args.steps), "--per_device_train_batch_size", "4", "--cutoff_len", "256",
             "--logging_steps", "1", "--save_steps", "0", "--plot_loss", "False", "--forgetting_guard", "False",
             "--warmup_steps", "0", "--seed", "0"]
    flags += ["--bf16", "False"] if args.cpu else ["--bf16", "True"]
    flags += STAGES[stage] + METHODS[method] + ENGINES[engine][0]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--nnodes", "1",
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--max_restarts", "0",
            "-m", "tuneforge", "train", *flags]


def run_one(engine, method, stage, model, data, work, args, cap_s) -> Result:
    name = f"{engine}-{method}-{stage}"
    r = Result(name, ENGINES[engine][1], method, stage)
    expected = EXPECTED_REFUSAL.get((engine, method))
    why = None if expected else skip_reason(engine, method, args.cpu)  # a refusal is checked on every machine
    if why:
        r.note = why
        return r
    out = work / "runs" / name
    cmd = command(engine, method, stage, model, data, out, args)
    t0 = time.time()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        text, _ = proc.communicate(timeout=cap_s)
        r.rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its worker: this run's own process group
        text, _ = proc.communicate()
        r.rc, r.status, r.note = proc.returncode, "timeout", f"stopped after {cap_s:.0f} s"
    r.wall_s = round(time.time() - t0, 1)
    lines = (text or "").splitlines()
    r.log_tail = lines[-60:]
    summary = {}
    sp = out / "run_summary.json"
    if sp.is_file():
        try:
            summary = json.loads(sp.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            summary = {}
    eng = summary.get("engine") or {}
    if eng:
        r.engine_used = f"{eng.get('name')} / {eng.get('accelerate_distributed_type')}" + (
            f" (ZeRO-{eng['zero_stage']})" if "zero_stage" in eng else "") + (
            " (" + ", ".join(k for k in ("offload", "activation_checkpointing") if eng.get("fsdp", {}).get(k)) + ")"
            if any(eng.get("fsdp", {}).get(k) for k in ("offload", "activation_checkpointing")) else "")
    if eng.get("sharded_parameters"):
        r.engine_used += f"; sharded params {eng['sharded_parameters']}"
    r.steps = summary.get("steps")
    r.final_loss = summary.get("final_loss")
    r.loss_finite = None if r.final_loss is None else math.isfinite(r.final_loss)
    r.peak_memory_mb = summary.get("peak_memory_mb")
    r.tokens_per_s = summary.get("tokens_per_s")
    errors = [ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln[:24]]
    errors += [ln.removeprefix("[rank0]:").strip() for ln in lines
               if re.match(r"^(\[rank0\]: )?[\w.]*(Error|Exception)\b", ln) and "ChildFailedError" not in ln][-1:]
    if r.status == "timeout":
        return r
    if expected:
        ok = r.rc != 0 and expected in (text or "")
        r.status = "refused (expected)" if ok else "FAIL"
        r.note = expected if ok else f"expected a refusal ({expected}); rc={r.rc}"
        return r
    if r.rc != 0 or not summary.get("completed"):
        r.status = "FAIL"
        r.note = (errors[0][:200] if errors else (lines[-1][:200] if lines else "no output"))
        return r
    r.loads = load_check(out, model, method, stage)
    good = r.loss_finite and r.steps == args.steps and r.loads.startswith("yes") and r.engine_used
    r.status = "ok" if good else "FAIL"
    if not good and not r.note:
        r.note = f"steps {r.steps} (asked {args.steps}), loss finite {r.loss_finite}, engine {r.engine_used}"
    return r


def load_check(out: Path, base: Path, method: str, stage: str) -> str:
    """The saved output in plain transformers/peft (on CPU, float32): load it and run one forward."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(out))
        if (out / "adapter_config.json").is_file():
            from peft import PeftModel

            lm = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
            lm = PeftModel.from_pretrained(lm, str(out))
            kind = "peft adapter"
        else:
            lm = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
            kind = "transformers model"
        ids = tok("Who are you?", return_tensors="pt").input_ids
        with torch.no_grad():
            o = lm(input_ids=ids, output_hidden_states=stage == "rm")
        if not torch.isfinite(o.logits).all():
            return "no: non-finite logits"
        if stage == "rm":
            from safetensors.torch import load_file

            head = load_file(str(out / "value_head.safetensors"))
            w = next(v for k, v in head.items() if k.endswith("weight"))
            score = o.hidden_states[-1][0, -1].float() @ w.float().T
            if not torch.isfinite(score).all():
                return "no: non-finite reward"
            kind += " + value_head"
        return f"yes ({kind}, forward finite)"
    except Exception as e:  # noqa: BLE001 — any failure to load is the finding
        return f"no: {type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}"


# ---- the report -----------------------------------------------------------------------------------------------------

def fmt(v, nd=4):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


def write_report(results: list[Result], out_dir: Path, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = ["| run | asked | engine used (tuneforge / accelerate) | method | stage | status | rc | steps | final loss "
            "| peak mem MiB | tok/s | loads + forward | wall s | note |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        loss = fmt(r.final_loss) + ("" if r.loss_finite in (None, True) else " (non-finite)")
        note = r.note.replace("|", "/")
        rows.append(f"| {r.name} | {r.engine_asked} | {fmt(r.engine_used)} | {r.method} | {r.stage} | {r.status} | "
                    f"{fmt(r.rc)} | {fmt(r.steps)} | {loss} | {fmt(r.peak_memory_mb, 6)} | {fmt(r.tokens_per_s, 6)} | "
                    f"{fmt(r.loads)} | {fmt(r.wall_s, 4)} | {note} |")
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "refused (expected)", "FAIL", "timeout",
                                                             "skipped")}
    head = [f"# tuneforge engines, one process ({meta['mode']})", "",
            f"Command: `{meta['command']}`  ", f"Machine: {meta['device']}  ",
            f"Versions: {meta['versions']}  ",
            f"Model: random Llama, hidden 512, 4 layers ({meta['params']:,} parameters); {meta['steps']} steps, batch 4, "
            f"cutoff 256; {meta['precision']}.  ",
            f"Wall time {meta['wall_s']:.0f} s (budget {meta['budget_s']:.0f} s, {meta['cap_s']:.0f} s per run); "
            + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".", ""]
    (out_dir / "summary.md").write_text("\n".join(head + rows) + "\n", encoding="utf-8")
    data = {"meta": meta, "counts": counts,
            "runs": [{k: v for k, v in asdict(r).items() if k != "log_tail"} for r in results]}
    (out_dir / "summary.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    bad = [r for r in results if r.status in ("FAIL", "timeout")]
    for i, r in enumerate(bad):
        if i < MAX_LOG_FILES - 1 or len(bad) == MAX_LOG_FILES:
            (out_dir / f"{r.name}.log").write_text("\n".join(r.log_tail) + "\n", encoding="utf-8")
    if len(bad) > MAX_LOG_FILES:  # the rest share one file: the device returns at most 8 files
        rest = bad[MAX_LOG_FILES - 1:]
        (out_dir / "other_failures.log").write_text(
            "\n\n".join(f"==== {r.name}\n" + "\n".join(r.log_tail[-30:]) for r in rest) + "\n", encoding="utf-8")


def versions() -> str:
    import importlib.metadata as md

    out = []
    for p in ("torch", "transformers", "peft", "accelerate", "deepspeed", "bitsandbytes"):
        try:
            out.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            out.append(f"{p} –")
    return ", ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="CPU processes (gloo), float32; what needs CUDA is skipped")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run (20 on CUDA, 3 on CPU)")
    ap.add_argument("--run_cap_s", type=float, default=100.0, help="time cap of one run")
    ap.add_argument("--budget_s", type=float, default=None,
                    help="no run starts after this many seconds (420 on CUDA: one 10-minute device call; 900 on CPU)")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/out"), help="writes OUT/engines/")
    ap.add_argument("--only", default="", help="comma-separated run names (engine-method-stage) to run")
    args = ap.parse_args()
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu", file=sys.stderr)
        return 2
    args.steps = args.steps or (3 if args.cpu else 20)
    args.budget_s = args.budget_s or (900.0 if args.cpu else 420.0)
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="tf_engines_"))
    model = build_model(work / "model")
    data = build_data(work / "data")
    params = sum(p.numel() for p in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(model / "model.safetensors")).values())
    wanted = [x for x in args.only.split(",") if x]
    results = []
    for engine, method, stage in matrix():
        name = f"{engine}-{method}-{stage}"
        if wanted and name not in wanted:
            continue
        left = args.budget_s - (time.time() - t0)
        if left <= 0:
            results.append(Result(name, ENGINES[engine][1], method, stage, note="not started: budget spent"))
            continue
        r = run_one(engine, method, stage, model, data, work, args, args.run_cap_s)
        print(f"[{time.time() - t0:6.1f}s] {name:28s} {r.status:18s} engine={r.engine_used} steps={r.steps} "
              f"loss={fmt(r.final_loss)} peak={r.peak_memory_mb} tok/s={r.tokens_per_s} loads={r.loads} "
              f"wall={r.wall_s} {r.note}", flush=True)
        results.append(r)
    meta = {"mode": "CPU processes, gloo" if args.cpu else "1 CUDA GPU",
            "command": "python benchmarks/engines_h200.py " + " ".join(sys.argv[1:]),
            "device": torch.cuda.get_device_name(0) if not args.cpu else f"CPU ({os.cpu_count()} cores)",
            "versions": versions(), "params": params, "steps": args.steps,
            "precision": "float32" if args.cpu else "bf16 mixed precision",
            "wall_s": time.time() - t0, "budget_s": args.budget_s, "cap_s": args.run_cap_s}
    write_report(results, Path(args.out) / "engines", meta)
    shutil.rmtree(work, ignore_errors=True)
    print((Path(args.out) / "engines" / "summary.md").read_text(encoding="utf-8"))
    return 0 if not any(r.status in ("FAIL", "timeout") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
