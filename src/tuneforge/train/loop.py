"""The training loop: short, ours, on Hugging Face Accelerate (DDP/FSDP/DeepSpeed come from its engines)."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge import compat
from tuneforge.config.schema import TrainArgs
from tuneforge.data.collate import collate, micro_batches
from tuneforge.data.encode import IGNORE, Sample
from tuneforge.train import dist_checkpoint, distributed
from tuneforge.train.loss import CausalLMLoss
from tuneforge.train.memory import activation_offload
from tuneforge.train.metrics import MetricsWriter, Progress
from tuneforge.train.optim import Schedule, build_optimizer, warmup_steps
from tuneforge.utils import log
from tuneforge.utils.system import peak_memory_mb


@dataclass
class LoopResult:
    steps: int
    epochs: float
    tokens: int  # non-padding tokens processed
    trained_tokens: int  # supervised tokens
    seconds: float
    final_loss: float | None
    eval_loss: float | None
    resumed_from: str | None
    fast_path: bool = False  # the decoder ran through tuneforge's fast path (fast/)


def plan_steps(n: int, args: TrainArgs, world: int) -> tuple[int, int]:
    """(micro-batches per epoch, total optimiser steps)."""
    micro = math.ceil(n / (args.per_device_train_batch_size * world))
    per_epoch = math.ceil(micro / args.gradient_accumulation_steps)
    total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)
    return micro, max(1, total)


def _trained(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def _forward(module, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss sum, extra metric sums). The SFT loss returns a tensor; other objectives (train/objectives.py) return a
    pair whose metrics are summed over the same units as the loss and averaged by the loop."""
    out = module(**batch)
    return out if isinstance(out, tuple) else (out, {})


@torch.no_grad()
def evaluate(loss_module, samples: list, args: TrainArgs, pad_id: int, accelerator, collate_fn=collate,
             units=_trained) -> tuple[float | None, dict[str, float]]:
    """(mean loss, mean of the objective's extra metrics) over the held-out samples."""
    if not samples:
        return None, {}
    loss_module.eval()
    total, count = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
    extra: dict[str, torch.Tensor] = {}
    bs = args.per_device_eval_batch_size
    mine = samples[accelerator.process_index::accelerator.num_processes]
    # every process runs the same number of forwards (sharded engines gather weights in each): a process whose share
    # is shorter runs fully masked dummy rows, which add nothing
    per_process = -(-len(samples) // accelerator.num_processes)
    for i in range(0, per_process, bs):
        rows = collate_fn(mine[i: i + bs], pad_id, samples[0])
        batch = {k: v.to(accelerator.device) for k, v in rows.items()}
        with accelerator.autocast():
            loss, stats = _forward(loss_module, batch)
        total += loss.float()
        for k, v in stats.items():
            extra[k] = extra.get(k, 0) + v.float()
        count += units(batch)
    loss_module.train()
    total, count = accelerator.reduce(total, "sum"), accelerator.reduce(count, "sum").clamp(min=1)
    return float(total / count), {k: float(accelerator.reduce(v, "sum") / count) for k, v in extra.items()}


def train_loop(model, train: list[Sample], evals: list[Sample], args: TrainArgs, cfg, out: Path,
               pad_id: int, accelerator, resume: Path | None, fused_ce: bool = False, objective=None) -> LoopResult:
    """``objective``: a module wrapping the model whose forward returns (loss sum, metric sums), with ``collate``
    and ``units`` (what the sums are averaged over: pairs, samples); default: the SFT token loss."""
    with compat.lora_inputs_in_compute_dtype(model):
        return _train_loop(model, train, evals, args, cfg, out, pad_id, accelerator, resume, fused_ce, objective)


def _train_loop(model, train, evals, args, cfg, out, pad_id, accelerator, resume, fused_ce, objective) -> LoopResult:
    world, rank, G = accelerator.num_processes, accelerator.process_index, args.gradient_accumulation_steps
    micro_per_epoch, total = plan_steps(len(train), args, world)
    optimizer = build_optimizer(model, args, cfg)
    schedule = Schedule(optimizer, args.lr_scheduler_type, warmup_steps(args, total), total)
    state = {"step": 0, "epoch": 0, "micro": 0, "tokens": 0, "trained_tokens": 0, "seconds": 0.0,
             "global_batch": args.per_device_train_batch_size * world}
    if distributed.describe_sharding(len(train), args.per_device_train_batch_size, world):
        log.choice("data sharding", distributed.describe_sharding(len(train), args.per_device_train_batch_size, world))
    fused_ce = fused_ce and distributed.fused_ce_ok(accelerator)
    shared = distributed.shared_prefix_setting(accelerator, args.shared_prefix)
    fast = None
    if objective is None and distributed.fast_path_ok(accelerator, args):
        from tuneforge.fast.decoder import build_for_training

        fast = build_for_training(model, args, world)
    loss_module = CausalLMLoss(model, fused_ce, shared, fast) if objective is None else objective
    collate_fn, units = getattr(loss_module, "collate", collate), getattr(loss_module, "units", _trained)
    if not loss_module.gathered:
        log.choice("loss=full logits", loss_module.why_full_logits)
    if getattr(loss_module, "shared_prefix", False):
        log.choice("shared_prefix=on", "the prefix all rows of a batch share (system prompt) runs once per batch")
    elif objective is None and shared is None and loss_module.why_no_shared_prefix:
        log.choice("shared_prefix=off", loss_module.why_no_shared_prefix)
    loss_module, optimizer = distributed.prepare(accelerator, loss_module, optimizer, model)
    if resume is not None:  # after prepare: sharded engines load into their shards
        state.update(dist_checkpoint.load(accelerator, resume, model, optimizer, schedule))
        gb = args.per_device_train_batch_size * world
        state["micro"], state["global_batch"] = distributed.position_for(state, gb), gb
        log.info(f"resumed from {resume} at step {state['step']} (epoch {state['epoch']}, micro-batch "
                 f"{state['micro']})")
    params = [p for p in model.parameters() if p.requires_grad]
    metrics = MetricsWriter(out, args.report_to, state["step"], enabled=accelerator.is_main_process)
    progress = Progress(total, state["step"], enabled=accelerator.is_main_process)
    eval_every = args.eval_steps or args.logging_steps
    step, epoch, pos = state["step"], state["epoch"], state["micro"]
    window = {"loss": 0.0, "steps": 0, "tokens": 0, "t": time.time()}
    t_start, last_loss, eval_loss = time.time() - state["seconds"], None, None
    lengths = [len(s.input_ids) for s in train] if args.group_by_length else None
    pad_multiple = 64 if accelerator.device.type == "cuda" else 1  # few distinct shapes: see collate
    offload = activation_offload(args) if fast is None or fast.offloader is None else contextlib.nullcontext
    loss_module.train()
    while step < total:
        batches = micro_batches(len(train), args.per_device_train_batch_size, args.seed, epoch, world, rank,
                                lengths)
        while pos < len(batches) and step < total:
            idx = batches[pos: pos + G]
            group = [collate_fn([train[i] for i in b], pad_id, train[0], pad_multiple) for b in idx]
            pos += len(group)
            # one all-reduce: supervised units and real tokens (a process's dummy row for a short last batch has none)
            counts = accelerator.reduce(torch.tensor([sum(units(b) for b in group), sum(
                int(b["attention_mask"].sum()) for b, i in zip(group, idx) if i)], device=accelerator.device), "sum")
            n_sup, n_tokens = counts[0].clamp(min=1), int(counts[1])
            step_loss = torch.zeros((), device=accelerator.device)
            step_stats: dict[str, torch.Tensor] = {}
            for j, batch in enumerate(group):
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                sync = contextlib.nullcontext() if j == len(group) - 1 else accelerator.no_sync(loss_module)
                with sync, accelerator.autocast(), offload():
                    loss_sum, stats = _forward(loss_module, batch)
                    # Average over every trained token of the accumulated micro-batches (and processes): DDP
                    # averages gradients over processes, hence × world.
                    distributed.backward(accelerator, loss_sum * world / n_sup, last=j == len(group) - 1)
                step_loss += loss_sum.detach().float()
                for k, v in stats.items():
                    step_stats[k] = step_stats.get(k, 0) + v.detach().float()
            state["trained_tokens"] += int(n_sup)
            state["tokens"] += n_tokens
            window["tokens"] += n_tokens
            grad_norm = distributed.clip_and_norm(accelerator, params, args.max_grad_norm)
            optimizer.step()
            lr = schedule.get_last_lr()[0]
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last_loss = float(accelerator.reduce(step_loss, "sum") / n_sup)
            window["loss"] += last_loss
            window["steps"] += 1
            for k, v in step_stats.items():
                window[f"m:{k}"] = window.get(f"m:{k}", 0.0) + float(accelerator.reduce(v, "sum") / n_sup)
            record = None
            if step % args.logging_steps == 0 or step == total:
                now = time.time()
                record = {"step": step, "epoch": round(epoch + pos / len(batches), 4),
                          "loss": round(window["loss"] / window["steps"], 6), "lr": lr,
                          "grad_norm": round(float(grad_norm), 6),
                          "tokens_per_s": round(window["tokens"] / max(now - window["t"], 1e-9), 2),
                          "elapsed": round(now - t_start, 2),
                          **{k[2:]: round(v / window["steps"], 6) for k, v in window.items() if k.startswith("m:")}}
                window = {"loss": 0.0, "steps": 0, "tokens": 0, "t": now}
            if evals and (step % eval_every == 0 or step == total):
                eval_loss, eval_stats = evaluate(loss_module, evals, args, pad_id, accelerator, collate_fn, units)
                record = {**(record or {"step": step, "epoch": round(epoch + pos / len(batches), 4)}),
                          "eval_loss": round(eval_loss, 6), **{f"eval_{k}": round(v, 6) for k, v in eval_stats.items()}}
            if record:
                metrics.write(record)
            progress.update(step, record if record and "loss" in record else None)
            if pos >= len(batches):  # epoch done; the next one gets a new order
                epoch, pos = epoch + 1, 0
            if args.save_steps and step % args.save_steps == 0 and step < total:  # every rank takes part
                state.update(step=step, epoch=epoch, micro=pos, seconds=time.time() - t_start,
                             total_steps=total, peak_memory_mb=peak_memory_mb())
                dist_checkpoint.save(accelerator, out, step, model, optimizer, schedule, state, args.save_total_limit)
            if pos == 0:
                break
    progress.close()
    metrics.close()
    if fast is not None:
        fast.release()
    return LoopResult(steps=step, epochs=epoch + pos / max(micro_per_epoch, 1), tokens=state["tokens"],
                      trained_tokens=state["trained_tokens"], seconds=time.time() - t_start, final_loss=last_loss,
                      eval_loss=eval_loss, resumed_from=str(resume) if resume else None, fast_path=fast is not None)
