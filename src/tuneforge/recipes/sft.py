"""Supervised fine-tuning (and continued pre-training): load, adapt, build data, train, save. Reads top to bottom."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


from tuneforge.adapters import apply_method, count_parameters, save_trained, split_list
from tuneforge.config import Config
from tuneforge.data.packing import pack_for_training, resolve_packing
from tuneforge.models.kernels import apply_liger, compile_layers
from tuneforge.recipes.common import load_base, make_accelerator, prepare_run, save_everything
from tuneforge.train import distributed, run_dir
from tuneforge.train.loop import train_loop
from tuneforge.train.metrics import plot_loss
from tuneforge.utils import log
from tuneforge.utils.system import device_kind, peak_memory_mb


@dataclass
class RunResult:
    output_dir: Path
    summary: dict


def run(cfg: Config) -> RunResult:
    t0 = time.time()
    # Tokenizer, template and data first: bad data fails before any weights load.
    out, resume, model_path, tokenizer, fmt, data = prepare_run(cfg)
    if not cfg.train.do_train:
        log.info("do_train=False: config and data are valid; nothing trained")
        return RunResult(out, {"completed": False, "data": data.report})

    train, packing = data.train, None
    if resolve_packing(cfg.data.packing, cfg.data.neat_packing, cfg.finetune.stage):
        train, packing = pack_for_training(data.train, cfg.data.cutoff_len)

    accelerator, mixed, dtype = make_accelerator(cfg)
    model = load_base(cfg, model_path, dtype)
    fused_ce = apply_liger(model, cfg.model.enable_liger_kernel)
    model = apply_method(model, cfg, split_list(cfg.model.adapter_name_or_path))
    if cfg.train.torch_compile:
        compile_layers(model)
    trainable, total_params = count_parameters(model)

    result = train_loop(model, train, data.eval, cfg.train, cfg, out, tokenizer.pad_token_id,
                        accelerator, resume, fused_ce)

    # Hugging Face-native artifacts: a peft adapter folder, or a safetensors model; with the chat template used.
    # Sharded engines gather the weights to rank 0 first (every rank takes part).
    state = distributed.gather_for_save(accelerator, model, save_everything(cfg))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.config.use_cache = True
        save_trained(unwrapped, out, state)
        tokenizer.save_pretrained(out)
        plots = plot_loss(out) if cfg.train.plot_loss else []
        summary = {
            "completed": True, "stage": cfg.finetune.stage, "finetuning_type": cfg.finetune.finetuning_type,
            "model": cfg.model.model_name_or_path, "template": fmt.name, "device": device_kind(),
            "precision": mixed if mixed != "no" else "float32",
            "trainable_parameters": trainable, "total_parameters": total_params,
            "data": data.report, "packing": packing, "steps": result.steps, "epochs": round(result.epochs, 3),
            "tokens": result.tokens, "trained_tokens": result.trained_tokens,
            "train_seconds": round(result.seconds, 2),
            "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9), 2),
            "final_loss": result.final_loss, "eval_loss": result.eval_loss, "resumed_from": result.resumed_from,
            "peak_memory_mb": peak_memory_mb(), "wall_seconds": round(time.time() - t0, 2),
            "artifacts": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
            "plots": [p.name for p in plots],
        }
        run_dir.write_summary(out, summary)
        print_summary(summary, out)
        if cfg.train.sample_prompts and distributed.engine_of(accelerator).sharded:
            log.choice("sample_prompts skipped", "the model is split over the processes; ask the saved model: "
                       f"tuneforge chat --model_name_or_path {cfg.model.model_name_or_path} --adapter_name_or_path "
                       f"{out}" if state is not None and not save_everything(cfg) else
                       f"tuneforge chat --model_name_or_path {out}")
        elif cfg.train.sample_prompts:
            summary["sample_replies"] = answer_samples(unwrapped, tokenizer, fmt, cfg)
            run_dir.write_summary(out, summary)
    else:
        summary = {}
    return RunResult(out, summary)


def answer_samples(model, tokenizer, fmt, cfg: Config) -> list[dict]:
    """``sample_prompts``: the tuned model, still in memory, answers each question greedily (the same decoding as
    ``tuneforge chat``) — a first look at the result without loading the model a second time."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.config.validate import prompt_list
    from tuneforge.infer.engine import ChatEngine

    questions = prompt_list(cfg.train.sample_prompts)
    t = time.time()
    gen = GenerateArgs(max_new_tokens=cfg.generate.max_new_tokens)
    replies = ChatEngine.from_loaded(model, tokenizer, fmt).generate([[{"role": "user", "content": q}]
                                                                     for q in questions], gen)
    log.info(f"sample_prompts: the tuned model answers ({len(questions)} question(s), greedy, "
             f"{time.time() - t:.1f} s):")
    for q, a in zip(questions, replies):
        print(f"  Q: {q}\n  A: {a}", flush=True)
    return [{"prompt": q, "response": a} for q, a in zip(questions, replies)]


def print_summary(s: dict, out: Path) -> None:
    d = s["data"]["train"]
    dropped = ", ".join(f"{n} ({r})" for r, n in d["dropped"].items()) or "0"
    lines = [
        f"run summary ({out / run_dir.SUMMARY})",
        f"  samples read {s['data']['rows_read']} · trained on {d['samples']} · dropped {dropped} · "
        f"truncated {d['truncated']}",
        f"  steps {s['steps']} · epochs {s['epochs']} · final loss {s['final_loss']:.4f}"
        + (f" · eval loss {s['eval_loss']:.4f}" if s.get("eval_loss") is not None else ""),
        f"  tokens {s['tokens']} (supervised {s['trained_tokens']}) · {s['train_seconds']} s · "
        f"{s['tokens_per_s']} tokens/s · peak memory {s['peak_memory_mb']} MiB",
        f"  saved: {', '.join(s['artifacts'])}",
    ]
    log.info("\n".join(lines))
