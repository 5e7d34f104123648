"""The steps every recipe shares, so that each one (sft/pt, rm, dpo/kto, ppo) reads top to bottom in a few lines:
validate and prepare the run (bad settings and bad data fail before any weights load), load and prepare the model
(gradient checkpointing, Liger, the fine-tuning method, torch.compile — each applied with its reason logged, or
refused by the stage record before this point), pack, train, and save the Hugging Face-native artifacts with the run
summary (and the answers to sample_prompts)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


from tuneforge import compat
from tuneforge.adapters import apply_method, count_parameters, method, save_staged, save_trained, split_list
from tuneforge.config import Config
from tuneforge.config.registry import STAGES
from tuneforge.data import templates
from tuneforge.data.build import DataBundle, build_data
from tuneforge.errors import TuneforgeError
from tuneforge.eval import guard
from tuneforge.models import load_model, load_tokenizer, resolve_model_path, resolve_precision
from tuneforge.models.kernels import apply_liger, compile_layers
from tuneforge.models.quantization import quantization_config
from tuneforge.recipes.preflight import preflight
from tuneforge.train import distributed, run_dir
from tuneforge.train.guard import check_final, trainable_tensors
from tuneforge.train.loop import LoopData, plan_steps, train_loop
from tuneforge.train.metrics import plot_loss
from tuneforge.train.steps import LoopResult, optimizer_and_schedule
from tuneforge.utils import log
from tuneforge.utils.hub import HubOptions
from tuneforge.utils.system import device_kind, peak_memory_mb


@dataclass
class RunResult:
    output_dir: Path
    summary: dict


@dataclass
class Run:
    """A validated run: its folder, the checkpoint to resume from, the tokenizer with its template, and the data."""

    cfg: Config
    out: Path
    resume: Path | None
    model_path: Path
    tokenizer: object
    fmt: object
    data: DataBundle
    t0: float = field(default_factory=time.time)
    guard: object = None  # the base model's answers to the forgetting probes (eval/guard.py), asked at load

    def validated_only(self) -> RunResult:
        log.info("do_train=False: config and data are valid; nothing trained")
        return RunResult(self.out, {"completed": False, "data": self.data.report})


def prepare_run(cfg: Config, max_new_tokens: int = 0) -> Run:
    """Validate, create the run folder, and encode the data (bad data fails before any weights load)."""
    t0 = time.time()
    distributed.quiet_other_ranks()  # several processes: only rank 0 logs
    preflight(cfg)
    with distributed.main_process_first(cfg.train):  # rank 0 creates the folder and decides resume first
        out, resume = run_dir.prepare(cfg)
        if distributed.rank() == 0:
            run_dir.save_config(cfg, out)
    model_path = resolve_model_path(cfg.model.model_name_or_path, HubOptions.from_model_args(cfg.model))
    tokenizer = load_tokenizer(model_path, cfg.model.trust_remote_code)
    fmt = templates.install(tokenizer, cfg.data.template, cfg.data.enable_thinking)
    data = build_data(cfg.data, cfg.finetune.stage, tokenizer, fmt, cfg.train.seed, max_new_tokens,
                      HubOptions.from_model_args(cfg.model))
    if cfg.data.replay_ratio and cfg.train.do_train:  # the base model's own answers mixed in (eval/replay.py)
        from tuneforge.eval import replay

        with distributed.main_process_first(cfg.train):  # rank 0 answers the pool (and caches); the others read
            data.report["replay"] = replay.mix(cfg, model_path, tokenizer, fmt, data,
                                               lambda: _base_for_replay(cfg, model_path))
    supervised = data.report.get("train", {}).get("trained_tokens")
    log.info(f"data: {len(data.train)} training {cfg.finetune.stage} samples"
             + (f", {supervised} supervised tokens" if supervised is not None else "")
             + f"; {len(data.eval)} evaluation samples")
    return Run(cfg, out, resume, model_path, tokenizer, fmt, data, t0)


def make_accelerator(cfg: Config):
    """The Accelerator of this run's engine (one process, DDP, FSDP2 or DeepSpeed: train/distributed.py)."""
    from accelerate.utils import set_seed

    mixed, dtype = resolve_precision(cfg.train.bf16, cfg.train.fp16, cfg.finetune.pure_bf16)
    accelerator = distributed.make_accelerator(cfg, mixed)
    set_seed(cfg.train.seed)  # the same seed in every process: identical adapter initialisation everywhere
    return accelerator, mixed, dtype


def _quantization(cfg: Config, dtype):
    m = cfg.model
    return quantization_config(m.quantization_bit, m.quantization_type, m.double_quantization, dtype,
                               distributed.quant_storage(cfg, dtype))


def _base_for_replay(cfg: Config, model_path: Path):
    """The base model, loaded as training loads it, on the GPU where there is one: it answers the replay pool."""
    import torch

    dtype = resolve_precision(cfg.train.bf16, cfg.train.fp16, cfg.finetune.pure_bf16)[1]
    quant = _quantization(cfg, dtype)
    model = load_model(model_path, dtype, cfg.model.flash_attn, cfg.model.trust_remote_code, quant)
    return model.to("cuda") if torch.cuda.is_available() and quant is None else model


def load_policy(cfg: Config, run: Run, dtype, token_loss: bool = False):
    """The model to train, prepared: base (quantized if asked, no cache, gradient checkpointing if asked), Liger's
    kernels, the fine-tuning method, torch.compile. Returns (model, whether the loss may use Liger's fused linear
    cross-entropy — ``token_loss``: the stage's loss is the token loss)."""
    model = load_model(run.model_path, dtype, cfg.model.flash_attn, cfg.model.trust_remote_code,
                       _quantization(cfg, dtype))
    run.guard = guard.start(cfg, run.model_path, model, run.tokenizer, run.fmt, dtype)  # the base, untouched
    model.config.use_cache = False
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        log.choice("gradient_checkpointing=on", "asked; activations are recomputed in the backward pass")
    fused_ce = apply_liger(model, cfg.model.enable_liger_kernel, fused_loss=token_loss)
    model = apply_method(model, cfg, split_list(cfg.model.adapter_name_or_path))
    if cfg.train.torch_compile:
        compile_layers(model)
    return model, fused_ce


def load_frozen(cfg: Config, model_path: Path, dtype, adapters: list[str] | None = None):
    """A model for inference only (reference, reward model): adapters merged, no gradients."""
    from tuneforge.adapters import load_adapters, merge_adapters

    quant = _quantization(cfg, dtype)
    model = load_model(model_path, dtype, cfg.model.flash_attn, cfg.model.trust_remote_code, quant)
    if adapters:
        model = merge_adapters(model, adapters) if quant is None else load_adapters(model, adapters, trainable=False)
    model.requires_grad_(False)
    return model.eval()


def load_reference(cfg: Config, run: Run, dtype, device):
    """The reference model of dpo/kto/ppo: None — the policy with its adapter switched off, no second copy — for an
    adapter method; a frozen copy for a method that changes the base weights."""
    name = cfg.finetune.finetuning_type
    if method(name).adapter:
        log.choice("reference model=policy with the adapter disabled", "an adapter method leaves the base intact, "
                   "so no second copy is loaded")
        return None
    log.choice("reference model=frozen copy", f"finetuning_type={name} changes the base weights")
    why = compat.whole_model_refusal()
    if why:
        raise TuneforgeError(why, "use finetuning_type lora (its reference is the policy with the adapter off), or "
                                  "ZeRO-2 / fsdp for full dpo/kto")
    with compat.whole_model_beside_zero3():  # a whole copy on each process (ZeRO-3 would partition it)
        return load_frozen(cfg, run.model_path, dtype, split_list(cfg.model.adapter_name_or_path)).to(device)


def pack(cfg: Config, run: Run) -> tuple[list, dict | None]:
    """The training samples, packed into rows where asked (or by the stage's default); stages that cannot pack
    refused it in validation."""
    from tuneforge.data.packing import pack_for_training, resolve_packing

    d, stage = cfg.data, cfg.finetune.stage
    if "packing" in STAGES[stage].refuses or not resolve_packing(d.packing, d.neat_packing, stage):
        return run.data.train, None
    return pack_for_training(run.data.train, d.cutoff_len)


def train(cfg: Config, run: Run, objective, accelerator, samples: list | None = None) -> LoopResult:
    """Optimise ``objective`` on ``samples`` (default: the run's training data) with the shared loop."""
    samples = run.data.train if samples is None else samples
    total = plan_steps(len(samples), cfg.train, accelerator.num_processes)[1]
    optimizer, schedule = optimizer_and_schedule(objective.model, cfg, total)
    with compat.lora_inputs_in_compute_dtype(objective.model):  # peft's input cast off while training (compat.py)
        return train_loop(objective, optimizer, schedule, LoopData(samples, run.data.eval, run.tokenizer.pad_token_id),
                          cfg.train, run.out, accelerator, run.resume)


GATHER = object()  # finish's default: gather the weights to save from every rank there


def save_everything(cfg: Config) -> bool:
    """Whether the final save writes the whole model (full/freeze) rather than the trained adapter."""
    return not method(cfg.finetune.finetuning_type).adapter


def finish(cfg: Config, run: Run, accelerator, model, result: LoopResult, mixed: str, extra: dict | None = None,
           extra_trainable: int = 0, state=GATHER) -> RunResult:
    """Hugging Face-native artifacts (a peft adapter folder or a safetensors model, with the chat template), the run
    summary (``extra``: the stage's own figures) and, if asked, the tuned model's answers to sample_prompts. Every
    rank calls it: sharded engines gather the weights to rank 0 (``state``: gathered by the caller), which writes."""
    extra = {**result.extra, **(extra or {})}
    if state is GATHER:
        state = distributed.gather_for_save(accelerator, model, save_everything(cfg))
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return RunResult(run.out, {})
    out, unwrapped = run.out, accelerator.unwrap_model(model)
    unwrapped.config.use_cache = True
    check_final(out, state if state is not None else trainable_tensors(unwrapped), result.steps)  # no NaN saved
    save_trained(unwrapped, out, state)
    save_staged(out, run.tokenizer.save_pretrained)  # written whole, then moved in (adapters.save_staged)
    plots = plot_loss(out) if cfg.train.plot_loss else []
    trainable, total = count_parameters(unwrapped)
    summary = {
        "completed": True, "stage": cfg.finetune.stage, "finetuning_type": cfg.finetune.finetuning_type,
        "model": cfg.model.model_name_or_path, "template": run.fmt.name, "device": device_kind(),
        "precision": mixed if mixed != "no" else "float32", "trainable_parameters": trainable + extra_trainable,
        "total_parameters": total, "data": run.data.report, "steps": result.steps, "epochs": round(result.epochs, 3),
        "tokens": result.tokens, "trained_tokens": result.trained_tokens, "train_seconds": round(result.seconds, 2),
        "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9), 2), "final_loss": result.final_loss,
        "eval_loss": result.eval_loss, "resumed_from": result.resumed_from,
        "engine": distributed.summary_entry(accelerator, model), **extra,
        "peak_memory_mb": peak_memory_mb(), "wall_seconds": round(time.time() - run.t0, 2),
        "artifacts": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
        "plots": [p.name for p in plots],
    }
    run_dir.write_summary(out, summary)
    print_summary({**summary, "final_loss": summary["final_loss"] or 0.0}, out)
    extra_line = ", ".join(f"{k} {v}" for k, v in extra.items() if not isinstance(v, (dict, list)) and v is not None)
    if extra_line:
        log.info(f"  {cfg.finetune.stage}: {extra_line}")
    if cfg.train.sample_prompts and distributed.engine_of(accelerator).sharded:
        log.choice("sample_prompts skipped", "the model is split over the processes; ask the saved one with "
                   "tuneforge chat (--adapter_name_or_path for an adapter run)")
    elif cfg.train.sample_prompts:
        summary["sample_replies"] = answer_samples(unwrapped, run.tokenizer, run.fmt, cfg)
        run_dir.write_summary(out, summary)
    if run.guard is not None:  # the forgetting guard's tuned side (the base answered in load_policy)
        summary["forgetting_guard"] = guard.finish(cfg, run.guard, unwrapped, run.tokenizer, run.fmt)
        run_dir.write_summary(out, summary)
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
