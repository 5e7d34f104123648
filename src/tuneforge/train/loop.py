"""The training loop: short, ours, on Hugging Face Accelerate (DDP/FSDP/DeepSpeed come from its engines).

It takes what it needs — an objective (train/objective.py), the optimiser and its schedule, the data, the
settings, the run folder, the accelerator and a checkpoint to resume from — and knows nothing of stages or methods.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.config.schema import TrainArgs
from tuneforge.data.collate import micro_batches
from tuneforge.train import distributed
from tuneforge.train.memory import activation_offload
from tuneforge.train.objective import Objective, evaluate
from tuneforge.train.steps import Bookkeeping, LoopResult, optimizer_step, resume_from, trainable
from tuneforge.utils import log


@dataclass
class LoopData:
    train: list  # encoded samples (rows, when packed)
    evals: list  # held-out samples, evaluated every eval_steps
    pad_id: int


def plan_steps(n: int, args: TrainArgs, world: int) -> tuple[int, int]:
    """(micro-batches per epoch, total optimiser steps) for ``n`` training samples."""
    micro = math.ceil(n / (args.per_device_train_batch_size * world))
    per_epoch = math.ceil(micro / args.gradient_accumulation_steps)
    total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)
    return micro, max(1, total)


def train_loop(objective: Objective, optimizer, schedule, data: LoopData, args: TrainArgs, out: Path, accelerator,
               resume: Path | None) -> LoopResult:
    """Optimise ``objective`` for ``schedule.total`` steps; the loss of a step is averaged over every unit (token,
    pair) of its accumulated micro-batches and of all processes."""
    world, rank, G = accelerator.num_processes, accelerator.process_index, args.gradient_accumulation_steps
    micro_per_epoch, total = plan_steps(len(data.train), args, world)[0], schedule.total
    model, train = objective.model, data.train
    gb = args.per_device_train_batch_size * world  # the global batch
    if distributed.describe_sharding(len(train), args.per_device_train_batch_size, world):
        log.choice("data sharding", distributed.describe_sharding(len(train), args.per_device_train_batch_size, world))
    module, optimizer = distributed.prepare(accelerator, objective, optimizer, model)
    # after prepare: sharded engines load into their shards; a checkpoint of another world size is fine
    state = resume_from(resume, model, optimizer, schedule, {"step": 0, "epoch": 0, "micro": 0, "tokens": 0,
                                                              "trained_tokens": 0, "seconds": 0.0}, accelerator)
    state["micro"], state["global_batch"] = distributed.position_for(state, gb), gb
    params, book = trainable(model), Bookkeeping(out, args, total, state["step"], accelerator,
                                                  state.get("skipped_steps", 0))
    step, epoch, pos = state["step"], state["epoch"], state["micro"]
    # the sums of the steps since the last log line: a checkpoint between two log lines keeps them, so the first
    # line after a resume averages the same steps as the uninterrupted run's
    window = {"loss": 0.0, "steps": 0, "tokens": 0, **state.get("window", {}), "t": time.time()}
    t_start, last_loss, eval_loss = time.time() - state["seconds"], None, None
    lengths = None
    if args.group_by_length:
        lengths = [objective.length(s) for s in train]
        log.choice("group_by_length=on", "asked; each micro-batch holds samples of similar length (the order of the "
                   "batches stays shuffled), so there is little padding")
    pad_multiple = 64 if accelerator.device.type == "cuda" else 1  # few distinct shapes: see collate
    offload = contextlib.nullcontext if objective.saves_activations_itself else activation_offload(args)
    module.train()
    while step < total:
        batches = micro_batches(len(train), args.per_device_train_batch_size, args.seed, epoch, world, rank, lengths)
        while pos < len(batches) and step < total:
            idx = batches[pos: pos + G]
            group = [objective.collate([train[i] for i in b], data.pad_id, train[0], pad_multiple) for b in idx]
            pos += len(group)
            # one all-reduce: units and real tokens (a process's dummy row for a short last batch has none)
            counts = accelerator.reduce(torch.tensor([sum(objective.units(b) for b in group), sum(
                int(b["attention_mask"].sum()) for b, i in zip(group, idx) if i)], device=accelerator.device), "sum")
            units, n_tokens = counts[0].clamp(min=1), int(counts[1])
            step_loss = torch.zeros((), device=accelerator.device)
            step_stats: dict[str, torch.Tensor] = {}
            for j, batch in enumerate(group):
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                sync = contextlib.nullcontext() if j == len(group) - 1 else accelerator.no_sync(module)
                with sync, accelerator.autocast(), offload():
                    loss_sum, stats = module(**batch)
                    # Average over every unit of the accumulated micro-batches (and processes): DDP averages
                    # gradients over processes, hence × world.
                    distributed.backward(accelerator, loss_sum * world / units, last=j == len(group) - 1)
                step_loss += loss_sum.detach().float()
                for k, v in stats.items():
                    step_stats[k] = step_stats.get(k, 0) + v.detach().float()
            state["trained_tokens"] += int(units)
            state["tokens"] += n_tokens
            window["tokens"] += n_tokens
            lr, loss_now = schedule.get_last_lr()[0], float(accelerator.reduce(step_loss, "sum") / units)
            grad_norm, stepped = optimizer_step(accelerator, params, optimizer, args.max_grad_norm, book.guard,
                                                step + 1, loss_now)
            step += 1
            if stepped:  # a skipped step (train/guard.py) moves neither the schedule nor the logged averages
                schedule.step()
                last_loss = loss_now
                window["loss"] += loss_now
                window["steps"] += 1
            for k, v in step_stats.items():
                value = float(accelerator.reduce(v, "sum") / units)
                window[f"m:{k}"] = window.get(f"m:{k}", 0.0) + (value if stepped else 0.0)
            record, where = None, round(epoch + pos / len(batches), 4)
            if book.log_due(step):
                now = time.time()
                mean = {"loss": round(window["loss"] / window["steps"], 6)} if window["steps"] else {}
                record = {"step": step, "epoch": where, **mean, "lr": lr, "grad_norm": round(float(grad_norm), 6),
                          **({"skipped_steps": book.guard.skipped} if book.guard.skipped else {}),
                          "tokens_per_s": round(window["tokens"] / max(now - window["t"], 1e-9), 2),
                          "elapsed": round(now - t_start, 2),
                          **{k[2:]: round(v / max(window["steps"], 1), 6) for k, v in window.items()
                             if k.startswith("m:")}}
                window = {"loss": 0.0, "steps": 0, "tokens": 0, "t": now}
            if data.evals and book.eval_due(step):
                eval_loss, eval_stats = evaluate(objective, data.evals, args.per_device_eval_batch_size, data.pad_id,
                                                 accelerator, module)
                record = {**(record or {"step": step, "epoch": where}), "eval_loss": round(eval_loss, 6),
                          **{f"eval_{k}": round(v, 6) for k, v in eval_stats.items()}}
            book.record(step, record)
            if pos >= len(batches):  # epoch done; the next one gets a new order
                epoch, pos = epoch + 1, 0
            state.update(epoch=epoch, micro=pos, seconds=time.time() - t_start,
                         window={k: v for k, v in window.items() if k != "t"})
            book.checkpoint(step, model, optimizer, schedule, state)
            if pos == 0:
                break
    book.close()
    objective.release()
    return LoopResult(steps=step, epochs=epoch + pos / max(micro_per_epoch, 1), tokens=state["tokens"],
                      trained_tokens=state["trained_tokens"], seconds=time.time() - t_start, final_loss=last_loss,
                      eval_loss=eval_loss, resumed_from=str(resume) if resume else None,
                      extra={"skipped_steps": book.guard.skipped} if book.guard.skipped else {})
