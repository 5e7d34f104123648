"""GPU training benchmark: tuneforge vs transformers.Trainer + peft on 7–8B-shaped models with random weights.

Models are built from their architecture config (Llama-3.1-8B, Qwen2.5-7B) with random bf16 weights on the GPU — no
hub access. Data: synthetic chat-length samples (log-normal lengths, median ≈ 700 tokens, cut at --seq; a prompt
share that is masked and a reply share that is trained) over a Zipf-distributed token set, so that the loss can
fall. Every run asserts a non-zero gradient norm and a falling loss, so a broken backward cannot look fast.

Measured: non-padding tokens per second over the steps after --warmup (padding excluded), supervised tokens per
second, peak memory allocated and reserved (torch.cuda.max_memory_*; the peak includes the weights), per-step loss
and gradient norm.

  python benchmarks/gpu_bench.py --suite main --json OUT.json          # every config, one subprocess each
  python benchmarks/gpu_bench.py --run '{"impl": "tuneforge", ...}'     # one config (what --suite calls)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    # https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json (rope scaling left out: it does not
    # change the cost)
    "llama8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0,
                    rms_norm_eps=1e-5, max_position_embeddings=131072, tie_word_embeddings=False,
                    hidden_act="silu"),
    # https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json
    # a few-MB stand-in for checking the harness itself on a CPU (--suite cpu_check)
    "tiny": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=9000, tie_word_embeddings=False),
    # https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json (for the 200-step loss curves)
    "llama1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                    num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0,
                    rms_norm_eps=1e-5, max_position_embeddings=131072, tie_word_embeddings=True,
                    hidden_act="silu"),
    "qwen7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                   num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, rope_theta=1000000.0,
                   rms_norm_eps=1e-6, max_position_embeddings=32768, tie_word_embeddings=False, hidden_act="silu"),
}

DEFAULTS = dict(impl="tuneforge", model="llama8b", method="lora", batch=4, seq=2048, packing=False, gc=True,
                liger=False, offload=False, optim="adamw_torch_fused", steps=12, warmup=3, lr=1e-3, rank=16,
                group_by_length=False, compile=False, profile=False, samples=600, seed=0, quant=None,
                fused_lora=False, offload_embedding=None, upcast=False, phases=False, pad_multiple=1, attn="sdpa",
                data="chat", batching="pad", fast=False, fp8=False, fp8_backward="fp8", attn_backend="auto",
                inplace_lora=True, fuse_residual=True, curve=False, profile_cpu=False, nf4_per_weight=False)
# data: "chat" (make_samples: chat-length, prompt masked) or "fixed" (every sample exactly `seq` tokens, all
#   supervised: nobody pads, every tool trains the same tokens per step).
# batching (Trainer-based rows): "pad" (our collator, right padding), "flatten" (transformers'
#   DataCollatorWithFlattening: one row, position ids), "padding_free" / "packing" (trl's SFTTrainer with
#   padding_free=True / packing=True — Unsloth's own padding-free and packing paths when impl is unsloth).
# fast / fp8 / fp8_backward / attn_backend / inplace_lora / fuse_residual: tuneforge's fast path (src/tuneforge/fast).
# nf4_per_weight (A/B row): one bitsandbytes call pair per 4-bit weight instead of fast/nf4.py.
MODEL_DIRS = Path(os.environ.get("TF_BENCH_MODELS", "/tmp/tf_bench_models"))
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_config(name: str):
    from transformers import AutoConfig

    kw = dict(SHAPES[name])
    return AutoConfig.for_model(kw.pop("model_type"), **kw)


def make_samples(n: int, vocab: int, max_len: int, seed: int):
    """Chat-like samples: log-normal lengths (median 700), 30–60% prompt (masked), Zipf tokens over 8k ids."""
    import torch

    from tuneforge.data.encode import IGNORE, Sample

    g = torch.Generator().manual_seed(seed)
    probs = 1.0 / (torch.arange(8000, dtype=torch.float64) + 10.0)
    ids_map = torch.randperm(vocab - 10, generator=g)[:8000] + 10
    out = []
    for _ in range(n):
        length = int(min(max_len, max(96, math.exp(math.log(700) + 0.6 * float(torch.randn(1, generator=g))))))
        ids = ids_map[torch.multinomial(probs, length, replacement=True, generator=g)].tolist()
        cut = int(length * (0.3 + 0.3 * float(torch.rand(1, generator=g))))
        out.append(Sample(ids, [IGNORE] * cut + ids[cut:]))
    return out


def make_fixed_samples(n: int, vocab: int, seq: int, seed: int):
    """Equal-work rows: every sample exactly ``seq`` Zipf-distributed tokens, every position supervised."""
    import torch

    from tuneforge.data.encode import Sample

    g = torch.Generator().manual_seed(seed)
    probs = 1.0 / (torch.arange(8000, dtype=torch.float64) + 10.0)
    ids_map = torch.randperm(vocab - 10, generator=g)[:8000] + 10
    out = []
    for _ in range(n):
        ids = ids_map[torch.multinomial(probs, seq, replacement=True, generator=g)].tolist()
        out.append(Sample(ids, list(ids)))
    return out


def bench_samples(spec: dict, vocab: int):
    if spec["data"] == "fixed":
        return make_fixed_samples(spec["samples"], vocab, spec["seq"], spec["seed"])
    return make_samples(spec["samples"], vocab, spec["seq"], spec["seed"])


def build_model(spec: dict):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(spec["seed"])
    cuda = torch.cuda.is_available()
    attn = "sdpa"
    if spec.get("attn") == "varlen":  # tuneforge's default on CUDA (models/attention.py)
        from tuneforge.models import attention

        attn = attention.register()
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(make_config(spec["model"]), dtype=torch.bfloat16 if cuda else None,
                                                 attn_implementation=attn)
    model.config.use_cache = False
    return model


def make_tokenizer():
    """A small byte-level BPE tokenizer with a ChatML template (Unsloth wants a tokenizer beside the model; the
    benchmark feeds token ids directly, so its vocabulary size does not matter)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = ["the quick brown fox jumps over the lazy dog", "hello world, this is a benchmark tokenizer"] * 20
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token="<|im_start|>", unk_token="<|endoftext|>")
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tok


def model_dir(name: str) -> Path:
    """A saved folder (random bf16 weights + tokenizer) for configs that load through from_pretrained (QLoRA,
    Unsloth). Built once per machine by `--make_model NAME`."""
    return MODEL_DIRS / name


def make_model_dir(name: str) -> Path:
    import torch

    dest = model_dir(name)
    if (dest / "config.json").is_file():
        return dest
    model = build_model({**DEFAULTS, "model": name})
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp, max_shard_size="5GB")
    make_tokenizer().save_pretrained(tmp)
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    os.replace(tmp, dest)
    return dest


def memory() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3),
            "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 1e9, 3)}


def summarise(steps: list[dict], warmup: int) -> dict:
    """steps: [{step, loss, grad_norm, tokens, trained, t_end}] in order; throughput over steps after warmup."""
    meas = steps[warmup:]
    t0 = steps[warmup - 1]["t_end"] if warmup > 0 else steps[0]["t_start"]
    dt = meas[-1]["t_end"] - t0
    tokens, trained = sum(s["tokens"] for s in meas), sum(s["trained"] for s in meas)
    losses = [s["loss"] for s in steps]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    norms = [s["grad_norm"] for s in steps]
    # "falls" = by at least 1 % (call B's rows whose adapters never reached the forward fell by 0.06 %)
    checks = {"grad_norm_nonzero": all(n > 0 and math.isfinite(n) for n in norms), "loss_falls": last < 0.99 * first}
    return {"tokens_per_s": round(tokens / dt, 1), "trained_tokens_per_s": round(trained / dt, 1),
            "measured_steps": len(meas), "measured_seconds": round(dt, 3), "tokens_per_step": tokens // len(meas),
            "loss_first3": round(first, 4), "loss_last3": round(last, 4), "losses": [round(x, 4) for x in losses],
            "grad_norms": [round(x, 4) for x in norms], "checks": checks, "ok": all(checks.values()),
            "step_seconds": [round(b["t_end"] - a["t_end"], 3) for a, b in zip(steps, steps[1:])],
            "median_step_tokens_per_s": round(sorted(s["tokens"] for s in meas)[len(meas) // 2]
                                              / sorted(step_dt(steps)[warmup:])[len(meas) // 2], 1)}


def step_dt(steps: list[dict]) -> list[float]:
    return [s["t_end"] - (steps[i - 1]["t_end"] if i else s.get("t_start", s["t_end"])) for i, s in
            enumerate(steps)]


def run_tuneforge(spec: dict, base=None) -> dict:
    """One tuneforge config. ``base``: a bf16 model already built for this shape (``--run_group``)."""
    import torch
    from accelerate import Accelerator

    from tuneforge.config import build_config
    from tuneforge.config.schema import TrainArgs
    from tuneforge.data.packing import pack_samples
    from tuneforge.adapters import apply_method, count_parameters
    from tuneforge.models.kernels import apply_liger, compile_layers
    from tuneforge import compat
    from tuneforge.fast.decoder import build_for_training
    from tuneforge.train.loop import LoopData, plan_steps, train_loop
    from tuneforge.train.loss import CausalLMLoss
    from tuneforge.train.steps import optimizer_and_schedule

    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no", cpu=not torch.cuda.is_available())
    if spec["quant"]:
        from tuneforge.models import load_model
        from tuneforge.models.quantization import quantization_config

        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        model = load_model(model_dir(spec["model"]), dtype, spec["attn"], False,
                           quantization_config(spec["quant"], "nf4", True, dtype))
        model.config.use_cache = False
    else:
        model = base if base is not None else build_model(spec)
    loaded_gib = round(torch.cuda.memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None
    samples = bench_samples(spec, model.config.vocab_size)
    fused = apply_liger(model, spec["liger"])
    from tuneforge.fast.lora import OPTIONS

    for k in ("attn_backend", "inplace_lora", "fuse_residual", "fp8_backward"):
        setattr(OPTIONS, k, spec[k])
    from tuneforge.fast import nf4

    real_plan = run_tuneforge.__dict__.setdefault("_nf4_plan", nf4.plan)  # the real function, kept across rows
    nf4.plan = (lambda weights: None) if spec["nf4_per_weight"] else real_plan
    if spec["gc"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = {"lora_rank": spec["rank"], "lora_alpha": 2 * spec["rank"], "lora_target": "all",
            "fused_lora": spec["fused_lora"]} if spec["method"] == "lora" else {}
    ft = build_config({"finetuning_type": spec["method"], **lora, "offload_embedding": spec["offload_embedding"],
                       "upcast_unquantized": spec["upcast"]})
    model = apply_method(model, ft, [])
    prepared_gib = round(torch.cuda.memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None
    if spec["compile"]:
        compile_layers(model)
    trainable, total = count_parameters(model)
    train = samples
    pack_info = None
    if spec["packing"]:
        train, st = pack_samples(samples, spec["seq"])
        pack_info = {"rows": st.rows, "fill": round(st.fill, 4)}
    args = TrainArgs(output_dir="unused", learning_rate=spec["lr"], max_steps=spec["steps"],
                     per_device_train_batch_size=spec["batch"], logging_steps=1, save_steps=0, optim=spec["optim"],
                     bf16=torch.cuda.is_available(), gradient_checkpointing=spec["gc"],
                     enable_activation_offloading=spec["offload"],
                     group_by_length=spec["group_by_length"], max_grad_norm=1.0, seed=spec["seed"],
                     fast_path=spec["fast"], fp8=spec["fp8"])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        prof = None
        if spec["profile"]:
            acts = [torch.profiler.ProfilerActivity.CUDA]
            if spec["profile_cpu"]:  # host time per op too (where a host-bound step spends its time)
                acts.append(torch.profiler.ProfilerActivity.CPU)
            prof = torch.profiler.profile(activities=acts)
            prof.__enter__()
        t_start = time.time()
        ft.train = args  # the run's training settings (the optimiser reads them from the config)
        fast = build_for_training(model, args, acc.num_processes)
        objective = CausalLMLoss(model, fused, args.shared_prefix, fast)
        optimizer, schedule = optimizer_and_schedule(model, ft, plan_steps(len(train), args, acc.num_processes)[1])
        with compat.lora_inputs_in_compute_dtype(model):  # as recipes.common.train runs it
            train_loop(objective, optimizer, schedule, LoopData(train, [], 0), args, Path(tmp), acc, None)
        if prof is not None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            prof.__exit__(None, None, None)
        rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    steps, prev = [], 0.0
    for r in rows:
        dt = r["elapsed"] - prev
        steps.append({"step": r["step"], "loss": r["loss"], "grad_norm": r["grad_norm"],
                      "tokens": round(r["tokens_per_s"] * dt), "trained": 0, "t_end": r["elapsed"]})
        prev = r["elapsed"]
    out = summarise(steps, spec["warmup"])
    out.pop("trained_tokens_per_s")
    out.update(memory(), trainable_params=trainable, total_params=total, packing=pack_info,
               fast_path=fast is not None,
               liger=fused, timing_note="per-step tokens from metrics.jsonl (tokens_per_s × Δelapsed)",
               allocated_after_load_gib=loaded_gib, allocated_after_prepare_gib=prepared_gib)
    if prof is not None:
        out["profile"] = profile_table(prof, spec["profile_cpu"], out["measured_seconds"], out["measured_steps"],
                                       len(steps))
    acc.free_memory()  # accelerate keeps references to what it prepared
    out["_model"] = model
    return out


def run_group(specs: list[dict]) -> list[dict]:
    """Several bf16 tuneforge configs of one shape in one process on one model (built once; each config's adapter
    is removed again afterwards): saves the interpreter start, imports and model build of every row. Rows that
    set peak-memory targets run in their own process instead (``--run``)."""
    import gc

    import torch

    base, out = None, []
    for spec in specs:
        spec = {**DEFAULTS, **spec}
        t0 = time.time()
        before = round(torch.cuda.memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None
        try:
            res = run_tuneforge(spec, base)
        except Exception:  # noqa: BLE001 - report the row, keep the group going only if the model is intact
            import traceback

            out.append({"spec": spec, "error": traceback.format_exc()[-3000:]})
            break
        model = res.pop("_model")
        base = model.unload() if hasattr(model, "unload") else model  # peft: drop the adapter layers
        emb = base.get_input_embeddings()
        if hasattr(emb, "_table"):  # models/memory.CPUEmbedding: put the table back for the next row
            table = torch.nn.Embedding.from_pretrained(emb._table.to(emb.target), freeze=True,
                                                       padding_idx=emb.padding_idx)
            base.set_input_embeddings(table)
        from tuneforge.fast.lora import _CASTS

        _CASTS.clear()
        del model, emb
        gc.collect()
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        out.append({"spec": spec, **res, "wall_s": round(time.time() - t0, 1), "allocated_before_gib": before,
                    "group": True})
    return out


def profile_table(prof, cpu: bool = False, measured_s: float = 0.0, measured_steps: int = 0,
                  steps: int = 0) -> dict:
    """Kernel time by category and the top kernels; with ``cpu``, the top host ops by self CPU time too, and the
    share of the run's wall time the GPU was busy (kernel time ÷ the wall time of all profiled steps, estimated
    from the measured steps' mean)."""
    cats: dict[str, float] = {}
    top = []
    events = prof.key_averages()
    host = sorted(((e.self_cpu_time_total, e.key[:120], e.count) for e in events if e.self_cpu_time_total > 0),
                  reverse=True) if cpu else []
    for e in events:
        if cpu and "cpu" in str(getattr(e, "device_type", "")).lower():
            continue  # a host op's device time is its kernels' time, counted once below (call E counted both)
        t = getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0)
        if t <= 0:
            continue
        n = e.key.lower()
        if any(k in n for k in ("gemm", "nvjet", "cutlass", "sm90_xmma", "matmul", "cublas", "wgmma")):
            cat = "matmul"
        elif any(k in n for k in ("flash", "fmha", "attention", "efficient_attention")):
            cat = "attention"
        elif "memcpy" in n or "memset" in n:
            cat = "copy"
        elif "triton" in n or "liger" in n or "_kernel" in n and "elementwise" not in n:
            cat = "triton/fused"
        else:
            cat = "elementwise/other"
        cats[cat] = cats.get(cat, 0.0) + t
        top.append((t, e.key[:120], e.count))
    total = sum(cats.values())
    top.sort(reverse=True)
    out = {"device_ms_total": round(total / 1000, 1),
           "share": {k: round(v / total, 4) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
           "top": [{"kernel": k, "ms": round(t / 1000, 1), "calls": c} for t, k, c in top[:25]]}
    if cpu:
        out["host_top"] = [{"op": k, "self_cpu_ms": round(t / 1000, 1), "calls": c} for t, k, c in host[:40]]
        out["host_ms_total"] = round(sum(t for t, _, _ in host) / 1000, 1)
    if measured_steps and steps:  # kernel time ÷ the profiled steps' wall time (estimated from the measured mean)
        wall_ms = 1000 * measured_s / measured_steps * steps
        out["wall_ms_estimate"] = round(wall_ms, 1)
        out["gpu_busy"] = round(total / 1000 / wall_ms, 3)
        # copies run on their own stream beside the compute kernels: the compute stream's busy share without them
        out["gpu_busy_compute"] = round((total - cats.get("copy", 0.0)) / 1000 / wall_ms, 3)
    return out


def run_hf(spec: dict) -> dict:
    """transformers.Trainer + peft: padded batches (pad to longest), SDPA, gradient checkpointing, full logits.
    QLoRA as the peft docs do it: from_pretrained with a BitsAndBytesConfig (NF4, double quantization, bf16
    compute), prepare_model_for_kbit_training, then LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model

    mem = {}
    if spec["quant"]:
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_available()
                                 else torch.float32)
        model = AutoModelForCausalLM.from_pretrained(model_dir(spec["model"]), quantization_config=bnb,
                                                     dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32,
                                                     device_map={"": 0 if torch.cuda.is_available() else "cpu"},
                                                     attn_implementation="sdpa")
        model.config.use_cache = False
        if torch.cuda.is_available():
            mem["allocated_after_load_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec["gc"])
        if torch.cuda.is_available():
            mem["allocated_after_kbit_prepare_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
    else:
        model = build_model(spec)
        if spec["method"] == "lora" and spec["gc"]:
            model.enable_input_require_grads()
    if spec["method"] == "lora":
        model = get_peft_model(model, LoraConfig(r=spec["rank"], lora_alpha=2 * spec["rank"], lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    if torch.cuda.is_available():
        mem["allocated_after_peft_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
    return {**run_trainer(model, spec, spec["gc"]), **mem}


def run_unsloth(spec: dict) -> dict:
    """Unsloth's FastLanguageModel from the saved random folder, LoRA on all linear layers,
    use_gradient_checkpointing="unsloth", trained by the same transformers.Trainer loop and data as run_hf."""
    import torch
    from unsloth import FastLanguageModel

    model, tok = FastLanguageModel.from_pretrained(model_name=str(model_dir(spec["model"])),
                                                   max_seq_length=spec["seq"], dtype=torch.bfloat16,
                                                   load_in_4bit=spec["quant"] == 4)
    mem = {"allocated_after_load_gib": round(torch.cuda.memory_allocated() / 2**30, 3)}
    model = FastLanguageModel.get_peft_model(model, r=spec["rank"], lora_alpha=2 * spec["rank"], lora_dropout=0,
                                             target_modules=LORA_MODULES, bias="none",
                                             use_gradient_checkpointing=(spec.get("unsloth_gc", "unsloth")
                                                                         if spec["gc"] else False),
                                             random_state=spec["seed"])
    mem["allocated_after_peft_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
    import unsloth

    return {**run_trainer(model, spec, False, tok), **mem, "unsloth": unsloth.__version__}


def run_trainer(model, spec: dict, trainer_gc: bool, tokenizer=None) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    samples = bench_samples(spec, model.config.vocab_size)
    counts: list[tuple[int, int]] = []

    def count(batch):  # real (non-padding) tokens and supervised targets of a collated batch
        real = batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel()
        counts.append((int(real), int((batch["labels"][:, 1:] != -100).sum())))
        return batch

    def collate(batch):
        width = max(len(s.input_ids) for s in batch)
        width = -(-width // spec["pad_multiple"]) * spec["pad_multiple"]  # DataCollator's pad_to_multiple_of
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):
            n = len(s.input_ids)
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(s.input_ids), torch.tensor(s.labels), 1
        return count({"input_ids": ids, "labels": labels, "attention_mask": mask})

    steps: list[dict] = []
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    phases: list[dict] = []
    peak_seen = [0]

    def gib(x):
        return round(x / 2**30, 3)

    def phase_peak():  # peak since the last reset, folded into the run's overall peak
        p = torch.cuda.max_memory_allocated()
        peak_seen[0] = max(peak_seen[0], p)
        torch.cuda.reset_peak_memory_stats()
        return gib(p)

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            sync()
            self.t = time.time()
            if spec["phases"] and cuda:
                phases.append({"step": state.global_step, "before_step": phase_peak(),
                               "allocated_at_start": gib(torch.cuda.memory_allocated())})

        def on_pre_optimizer_step(self, a, state, control, **kw):
            if spec["phases"] and cuda and phases:
                phases[-1].update(backward_peak=phase_peak(), allocated_before_optimizer=gib(
                    torch.cuda.memory_allocated()))

        def on_step_end(self, a, state, control, **kw):
            sync()
            steps.append({"t_start": self.t, "t_end": time.time()})
            if spec["phases"] and cuda and phases:
                phases[-1].update(optimizer_peak=phase_peak(), allocated_at_end=gib(torch.cuda.memory_allocated()))

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs and steps:
                steps[-1].update(loss=float(logs["loss"]), grad_norm=float(logs.get("grad_norm", 0.0)))

    class PhaseTrainer(Trainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if spec["phases"] and cuda and phases:
                phases[-1]["before_forward_peak"] = phase_peak()
            out = super().compute_loss(model, inputs, *args, **kwargs)
            if spec["phases"] and cuda and phases:
                phases[-1].update(forward_peak=phase_peak(), allocated_after_forward=gib(
                    torch.cuda.memory_allocated()))
            return out

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            return samples[i]

    common = dict(per_device_train_batch_size=spec["batch"], max_steps=spec["steps"],
                  learning_rate=spec["lr"], logging_steps=1, save_strategy="no", report_to=[],
                  bf16=cuda, gradient_checkpointing=trainer_gc, optim=spec["optim"],
                  lr_scheduler_type="linear", max_grad_norm=1.0, seed=spec["seed"],
                  dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True)
    with tempfile.TemporaryDirectory() as tmp:
        if spec["batching"] in ("padding_free", "packing"):
            trainer = sft_trainer(model, tokenizer, samples, spec, {**common, "output_dir": tmp}, [Clock()], count)
        else:
            if spec["batching"] == "flatten":
                from transformers import DataCollatorWithFlattening

                flat = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)

                def collate(batch):  # noqa: F811 - transformers' padding-free collator
                    return count(flat([{"input_ids": x.input_ids, "labels": x.labels} for x in batch]))
            targs = TrainingArguments(output_dir=tmp, **common)
            trainer = PhaseTrainer(model=model, args=targs, train_dataset=Rows(), data_collator=collate,
                                   callbacks=[Clock()])
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    # the dataloader may collate one batch ahead; step i trained batch i
    for s, (tok, tr) in zip(steps, counts):
        s.update(tokens=tok, trained=tr)
    out = summarise(steps, spec["warmup"])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out.update(memory(), trainable_params=trainable)
    if spec["phases"] and cuda:
        peak_seen[0] = max(peak_seen[0], torch.cuda.max_memory_allocated())
        out.update(phases=phases[:4], peak_allocated_gib=gib(peak_seen[0]),
                   peak_allocated_gb=round(peak_seen[0] / 1e9, 3),
                   logits_fp32_gib_per_step=[gib(t * model.config.vocab_size * 4) for t, _ in counts[:4]])
    return out


def sft_trainer(model, tokenizer, samples, spec: dict, targs: dict, callbacks: list, count):
    """trl's SFTTrainer over the pre-tokenized samples (input_ids + labels, prompt masked) with its padding-free
    (``padding_free=True``: each batch one row with position ids) or packing (``packing=True``, best-fit-decreasing
    rows of ``seq`` tokens) batching. Imported after unsloth, this is Unsloth's patched trainer (its padding-free and
    packing paths, with its packed-sequence attention)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if tokenizer is None:
        tokenizer = make_tokenizer()
    ds = Dataset.from_dict({"input_ids": [x.input_ids for x in samples], "labels": [x.labels for x in samples]})
    packing = spec["batching"] == "packing"
    cfg = SFTConfig(**targs, max_length=spec["seq"] if packing else None, packing=packing, padding_free=True,
                    dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tokenizer, callbacks=callbacks)
    if not torch.cuda.is_available():  # the CPU dry run: trl's fused LM-head loss is a Triton kernel (GPU only)
        import types

        from transformers import Trainer

        trainer.compute_loss = types.MethodType(Trainer.compute_loss, trainer)
    inner = trainer.data_collator
    trainer.data_collator = lambda feats: count(inner(feats))
    return trainer


def run_trl(spec: dict) -> dict:
    """transformers + peft trained by trl's SFTTrainer with its padding-free or packing batching (no Unsloth):
    the same trainer code as the Unsloth chat rows, runnable on a CPU (the --suite cpu_check dry run)."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = build_model(spec)
    if spec["gc"]:
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=spec["rank"], lora_alpha=2 * spec["rank"], lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    del torch
    return run_trainer(model, spec, spec["gc"], make_tokenizer())


def run_cli(spec: dict) -> dict:
    """`tuneforge train spec["yaml"]` in a subprocess (the CLI path users run), then the harness's figures from its
    metrics.jsonl. The YAML names the model folder (--make_model) and the pt dataset_dir (--write_text_data)."""
    import yaml

    cfg = yaml.safe_load(Path(spec["yaml"]).read_text())
    data = Path(cfg["dataset_dir"])
    if not (data / "dataset_info.json").is_file():
        write_text_data(data)
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "tuneforge", "train", spec["yaml"], *spec.get("args", [])],
                       capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"tuneforge train exited {p.returncode}:\n{(p.stderr or p.stdout)[-3000:]}")
    out = cli_summary(Path(cfg["output_dir"]), spec["warmup"])
    out["cli_seconds"] = round(time.time() - t, 1)
    out["log_tail"] = [x for x in (p.stderr + p.stdout).splitlines() if "INFO" in x and "step " not in x][-40:]
    mb = (out.get("run_summary") or {}).get("peak_memory_mb")
    if mb is not None:
        out["peak_memory_mib"] = mb
    return out


def run_one(spec: dict) -> dict:
    if spec.get("impl") == "unsloth":  # Unsloth patches transformers and peft: import it first
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import unsloth  # noqa: F401
    import torch
    import transformers

    spec = {**DEFAULTS, **spec}
    t0 = time.time()
    runner = {"tuneforge": run_tuneforge, "hf": run_hf, "unsloth": run_unsloth, "trl": run_trl,
              "cli": run_cli}[spec["impl"]]
    res = runner(spec)
    res.pop("_model", None)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"spec": spec, **res, "wall_s": round(time.time() - t0, 1), "gpu": gpu,
            "torch": torch.__version__, "transformers": transformers.__version__}


_CPU = dict(model="tiny", steps=6, warmup=2, samples=80, seq=256, optim="adamw_torch")
_EQ = dict(data="fixed", steps=12, warmup=4, samples=64)  # equal work: 2048-token rows, fully supervised
_EQ1 = dict(data="fixed", batch=1, steps=16, warmup=5, samples=64)
_FAST = dict(impl="tuneforge", fast=True, liger=True)
_MIN = dict(gc=True, offload=True, offload_embedding=True, optim="adamw_8bit")  # the lowest-memory settings
_MIN_FUSED = {**_MIN, "optim": "adamw_torch_fused"}  # the same with torch's fused AdamW (fp32 states)
_PAIRS = [  # tuneforge and Unsloth on workload (a), Llama-3.1-8B shape: each line's pair, one after the other
    dict(name="tf_b4_nogc_fast", gc=False, **_FAST, **_EQ),
    dict(name="unsloth_b4_nogc", impl="unsloth", gc=False, **_EQ),
    dict(name="tf_b1_fast_min", **_FAST, **_MIN, **_EQ1),
    dict(name="unsloth_b1_gc", impl="unsloth", **_EQ1),
    dict(name="tf_qlora_b1_fast_min", quant=4, **_FAST, **_MIN, **_EQ1),
    dict(name="unsloth_qlora_b1_gc", impl="unsloth", quant=4, **_EQ1),
    dict(name="tf_b4_gc_fast", **_FAST, **_EQ),
    dict(name="unsloth_b4_gc", impl="unsloth", **_EQ)]
_PROFILE_B1 = [  # host + device profiles of the batch-1 rows (6 steps, the first included)
    dict(name="tf_b1_fast_min_prof", profile=True, profile_cpu=True, **_FAST, **_MIN,
         **{**_EQ1, "steps": 6, "warmup": 2}),
    dict(name="tf_qlora_b1_fast_min_prof", quant=4, profile=True, profile_cpu=True, **_FAST, **_MIN,
         **{**_EQ1, "steps": 6, "warmup": 2})]
SUITES = {
    # issue 18: the equal-work suite. Workload (a) "fixed": every sample 2048 tokens, all supervised, so no tool
    # pads and every tool trains the same tokens per step. Workload (b) "chat": the chat-length samples with each
    # tool's own best batching (tuneforge packing; Unsloth's packing through its SFTTrainer; Trainer + peft with
    # transformers' DataCollatorWithFlattening at a batch size that carries as many real tokens per step).
    "eq_cpu_check": [  # the same code paths on a CPU with a tiny model (Unsloth itself needs a GPU)
        dict(name="tf_fixed_b4_plain", impl="tuneforge", data="fixed", **_CPU),
        dict(name="tf_fixed_b4_fast", impl="tuneforge", data="fixed", fast=True, **_CPU),
        dict(name="tf_fixed_b4_fast_gc", impl="tuneforge", data="fixed", fast=True, gc=True, **_CPU),
        dict(name="tf_fixed_b4_fast_fp8", impl="tuneforge", data="fixed", fast=True, fp8=True, **_CPU),
        dict(name="tf_chat_pack4_fast", impl="tuneforge", packing=True, fast=True, **_CPU),
        dict(name="tf_qlora_fixed_b1_fast", impl="tuneforge", data="fixed", quant=4, batch=1, fast=True, gc=True,
             **_CPU),
        dict(name="hf_fixed_b4", impl="hf", data="fixed", **_CPU),
        dict(name="hf_chat_flatten_b12", impl="hf", batching="flatten", batch=12, **_CPU),
        dict(name="trl_chat_packing_b4", impl="trl", batching="packing", **_CPU),
        dict(name="trl_chat_padding_free_b4", impl="trl", batching="padding_free", **_CPU),
    ],
    "eq_cpu_group": [  # the group runner and the CLI rows on a CPU
        dict(name="tf_group", group=[dict(name="g_fixed_b4_fast_gc", impl="tuneforge", data="fixed", fast=True,
                                          gc=True, **_CPU),
                                     dict(name="g_chat_pack4_fast", impl="tuneforge", packing=True, fast=True,
                                          **_CPU),
                                     dict(name="g_fixed_b4_fast_fp8", impl="tuneforge", data="fixed", fast=True,
                                          fp8=True, **_CPU)]),
        dict(name="cli_tiny", impl="cli", model="tiny", yaml="examples/bench_8b_lora_b4.yaml", warmup=1,
             args=["--model_name_or_path", "/tmp/tf_bench_models_cpu/tiny", "--dataset_dir",
                   "/tmp/tf_bench_data_cpu", "--bf16", "False", "--optim", "adamw_torch", "--max_steps", "3",
                   "--output_dir", "/tmp/tf_cli_lora_b4", "--fast_path", "True"]),
    ],
    # second H200 call: the rows call A had no time for, the chat workload, Qwen, the CLI and FP8, and our rows
    # again after the changes call A pointed to (cuDNN attention for unpacked rows; adapters cast once per step;
    # bitsandbytes' dequantization ops called directly)
    "eqB": [
        dict(name="tf_group_b4", group=[
            dict(name="tf_b4_gc_fast2", **_FAST, **_EQ),
            dict(name="tf_b4_nogc_fast2", gc=False, **_FAST, **_EQ),
            dict(name="tf_chat_pack4_fast", gc=False, packing=True, attn="varlen", **_FAST, samples=600),
            dict(name="tf_b1_fast_min2", **_FAST, **_MIN, **_EQ1),
            dict(name="tf_b4_nogc_fast_fp8", gc=False, fp8=True, **_FAST, **_EQ)]),
        dict(name="tf_qlora_b1_fast_min2", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b4_gc", impl="unsloth", **_EQ),
        dict(name="cli_lora_b4", impl="cli", yaml="examples/bench_8b_lora_b4.yaml", warmup=4),
        dict(name="cli_qlora_b1", impl="cli", yaml="examples/bench_8b_qlora_b1.yaml", warmup=5, quant=4),
        dict(name="curve_group_1b", group=[
            dict(name="curve_bf16_1b", model="llama1b", gc=False, packing=True, attn="varlen", batch=2, steps=200,
                 warmup=5, lr=1e-4, samples=1200, **_FAST),
            dict(name="curve_fp8_1b", model="llama1b", gc=False, packing=True, attn="varlen", batch=2, steps=200,
                 warmup=5, lr=1e-4, samples=1200, fp8=True, **_FAST)]),
        dict(name="unsloth_chat_packing_b4", impl="unsloth", gc=False, batching="packing", samples=600),
        dict(name="tf_qwen_b4_nogc_fast", model="qwen7b", gc=False, **_FAST, **_EQ),
        dict(name="unsloth_qwen_b4_nogc", impl="unsloth", model="qwen7b", gc=False, **_EQ),
        dict(name="hf_chat_flatten_b12", impl="hf", batching="flatten", batch=12, gc=False, samples=600),
    ],
    # session 5, call C: call A's and B's valid comparison again after the LoRA-cast fix (both tools in one call),
    # and host + device profiles of the batch-1 rows (the lines the last profile found host-bound)
    "eqC": [
        *_PAIRS,
        *_PROFILE_B1,
    ],
    # session 5, call D: the rows no valid call has measured yet (Qwen pair, CLI, FP8 loss curves, the chat
    # workload) and the batch-1 pair again after the per-layer adapter copies of the lowest-memory mode
    "eqD": [
        dict(name="tf_b1_fast_min3", **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b1_gc", impl="unsloth", **_EQ1),
        dict(name="tf_qwen_b4_nogc_fast", model="qwen7b", gc=False, **_FAST, **_EQ),
        dict(name="unsloth_qwen_b4_nogc", impl="unsloth", model="qwen7b", gc=False, **_EQ),
        dict(name="cli_lora_b4", impl="cli", yaml="examples/bench_8b_lora_b4.yaml", warmup=4),
        dict(name="cli_qlora_b1", impl="cli", yaml="examples/bench_8b_qlora_b1.yaml", warmup=5, quant=4),
        dict(name="tf_qlora_b1_fast_min3", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="curve_group_1b", group=[
            dict(name="curve_bf16_1b", model="llama1b", gc=False, packing=True, attn="varlen", batch=2, steps=200,
                 warmup=5, lr=1e-4, samples=1200, **_FAST),
            dict(name="curve_fp8_1b", model="llama1b", gc=False, packing=True, attn="varlen", batch=2, steps=200,
                 warmup=5, lr=1e-4, samples=1200, fp8=True, **_FAST)]),
        *_PROFILE_B1,
        dict(name="tf_chat_pack4_fast", gc=False, packing=True, attn="varlen", **_FAST, samples=600),
        dict(name="hf_chat_flatten_b12", impl="hf", batching="flatten", batch=12, gc=False, samples=600),
        dict(name="unsloth_chat_packing_b4", impl="unsloth", gc=False, batching="packing", samples=600),
    ],
    # session 6, call F: the batch-1 and QLoRA pairs after the sync-free 8-bit step (since removed) and the
    # per-layer NF4 dequantization, each with an A/B row of the old path in the same call
    "eqF": [
        dict(name="tf_b1_fast_min4", **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b1_gc", impl="unsloth", **_EQ1),
        dict(name="tf_qlora_b1_fast_min4", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_qlora_b1_gc", impl="unsloth", quant=4, **_EQ1),
        # (here call F also ran tf_b1_fast_min4_upstream_step: bitsandbytes' own 8-bit step against
        # compat.bnb_step_without_syncs, removed after calls F and G measured no gain; F_gpu_h200_eqF.json)
        dict(name="tf_qlora_b1_fast_min4_per_weight", quant=4, nf4_per_weight=True, **_FAST, **_MIN, **_EQ1),
    ],
    # session 6, call G: after the per-weight native calls were planned once (call F: 51 µs host per weight), a
    # repeat of the QLoRA row after Unsloth's, and host profiles of both batch-1 rows (only the first ran)
    "eqG": [
        dict(name="tf_qlora_b1_fast_min5", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_qlora_b1_gc", impl="unsloth", quant=4, **_EQ1),
        dict(name="tf_qlora_b1_fast_min5_again", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="tf_b1_fast_min5", **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b1_gc", impl="unsloth", **_EQ1),
        # (here call G also ran tf_b1_fast_min5_upstream_step, the same A/B as call F; G_gpu_h200_eqG.json)
        *_PROFILE_B1,
    ],
    # session 6, call H: call G's machine drifted within the call (the same QLoRA row 7,024 then 5,259 tok/s), so
    # the batch-1 pairs alternate, twice each: a ratio per adjacent pair
    "eqH": [
        dict(name="tf_qlora_b1_h1", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_qlora_b1_h1", impl="unsloth", quant=4, **_EQ1),
        dict(name="tf_b1_h1", **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b1_h1", impl="unsloth", **_EQ1),
        dict(name="tf_qlora_b1_h2", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_qlora_b1_h2", impl="unsloth", quant=4, **_EQ1),
        dict(name="tf_b1_h2", **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b1_h2", impl="unsloth", **_EQ1),
    ],
    # call I: what bitsandbytes' 8-bit AdamW (448 per-tensor updates, one host-device round trip each) costs the
    # batch-1 rows, against torch's fused AdamW — the optimizer Unsloth's rows use; the pairs alternate
    "eqI": [
        dict(name="tf_qlora_b1_i1", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="tf_qlora_b1_fused_i1", quant=4, **_FAST, **_MIN_FUSED, **_EQ1),
        dict(name="unsloth_qlora_b1_i1", impl="unsloth", quant=4, **_EQ1),
        dict(name="tf_b1_fused_i1", **_FAST, **_MIN_FUSED, **_EQ1),
        dict(name="tf_b1_i1", **_FAST, **_MIN, **_EQ1),
        dict(name="unsloth_b1_i1", impl="unsloth", **_EQ1),
        dict(name="unsloth_qlora_b1_i2", impl="unsloth", quant=4, **_EQ1),
        dict(name="tf_qlora_b1_fused_i2", quant=4, **_FAST, **_MIN_FUSED, **_EQ1),
        dict(name="tf_qlora_b1_i2", quant=4, **_FAST, **_MIN, **_EQ1),
        dict(name="tf_b1_i2", **_FAST, **_MIN, **_EQ1),
        dict(name="tf_b1_fused_i2", **_FAST, **_MIN_FUSED, **_EQ1),
        dict(name="unsloth_b1_i2", impl="unsloth", **_EQ1),
    ],
    # call J: device-only profiles (CUDA activity alone: little profiler overhead) of the batch-1 rows — how much of
    # a step the GPU computes, i.e. whether what is left is host time or kernel time
    "eqJ": [
        dict(name="tf_b1_devprof", profile=True, **_FAST, **_MIN, **{**_EQ1, "steps": 10, "warmup": 3}),
        dict(name="tf_qlora_b1_devprof", quant=4, profile=True, **_FAST, **_MIN, **{**_EQ1, "steps": 10, "warmup": 3}),
        dict(name="tf_b1_j", **_FAST, **_MIN, **_EQ1),
    ],
    # first H200 call: Unsloth's configurations and ours on workload (a), Llama-3.1-8B shape
    "eqA": [
        *_PAIRS,
        dict(name="tf_b4_nogc_plain", impl="tuneforge", liger=True, gc=False, **_EQ),
        dict(name="tf_b4_nogc_fast_fp8", gc=False, fp8=True, **_FAST, **_EQ),
        dict(name="hf_b4_gc", impl="hf", **_EQ),
    ],
    "smoke": [dict(impl="tuneforge", packing=True, liger=True, steps=4, warmup=1, samples=60),
              dict(impl="hf", steps=4, warmup=1, samples=60)],
    "cpu_check": [dict(impl="tuneforge", model="tiny", packing=True, steps=6, warmup=2, samples=80, seq=256,
                       optim="adamw_torch"),
                  dict(impl="hf", model="tiny", steps=6, warmup=2, samples=80, seq=256, optim="adamw_torch")],
    "cpu_check6": [dict(name="tf_q", impl="tuneforge", model="tiny", quant=4, packing=True, steps=6, warmup=2,
                        samples=80, seq=256, optim="adamw_torch", fused_lora=True),
                   dict(name="hf_q", impl="hf", model="tiny", quant=4, steps=6, warmup=2, samples=80, seq=256,
                        optim="adamw_torch", phases=True)],
    # session 2 on the H200 (issue 6): Unsloth and the baselines in the same session, QLoRA, memory savers
    # s6a–s6c ran when fused_lora was on by default on CUDA, hence fused_lora=True on tuneforge rows
    "s6a": [
        dict(name="hf_qlora_b1_gc", impl="hf", quant=4, batch=1, phases=True, steps=10),
        dict(name="unsloth_qlora_b1", impl="unsloth", quant=4, batch=1, steps=10),
        dict(name="tf_qlora_pack1_gc_liger_min", impl="tuneforge", fused_lora=True, quant=4, batch=1, packing=True, liger=True,
             offload=True, optim="adamw_8bit", steps=10),
        dict(name="unsloth_lora_b1", impl="unsloth", batch=1, steps=10),
        dict(name="unsloth_lora_b4", impl="unsloth", batch=4, steps=10),
        dict(name="hf_lora_b4_gc", impl="hf", steps=10),
        dict(name="tf_lora_pack4_liger_nogc_compile_fused", impl="tuneforge", fused_lora=True, packing=True, liger=True, gc=False,
             compile=True, steps=14, warmup=5),
        dict(name="tf_lora_pack4_liger_nogc_unfused", impl="tuneforge", packing=True, liger=True, gc=False,
             fused_lora=False, steps=10),
        dict(name="tf_lora_pack4_liger_nogc_fused", impl="tuneforge", fused_lora=True, packing=True, liger=True, gc=False,
             steps=10),
        dict(name="tf_lora_pack1_gc_offload_liger_emb_8bit", impl="tuneforge", fused_lora=True, packing=True, liger=True, batch=1,
             offload=True, offload_embedding=True, optim="adamw_8bit", steps=10),
        dict(name="tf_qlora_pack1_gc_liger", impl="tuneforge", fused_lora=True, quant=4, batch=1, packing=True, liger=True,
             steps=10),
    ],
    # second call: baselines with more steps and widths padded to a multiple of 64 (fewer distinct shapes, so
    # fewer cuDNN plan builds / Unsloth recompilations inside the measured window), and the rest of s6a
    "s6b": [
        dict(name="unsloth_qlora_b1_pad64", impl="unsloth", quant=4, batch=1, pad_multiple=64, steps=30, warmup=10),
        dict(name="unsloth_lora_b4_pad64", impl="unsloth", batch=4, pad_multiple=64, steps=30, warmup=10),
        dict(name="tf_qlora_pack1_gc_liger_min", impl="tuneforge", fused_lora=True, quant=4, batch=1, packing=True, liger=True,
             offload=True, optim="adamw_8bit", steps=20, warmup=5),
        dict(name="tf_lora_pack1_gc_offload_liger_emb_8bit", impl="tuneforge", fused_lora=True, packing=True, liger=True, batch=1,
             offload=True, offload_embedding=True, optim="adamw_8bit", steps=12),
        dict(name="tf_lora_pack4_liger_nogc_fused", impl="tuneforge", fused_lora=True, packing=True, liger=True, gc=False,
             steps=12),
        dict(name="tf_qlora_pack1_gc_liger", impl="tuneforge", fused_lora=True, quant=4, batch=1, packing=True, liger=True,
             steps=20, warmup=5),
        dict(name="hf_lora_b4_gc_pad64", impl="hf", pad_multiple=64, steps=30, warmup=10),
        dict(name="unsloth_lora_b1_pad64", impl="unsloth", batch=1, pad_multiple=64, steps=30, warmup=10),
        dict(name="hf_qlora_b1_gc_pad64", impl="hf", quant=4, batch=1, pad_multiple=64, steps=30, warmup=10),
        dict(name="tf_qlora_pack1_gc_liger_min_profile", impl="tuneforge", fused_lora=True, quant=4, batch=1, packing=True,
             liger=True, offload=True, optim="adamw_8bit", steps=5, warmup=2, profile=True),
    ],
    # third call: profiles (where the time goes) and the configs s6b had no time left for
    "s6c": [
        dict(name="tf_qlora_pack1_gc_liger_min_profile", impl="tuneforge", fused_lora=True, quant=4, batch=1, packing=True,
             liger=True, offload=True, optim="adamw_8bit", steps=5, warmup=2, profile=True),
        dict(name="tf_lora_pack4_liger_nogc_fused_profile", impl="tuneforge", fused_lora=True, packing=True, liger=True, gc=False,
             steps=5, warmup=2, profile=True),
        dict(name="hf_qlora_b1_gc_pad64", impl="hf", quant=4, batch=1, pad_multiple=64, steps=30, warmup=10,
             phases=True),
        dict(name="unsloth_lora_b1_pad64", impl="unsloth", batch=1, pad_multiple=64, steps=30, warmup=10),
    ],
    # session 3 (issue 6): PyTorch's varlen FlashAttention for packed rows (models/attention.py), against the
    # masked-SDPA path and both baselines, all in one call
    "s7": [
        dict(name="tf_lora_pack4_liger_nogc_varlen", impl="tuneforge", attn="varlen", packing=True, liger=True,
             gc=False, steps=14, warmup=4),
        dict(name="tf_lora_pack4_liger_nogc_sdpa", impl="tuneforge", packing=True, liger=True, gc=False, steps=14,
             warmup=4),
        dict(name="unsloth_lora_b4_pad64", impl="unsloth", batch=4, pad_multiple=64, steps=30, warmup=10),
        dict(name="hf_lora_b4_gc_pad64", impl="hf", pad_multiple=64, steps=30, warmup=10),
        dict(name="tf_lora_pack4_liger_nogc_varlen_compile", impl="tuneforge", attn="varlen", packing=True,
             liger=True, gc=False, compile=True, steps=16, warmup=6),
        dict(name="tf_lora_pack4_liger_nogc_varlen_profile", impl="tuneforge", attn="varlen", packing=True,
             liger=True, gc=False, steps=5, warmup=2, profile=True),
        dict(name="tf_lora_pack8_liger_nogc_varlen", impl="tuneforge", attn="varlen", packing=True, liger=True,
             gc=False, batch=8, steps=10, warmup=3),
    ],
    # second call: after the rank-r LoRA scaling and native-GQA varlen (same code for every tuneforge row)
    "s7c": [
        dict(name="tf_lora_pack4_liger_nogc_varlen2", impl="tuneforge", attn="varlen", packing=True, liger=True,
             gc=False, steps=14, warmup=4),
        dict(name="tf_lora_pack4_liger_nogc_varlen2_compile", impl="tuneforge", attn="varlen", packing=True,
             liger=True, gc=False, compile=True, steps=16, warmup=6),
        dict(name="unsloth_lora_b4_pad64", impl="unsloth", batch=4, pad_multiple=64, steps=30, warmup=10),
        dict(name="hf_lora_b4_gc_pad64", impl="hf", pad_multiple=64, steps=30, warmup=10),
        dict(name="tf_lora_pack4_liger_nogc_varlen2_profile", impl="tuneforge", attn="varlen", packing=True,
             liger=True, gc=False, steps=5, warmup=2, profile=True),
        dict(name="tf_lora_pack1_gc_offload_liger_emb_8bit_varlen", impl="tuneforge", attn="varlen", packing=True,
             liger=True, batch=1, offload=True, offload_embedding=True, optim="adamw_8bit", steps=12),
        dict(name="tf_qlora_pack1_gc_liger_min_varlen", impl="tuneforge", attn="varlen", quant=4, batch=1,
             packing=True, liger=True, offload=True, optim="adamw_8bit", steps=16, warmup=5),
        dict(name="qwen_tf_lora_pack4_liger_nogc_varlen", impl="tuneforge", attn="varlen", model="qwen7b",
             packing=True, liger=True, gc=False, steps=14, warmup=4),
        dict(name="tf_full_pack1_gc_liger_fused_varlen", impl="tuneforge", attn="varlen", method="full",
             packing=True, liger=True, batch=1, steps=8, warmup=3, lr=1e-5),
    ],
    # third call: the batch-1 and QLoRA baselines of the same session
    "s7d": [
        dict(name="unsloth_qlora_b1_pad64", impl="unsloth", quant=4, batch=1, pad_multiple=64, steps=30, warmup=10),
        dict(name="unsloth_lora_b1_pad64", impl="unsloth", batch=1, pad_multiple=64, steps=30, warmup=10),
        dict(name="hf_qlora_b1_gc_pad64", impl="hf", quant=4, batch=1, pad_multiple=64, steps=30, warmup=10),
        dict(name="hf_lora_b1_gc_pad64", impl="hf", batch=1, pad_multiple=64, steps=30, warmup=10),
    ],
    "s7b": [
        dict(name="tf_lora_pack1_gc_offload_liger_emb_8bit_varlen", impl="tuneforge", attn="varlen", packing=True,
             liger=True, batch=1, offload=True, offload_embedding=True, optim="adamw_8bit", steps=12),
        dict(name="tf_qlora_pack1_gc_liger_min_varlen", impl="tuneforge", attn="varlen", quant=4, batch=1,
             packing=True, liger=True, offload=True, optim="adamw_8bit", steps=16, warmup=5),
        dict(name="tf_full_pack1_gc_liger_fused_varlen", impl="tuneforge", attn="varlen", method="full",
             packing=True, liger=True, batch=1, steps=8, warmup=3, lr=1e-5),
        dict(name="qwen_tf_lora_pack4_liger_nogc_varlen", impl="tuneforge", attn="varlen", model="qwen7b",
             packing=True, liger=True, gc=False, steps=14, warmup=4),
    ],
    "main": [
        dict(name="tf_lora_pack4_gc_liger", impl="tuneforge", packing=True, liger=True),
        dict(name="hf_lora_b4_gc", impl="hf"),
        dict(name="tf_lora_b4_gc", impl="tuneforge"),
        dict(name="tf_lora_pack4_liger_nogc", impl="tuneforge", packing=True, liger=True, gc=False),
        dict(name="tf_lora_pack1_gc_offload_liger", impl="tuneforge", packing=True, liger=True, batch=1,
             offload=True),
    ],
    "more": [
        dict(name="hf_lora_b1_gc", impl="hf", batch=1),
        dict(name="tf_lora_pack1_gc_liger", impl="tuneforge", packing=True, liger=True, batch=1),
        dict(name="tf_lora_pack4_liger_nogc_compile", impl="tuneforge", packing=True, liger=True, gc=False,
             compile=True, steps=14, warmup=5),
        dict(name="tf_lora_pack8_liger_nogc", impl="tuneforge", packing=True, liger=True, gc=False, batch=8),
        dict(name="qwen_hf_lora_b4_gc", impl="hf", model="qwen7b"),
        dict(name="qwen_tf_lora_pack4_gc_liger", impl="tuneforge", model="qwen7b", packing=True, liger=True),
        dict(name="qwen_tf_lora_pack4_liger_nogc", impl="tuneforge", model="qwen7b", packing=True, liger=True,
             gc=False),
        dict(name="tf_full_pack1_gc_liger_adamw8bit", impl="tuneforge", method="full", packing=True,
             liger=True, batch=1, optim="adamw_8bit", steps=8, warmup=3, lr=1e-5),
        dict(name="tf_full_pack1_gc_liger_fused", impl="tuneforge", method="full", packing=True,
             liger=True, batch=1, steps=8, warmup=3, lr=1e-5),
        dict(name="tf_lora_pack4_liger_nogc_profile", impl="tuneforge", packing=True, liger=True, gc=False,
             steps=5, warmup=2, profile=True),
        dict(name="tf_lora_pack4_gc_liger_profile", impl="tuneforge", packing=True, liger=True, steps=5,
             warmup=2, profile=True),
    ],
    "final": [
        dict(name="tf_lora_pack4_liger_nogc", impl="tuneforge", packing=True, liger=True, gc=False),
        dict(name="tf_lora_pack4_liger_nogc_compile", impl="tuneforge", packing=True, liger=True, gc=False,
             compile=True, steps=14, warmup=5),
        dict(name="tf_lora_pack4_nogc", impl="tuneforge", packing=True, gc=False),
        dict(name="tf_lora_pack4_gc_liger", impl="tuneforge", packing=True, liger=True),
        dict(name="tf_lora_pack4_gc_liger_compile", impl="tuneforge", packing=True, liger=True, compile=True,
             steps=14, warmup=5),
        dict(name="hf_lora_b4_gc", impl="hf"),
        dict(name="tf_lora_b4_gc", impl="tuneforge"),
        dict(name="tf_lora_b4_gc_bucketed", impl="tuneforge", group_by_length=True),
        dict(name="tf_lora_pack1_gc_offload_liger", impl="tuneforge", packing=True, liger=True, batch=1,
             offload=True),
        dict(name="qwen_tf_lora_pack4_liger_nogc_compile", impl="tuneforge", model="qwen7b", packing=True,
             liger=True, gc=False, compile=True, steps=14, warmup=5),
        dict(name="tf_lora_pack4_liger_nogc_profile", impl="tuneforge", packing=True, liger=True, gc=False,
             steps=5, warmup=2, profile=True),
    ],
    "final2": [
        dict(name="tf_lora_pack4_liger_nogc", impl="tuneforge", packing=True, liger=True, gc=False, steps=16,
             warmup=4),
        dict(name="tf_lora_pack4_liger_nogc_compile", impl="tuneforge", packing=True, liger=True, gc=False,
             compile=True, steps=16, warmup=5),
        dict(name="hf_lora_b4_gc", impl="hf", steps=16, warmup=4),
        dict(name="tf_lora_pack4_gc_liger", impl="tuneforge", packing=True, liger=True, steps=16, warmup=4),
        dict(name="tf_lora_pack1_gc_offload_liger", impl="tuneforge", packing=True, liger=True, batch=1,
             offload=True, steps=16, warmup=4),
        dict(name="qwen_tf_lora_pack4_liger_nogc_compile", impl="tuneforge", model="qwen7b", packing=True,
             liger=True, gc=False, compile=True, steps=16, warmup=5),
        dict(name="tf_lora_pack4_liger_nogc_profile", impl="tuneforge", packing=True, liger=True, gc=False,
             steps=5, warmup=2, profile=True),
    ],
    "last": [
        dict(name="tf_lora_pack4_gc_liger_profile", impl="tuneforge", packing=True, liger=True, steps=5,
             warmup=2, profile=True),
        dict(name="tf_lora_b4_gc", impl="tuneforge"),
        dict(name="tf_lora_b4_gc_bucketed", impl="tuneforge", group_by_length=True),
    ],
}


def write_text_data(dest: Path, docs: int = 48, blocks: int = 2, seq: int = 2048, seed: int = 0) -> Path:
    """A `dataset_dir` for `tuneforge train --stage pt` (examples/bench_*.yaml): ``docs`` text documents that the
    benchmark tokenizer turns into exactly ``blocks`` × ``seq`` tokens each (words that are single tokens, plus the
    end-of-text token), so every training sample is a full ``seq``-token row: workload (a) through the CLI."""
    import random

    tok = make_tokenizer()
    words = [w for w in sorted({w for line in ["the quick brown fox jumps over the lazy dog",
                                               "hello world this is a benchmark tokenizer"] for w in line.split()})
             if len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1]
    rng = random.Random(seed)
    rows = []
    for _ in range(docs):
        n = blocks * seq - 1  # + the end-of-text token the pt encoder appends
        text = "".join(" " + rng.choice(words) for _ in range(n))
        assert len(tok(text, add_special_tokens=True)["input_ids"]) == n, "a word split into several tokens"
        rows.append({"text": text})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "bench_text.json").write_text(json.dumps(rows))
    (dest / "dataset_info.json").write_text(json.dumps({"bench_text": {"file_name": "bench_text.json",
                                                                       "columns": {"prompt": "text"}}}))
    return dest


def cli_summary(run_dir: Path, warmup: int) -> dict:
    """The harness's throughput figures from a `tuneforge train` run's metrics.jsonl (logging_steps 1)."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps, prev = [], 0.0
    for r in rows:
        if "loss" not in r:
            continue
        dt = r["elapsed"] - prev
        steps.append({"step": r["step"], "loss": r["loss"], "grad_norm": r["grad_norm"],
                      "tokens": round(r["tokens_per_s"] * dt), "trained": 0, "t_end": r["elapsed"]})
        prev = r["elapsed"]
    out = summarise(steps, warmup)
    out.pop("trained_tokens_per_s")
    summary = run_dir / "run_summary.json"
    if summary.is_file():
        out["run_summary"] = json.loads(summary.read_text())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", help=f"one of {', '.join(SUITES)} (comma list allowed)")
    ap.add_argument("--only", help="comma list of config names within the suite")
    ap.add_argument("--run", help="one config as JSON (internal)")
    ap.add_argument("--run_group", help="a list of tuneforge configs of one shape, run on one model (internal)")
    ap.add_argument("--make_model", help="save a random model folder for this shape (internal)")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--budget_s", type=float, default=1e9, help="skip configs once this much time has passed")
    ap.add_argument("--write_text_data", help="write the CLI rows' pt dataset_dir here and exit")
    ap.add_argument("--cli_summary", help="print the harness figures of a tuneforge train run folder and exit")
    ap.add_argument("--warmup", type=int, default=4, help="with --cli_summary: steps left out of the throughput")
    a = ap.parse_args()
    if a.write_text_data:
        print("DATA", write_text_data(Path(a.write_text_data)), flush=True)
        return 0
    if a.cli_summary:
        res = cli_summary(Path(a.cli_summary), a.warmup)
        print("RESULT " + json.dumps(res), flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))
        return 0
    if a.make_model:
        print("MODEL", make_model_dir(a.make_model), flush=True)
        return 0
    if a.run:
        res = run_one(json.loads(a.run))
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    if a.run_group:
        import torch
        import transformers

        rows = run_group(json.loads(a.run_group))
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        for r in rows:
            r.update(gpu=gpu, torch=torch.__version__, transformers=transformers.__version__)
        print("RESULT " + json.dumps(rows), flush=True)
        return 0
    specs = [s for name in a.suite.split(",") for s in SUITES[name]]
    if a.only:
        keep = set(a.only.split(","))
        specs = [s for s in specs if s.get("name") in keep]
    results, t0, folders = [], time.time(), set()

    def folder_for(spec):  # model folders (random weights + tokenizer) for rows that load through from_pretrained
        name = spec.get("model", DEFAULTS["model"])
        if name in folders or not (spec.get("quant") or spec.get("impl") in ("unsloth", "cli")):
            return
        t = time.time()
        p = subprocess.run([sys.executable, __file__, "--make_model", name], capture_output=True, text=True)
        print(f"model folder {name}: rc {p.returncode}, {time.time() - t:.0f} s", p.stderr[-2000:] if p.returncode
              else "", flush=True)
        folders.add(name)

    for spec in specs:
        if time.time() - t0 > a.budget_s:
            results.append({"spec": spec, "skipped": "time budget"})
            continue
        members = spec.get("group")
        for m in members or [spec]:
            folder_for(m)
        arg = ["--run_group", json.dumps(members)] if members else ["--run", json.dumps(spec)]
        p = subprocess.run([sys.executable, __file__, *arg], capture_output=True, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = [json.loads(x[7:]) for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if members:
            got = lines[0] if lines else []
            rows = got + [{"spec": m, "error": (p.stderr or p.stdout)[-3000:]} for m in members[len(got):]]
        else:
            rows = lines[:1] or [{"spec": spec, "error": (p.stderr or p.stdout)[-3000:]}]
        for res in rows:
            results.append(res)
            brief = {k: res.get(k) for k in ("tokens_per_s", "peak_allocated_gib", "peak_reserved_gib", "ok",
                                             "wall_s")}
            name = res.get("spec", {}).get("name", res.get("spec"))
            print(name, json.dumps(brief), "ERROR" if "error" in res else "", flush=True)
            if "error" in res:
                print(res["error"][-1500:], flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
