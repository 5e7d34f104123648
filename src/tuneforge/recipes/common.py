"""Steps the preference recipes (rm, dpo, kto, ppo) share with each other: prepare the run and its data, load the
model with its fine-tuning method, save the artifacts and the summary. (sft.py predates them and keeps its own
inline copy of these steps.)"""

from __future__ import annotations

import time
from pathlib import Path

from tuneforge.adapters import apply_method, count_parameters, save_trained, split_list
from tuneforge.config import Config
from tuneforge.data import templates
from tuneforge.data.build import DataBundle, build_data
from tuneforge.models import load_model, load_tokenizer, resolve_model_path, resolve_precision
from tuneforge.models.quantization import quantization_config
from tuneforge.recipes.preflight import preflight
from tuneforge.train import distributed, run_dir
from tuneforge.train.metrics import plot_loss
from tuneforge.utils import log
from tuneforge.utils.system import device_kind, peak_memory_mb


def save_everything(cfg: Config) -> bool:
    """Whether the final save writes the whole model (full/freeze) rather than the trained adapter."""
    from tuneforge.config.registry import method

    return not method(cfg.finetune.finetuning_type).adapter


def prepare_run(cfg: Config, max_new_tokens: int = 0):
    """Validate, create the run folder, and encode the data (bad data fails before any weights load)."""
    distributed.quiet_other_ranks()
    preflight(cfg)
    with distributed.main_process_first(cfg.train):  # rank 0 creates the folder and decides resume first
        out, resume = run_dir.prepare(cfg)
        if distributed.rank() == 0:
            run_dir.save_config(cfg, out)
    model_path = resolve_model_path(cfg.model.model_name_or_path)
    tokenizer = load_tokenizer(model_path, cfg.model.trust_remote_code)
    fmt = templates.install(tokenizer, cfg.data.template)
    data = build_data(cfg.data, cfg.finetune.stage, tokenizer, fmt, cfg.train.seed, max_new_tokens)
    supervised = data.report.get("train", {}).get("trained_tokens")
    log.info(f"data: {len(data.train)} training {cfg.finetune.stage} samples"
             + (f", {supervised} supervised tokens" if supervised is not None else "")
             + f"; {len(data.eval)} evaluation samples")
    return out, resume, model_path, tokenizer, fmt, data


def make_accelerator(cfg: Config):
    """The Accelerator of this run's engine (one process, DDP, FSDP2 or DeepSpeed: train/distributed.py)."""
    from accelerate.utils import set_seed

    mixed, dtype = resolve_precision(cfg.train.bf16, cfg.train.fp16)
    accelerator = distributed.make_accelerator(cfg, mixed)
    set_seed(cfg.train.seed)  # the same seed in every process: identical adapter initialisation everywhere
    return accelerator, mixed, dtype


def load_frozen(cfg: Config, model_path: Path, dtype, adapters: list[str] | None = None):
    """A model for inference only (reference, reward model): adapters merged, no gradients."""
    from tuneforge.adapters import merge_adapters

    quant = quantization_config(cfg.model.quantization_bit, cfg.model.quantization_type,
                                cfg.model.double_quantization, dtype)
    model = load_model(model_path, dtype, cfg.model.flash_attn, cfg.model.trust_remote_code, quant)
    if adapters:
        model = merge_adapters(model, adapters) if quant is None else _load_unmerged(model, adapters)
    model.requires_grad_(False)
    return model.eval()


def _load_unmerged(model, adapters):
    from tuneforge.adapters import load_adapters

    return load_adapters(model, adapters, trainable=False)


def load_base(cfg: Config, model_path: Path, dtype):
    """The base model to train (quantized for QLoRA), no cache, gradient checkpointing if asked; no method yet."""
    quant = quantization_config(cfg.model.quantization_bit, cfg.model.quantization_type,
                                cfg.model.double_quantization, dtype, distributed.quant_storage(cfg, dtype))
    model = load_model(model_path, dtype, cfg.model.flash_attn, cfg.model.trust_remote_code, quant)
    model.config.use_cache = False
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        log.choice("gradient_checkpointing=on", "asked; activations are recomputed in the backward pass")
    return model


def load_trainable(cfg: Config, model_path: Path, dtype):
    """The policy: base (quantized for QLoRA) with the chosen method applied."""
    return apply_method(load_base(cfg, model_path, dtype), cfg, split_list(cfg.model.adapter_name_or_path))


GATHER = object()  # save_and_summarise's default: gather the weights to save from every rank here


def save_and_summarise(cfg: Config, accelerator, model, tokenizer, out: Path, fmt, data: DataBundle, result, t0: float,
                       mixed: str, extra: dict | None = None, save_model: bool = True, state=GATHER) -> dict:
    """Hugging Face-native artifacts (a peft adapter folder or a safetensors model, with the chat template) and the
    run summary. ``extra`` adds stage-specific figures (pairwise accuracy, rewards). Every rank calls it: sharded
    engines gather the weights to rank 0 (``state``: already gathered by the caller), which writes everything."""
    extra = dict(extra or {})
    if state is GATHER:
        state = distributed.gather_for_save(accelerator, model, save_everything(cfg)) if save_model else None
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return {}
    unwrapped = accelerator.unwrap_model(model)
    if save_model:
        unwrapped.config.use_cache = True
        save_trained(unwrapped, out, state)
        tokenizer.save_pretrained(out)
    plots = plot_loss(out) if cfg.train.plot_loss else []
    trainable, total = count_parameters(unwrapped)
    trainable += (extra or {}).pop("_extra_trainable", 0)
    summary = {
        "completed": True, "stage": cfg.finetune.stage, "finetuning_type": cfg.finetune.finetuning_type,
        "model": cfg.model.model_name_or_path, "template": fmt.name, "device": device_kind(),
        "precision": mixed if mixed != "no" else "float32", "trainable_parameters": trainable,
        "total_parameters": total, "data": data.report, "steps": result.steps, "epochs": round(result.epochs, 3),
        "tokens": result.tokens, "trained_tokens": result.trained_tokens, "train_seconds": round(result.seconds, 2),
        "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9), 2), "final_loss": result.final_loss,
        "eval_loss": result.eval_loss, "resumed_from": result.resumed_from, **(extra or {}),
        "peak_memory_mb": peak_memory_mb(), "wall_seconds": round(time.time() - t0, 2),
        "artifacts": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
        "plots": [p.name for p in plots],
    }
    run_dir.write_summary(out, summary)
    from tuneforge.recipes.sft import print_summary

    print_summary({**summary, "final_loss": summary["final_loss"] or 0.0}, out)
    extra_line = ", ".join(f"{k} {v}" for k, v in (extra or {}).items() if not isinstance(v, (dict, list)))
    if extra_line:
        log.info(f"  {cfg.finetune.stage}: {extra_line}")
    return summary
