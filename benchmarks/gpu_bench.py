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
    "qwen7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                   num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, rope_theta=1000000.0,
                   rms_norm_eps=1e-6, max_position_embeddings=32768, tie_word_embeddings=False, hidden_act="silu"),
}

DEFAULTS = dict(impl="tuneforge", model="llama8b", method="lora", batch=4, seq=2048, packing=False, gc=True,
                liger=False, offload=False, optim="adamw_torch_fused", steps=12, warmup=3, lr=1e-3, rank=16,
                group_by_length=False, compile=False, profile=False, samples=600, seed=0, quant=None,
                fused_lora=False, offload_embedding=None, upcast=False, phases=False, pad_multiple=1, attn="sdpa")
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
    checks = {"grad_norm_nonzero": all(n > 0 and math.isfinite(n) for n in norms), "loss_falls": last < first}
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


def run_tuneforge(spec: dict) -> dict:
    import torch
    from accelerate import Accelerator

    from tuneforge.config import build_config
    from tuneforge.config.schema import TrainArgs
    from tuneforge.data.packing import pack_samples
    from tuneforge.adapters import apply_method, count_parameters
    from tuneforge.models.kernels import apply_liger, compile_layers
    from tuneforge.train.loop import train_loop

    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no", cpu=not torch.cuda.is_available())
    if spec["quant"]:
        from tuneforge.models import load_model
        from tuneforge.models.quantization import quantization_config

        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        model = load_model(model_dir(spec["model"]), dtype, spec["attn"], False,
                           quantization_config(spec["quant"], "nf4", True, dtype))
        model.config.use_cache = False
    else:
        model = build_model(spec)
    loaded_gib = round(torch.cuda.memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None
    samples = make_samples(spec["samples"], model.config.vocab_size, spec["seq"], spec["seed"])
    fused = apply_liger(model, spec["liger"])
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
                     group_by_length=spec["group_by_length"], max_grad_norm=1.0, seed=spec["seed"])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        prof = None
        if spec["profile"]:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
            prof.__enter__()
        t_start = time.time()
        train_loop(model, train, [], args, ft, Path(tmp), 0, acc, None, fused)
        if prof is not None:
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
               liger=fused, timing_note="per-step tokens from metrics.jsonl (tokens_per_s × Δelapsed)",
               allocated_after_load_gib=loaded_gib, allocated_after_prepare_gib=prepared_gib)
    if prof is not None:
        out["profile"] = profile_table(prof)
    return out


def profile_table(prof) -> dict:
    cats: dict[str, float] = {}
    top = []
    for e in prof.key_averages():
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
    return {"device_ms_total": round(total / 1000, 1),
            "share": {k: round(v / total, 4) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "top": [{"kernel": k, "ms": round(t / 1000, 1), "calls": c} for t, k, c in top[:25]]}


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

    model, _tok = FastLanguageModel.from_pretrained(model_name=str(model_dir(spec["model"])),
                                                    max_seq_length=spec["seq"], dtype=torch.bfloat16,
                                                    load_in_4bit=spec["quant"] == 4)
    mem = {"allocated_after_load_gib": round(torch.cuda.memory_allocated() / 2**30, 3)}
    model = FastLanguageModel.get_peft_model(model, r=spec["rank"], lora_alpha=2 * spec["rank"], lora_dropout=0,
                                             target_modules=LORA_MODULES, bias="none",
                                             use_gradient_checkpointing="unsloth" if spec["gc"] else False,
                                             random_state=spec["seed"])
    mem["allocated_after_peft_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
    import unsloth

    return {**run_trainer(model, spec, False), **mem, "unsloth": unsloth.__version__}


def run_trainer(model, spec: dict, trainer_gc: bool) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    samples = make_samples(spec["samples"], model.config.vocab_size, spec["seq"], spec["seed"])
    counts: list[tuple[int, int]] = []

    def collate(batch):
        width = max(len(s.input_ids) for s in batch)
        width = -(-width // spec["pad_multiple"]) * spec["pad_multiple"]  # DataCollator's pad_to_multiple_of
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):
            n = len(s.input_ids)
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(s.input_ids), torch.tensor(s.labels), 1
        counts.append((int(mask.sum()), int((labels[:, 1:] != -100).sum())))
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

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

    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, per_device_train_batch_size=spec["batch"], max_steps=spec["steps"],
                                  learning_rate=spec["lr"], logging_steps=1, save_strategy="no", report_to=[],
                                  bf16=cuda, gradient_checkpointing=trainer_gc,
                                  optim=spec["optim"],
                                  lr_scheduler_type="linear", max_grad_norm=1.0, seed=spec["seed"],
                                  dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True)
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


def run_one(spec: dict) -> dict:
    if spec.get("impl") == "unsloth":  # Unsloth patches transformers and peft: import it first
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import unsloth  # noqa: F401
    import torch
    import transformers

    spec = {**DEFAULTS, **spec}
    t0 = time.time()
    runner = {"tuneforge": run_tuneforge, "hf": run_hf, "unsloth": run_unsloth}[spec["impl"]]
    res = runner(spec)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"spec": spec, **res, "wall_s": round(time.time() - t0, 1), "gpu": gpu,
            "torch": torch.__version__, "transformers": transformers.__version__}


SUITES = {
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", help=f"one of {', '.join(SUITES)} (comma list allowed)")
    ap.add_argument("--only", help="comma list of config names within the suite")
    ap.add_argument("--run", help="one config as JSON (internal)")
    ap.add_argument("--make_model", help="save a random model folder for this shape (internal)")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--budget_s", type=float, default=1e9, help="skip configs once this much time has passed")
    a = ap.parse_args()
    if a.make_model:
        print("MODEL", make_model_dir(a.make_model), flush=True)
        return 0
    if a.run:
        res = run_one(json.loads(a.run))
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    specs = [s for name in a.suite.split(",") for s in SUITES[name]]
    if a.only:
        keep = set(a.only.split(","))
        specs = [s for s in specs if s.get("name") in keep]
    results, t0 = [], time.time()
    for name in sorted({s.get("model", DEFAULTS["model"]) for s in specs if s.get("quant") or s.get("impl") == "unsloth"}):
        t = time.time()
        p = subprocess.run([sys.executable, __file__, "--make_model", name], capture_output=True, text=True)
        print(f"model folder {name}: rc {p.returncode}, {time.time() - t:.0f} s", p.stderr[-2000:] if p.returncode
              else "", flush=True)
    for spec in specs:
        if time.time() - t0 > a.budget_s:
            results.append({"spec": spec, "skipped": "time budget"})
            continue
        p = subprocess.run([sys.executable, __file__, "--run", json.dumps(spec)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line:
            res = json.loads(line[7:])
        else:
            res = {"spec": spec, "error": (p.stderr or p.stdout)[-3000:]}
        results.append(res)
        brief = {k: res.get(k) for k in ("tokens_per_s", "peak_allocated_gib", "peak_reserved_gib", "ok", "wall_s")}
        print(spec.get("name", spec), json.dumps(brief), "ERROR" if "error" in res else "", flush=True)
        if "error" in res:
            print(res["error"][-1500:], flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
