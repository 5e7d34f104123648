"""PPO's loop: each step generates rollouts with the policy, scores them with the reward model, and runs ppo_epochs
of the clipped objective with GAE advantages (train/ppo.py). It shares the optimiser step, the schedule, resuming,
checkpoints and metrics with the training loop (train/steps.py). Held-out prompts get greedy replies scored before
training and every eval_steps; checkpoints hold the policy's trainable weights and value head, the optimiser, the
KL controller, the score statistics and the prompt order.

Several processes (DDP): the policy with its value head goes through the engine (``accelerator.prepare``), so the
gradients are averaged over the processes; each process generates with the module itself (no gradient sync) the
replies to its own share of the step's prompts; every figure (whitening, token counts, KL, rewards, the score
statistics) is over every process's rollouts, so N processes take the steps one process takes with the same
global batch. Only rank 0 logs and writes."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.config.schema import PpoArgs, TrainArgs
from tuneforge.train import distributed
from tuneforge.train.memory import activation_offload
from tuneforge.train.metrics import METRICS
from tuneforge.train.ppo import AdaptiveKL, RunningMoments, ppo_update
from tuneforge.train.rollout import Actor
from tuneforge.train.steps import Bookkeeping, LoopResult, resume_from, trainable
from tuneforge.train.value_head import PolicyWithValueHead
from tuneforge.utils import log
from tuneforge.utils.atomic import read_jsonl


@dataclass
class PpoData:
    prompts: list  # encoded prompts (PairSample.prompt_ids) the rollouts start from
    evals: list  # held-out prompts: greedy replies scored before training and every eval_steps


def ppo_steps(n_prompts: int, train: TrainArgs, ppo: PpoArgs, world: int = 1) -> tuple[int, int]:
    """(total steps, rollouts per step and process): a step generates per_device_train_batch_size ×
    gradient_accumulation_steps × ppo_buffer_size rollouts in each of the ``world`` processes."""
    per_step = train.per_device_train_batch_size * train.gradient_accumulation_steps * ppo.ppo_buffer_size
    total = train.max_steps if train.max_steps > 0 else math.ceil(train.num_train_epochs * n_prompts
                                                                  / (per_step * world))
    return max(1, total), per_step


class PromptStream:
    """The prompts of every step, the same on every process: shuffled orders of the ``n`` prompts laid end to end.
    Every prompt is used once per epoch and none is dropped: when an epoch's last prompts do not fill a step, the
    step takes them and the first of the next epoch's order. ``used`` counts the prompts taken."""

    def __init__(self, n: int, seed: int):
        self.n, self.rng = n, random.Random(seed)
        self.order, self.cursor, self.used = list(range(n)), n, 0  # cursor at the end: the first take shuffles

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if self.cursor >= self.n:
                self.rng.shuffle(self.order)
                self.cursor = 0
            m = min(k - len(out), self.n - self.cursor)
            out += self.order[self.cursor: self.cursor + m]
            self.cursor += m
        self.used += k
        return out

    def state_dict(self) -> dict:
        v, internal, gauss = self.rng.getstate()
        return {"order": list(self.order), "cursor": self.cursor, "prompts_used": self.used,
                "order_rng": [v, list(internal), gauss]}

    def load_state_dict(self, state: dict, used_default: int = 0) -> None:
        self.order, self.cursor = list(state["order"]), int(state["cursor"])
        self.used = int(state.get("prompts_used", used_default))
        v, internal, gauss = state["order_rng"]
        self.rng.setstate((v, tuple(internal), gauss))


def shard_prompts(step_prompts: list[int], batch: int, world: int, rank: int) -> list[int]:
    """This process's share of a step's prompts (``batch`` × ``world`` × mini-batches of them): from each global
    mini-batch of ``batch`` × ``world`` prompts, process ``rank`` takes the ``rank``-th ``batch``; so mini-batch j
    of every process together is mini-batch j of one process holding the whole step."""
    gb = batch * world
    return [i for j in range(0, len(step_prompts), gb) for i in step_prompts[j + rank * batch: j + (rank + 1) * batch]]


def ppo_loop(policy: PolicyWithValueHead, actor: Actor, data: PpoData, optimizer, schedule, args: PpoArgs,
             train: TrainArgs, out: Path, accelerator, resume: Path | None) -> LoopResult:
    B, prompts, total = train.per_device_train_batch_size, data.prompts, schedule.total
    world, rank, n = accelerator.num_processes, accelerator.process_index, len(data.prompts)
    per_step = ppo_steps(n, train, args, world)[1]
    step_prompts = per_step * world  # the step's rollouts over every process
    kl_ctl, moments = AdaptiveKL(args.ppo_kl_coef, args.ppo_target, args.ppo_kl_horizon), RunningMoments()
    log.choice(f"kl controller: target {args.ppo_target}, horizon {args.ppo_kl_horizon} rollouts" if args.ppo_target
               > 0 else f"kl coefficient fixed at {args.ppo_kl_coef}", f"ppo_target={args.ppo_target}")
    log.choice(f"ppo: {step_prompts} rollouts per step" + (f" ({per_step} in each of {world} processes)" if world > 1
               else "") + f", {args.ppo_buffer_size} optimiser step(s) per epoch over mini-batches of {B}"
               + (" per process" if world > 1 else ""), f"per_device_train_batch_size={B} × "
               f"gradient_accumulation_steps={train.gradient_accumulation_steps} × ppo_buffer_size="
               f"{args.ppo_buffer_size}; ppo_epochs={args.ppo_epochs}")
    if n % step_prompts:
        log.choice(f"ppo prompts: {n} per epoch, {step_prompts} per step", "not a multiple: an epoch's last "
                   f"{n % step_prompts} prompt(s) share a step with the next epoch's first (every prompt once per "
                   "epoch, none dropped; prompts_used in the run summary)")
    # the policy and its value head through the engine with the optimiser (DDP averages their gradients); the
    # checkpoints and the actor keep the module itself
    module, optimizer = distributed.prepare(accelerator, policy, optimizer, policy)
    stream = PromptStream(n, train.seed)
    state = resume_from(resume, policy, optimizer, schedule, {"step": 0, "tokens": 0, "seconds": 0.0,
                                                               **stream.state_dict()}, accelerator)
    if resume is not None:
        kl_ctl.load_state_dict(state["kl_ctl"])
        moments.load_state_dict(state["moments"])
        stream.load_state_dict(state, used_default=state["step"] * step_prompts)
        log.info(f"kl_coef {kl_ctl.value:.4g} restored")
    params, book = trainable(policy), Bookkeeping(out, train, total, state["step"], accelerator,
                                                   state.get("skipped_steps", 0))
    offload = activation_offload(train)
    evals = data.evals[rank::world]  # each process its share; the figures are over all of them

    def evaluate(step: int) -> dict:
        with accelerator.autocast():
            ev, example = actor.evaluate(evals, train.per_device_eval_batch_size)
        log.info(f"held-out prompts at step {step}: reward {ev['eval_reward']:.3f} · kl {ev['eval_kl']:.3f} · "
                 f"e.g. {example[:60]!r}")
        return ev

    def total_of(values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
        return (accelerator.reduce(t, "sum") if world > 1 else t).tolist()

    if data.evals and state["step"] == 0:
        book.record(0, {"step": 0, **evaluate(0)})  # the base policy: where the curve starts
    step, tokens = state["step"], state["tokens"]
    t_start, record = time.time() - state["seconds"], {}
    while step < total:
        mine = shard_prompts(stream.take(step_prompts), B, world, rank)
        # rollouts under the engine's autocast, as the training forward runs (mixed precision): the old
        # log-probs are those of the policy the update measures its ratio against. Sampling seed: seed + rank,
        # moved on each step (each process and step its own stream).
        with accelerator.autocast():
            rollout = actor.rollout([prompts[i] for i in mine], moments if args.ppo_score_norm else None,
                                    seed=train.seed + rank + world * step)
        stats, mean_kl, grad_norm, stepped = ppo_update(module, rollout, kl_ctl.value, args, accelerator, optimizer,
                                                        params, train.max_grad_norm, B,
                                                        train.gradient_accumulation_steps, offload, book.guard,
                                                        step + 1)
        lr = schedule.get_last_lr()[0]
        if stepped:  # every optimiser step of this PPO step skipped (train/guard.py): the schedule waits
            schedule.step()
        step += 1
        kl_coef = kl_ctl.value  # the coefficient this step's rewards used
        if math.isfinite(mean_kl):  # a NaN KL would stick in the controller for the rest of the run
            kl_ctl.update(mean_kl, step_prompts)
        finished = rollout.finished if rollout.finished is not None else torch.ones(len(mine), dtype=torch.bool)
        score, rows, length, cut, seen = total_of([float(rollout.raw_scores.sum()), float(len(mine)),
                                                   float(rollout.mask.sum()), float((~finished).sum()),
                                                   float(rollout.attention_mask.sum())])
        tokens += int(seen)
        now = time.time()
        record = {"step": step, "epoch": round(stream.used / n, 4), "prompts_used": stream.used,
                  "loss": round(stats["pg_loss"] + args.ppo_vf_coef * stats["value_loss"], 6), "lr": lr,
                  "grad_norm": round(grad_norm, 6), "reward": round(score / rows, 6), "kl": round(mean_kl, 6),
                  "kl_coef": round(kl_coef, 6), **{k: round(v, 6) for k, v in stats.items()},
                  "response_length": round(length / rows, 2), "truncated": round(cut / rows, 4),
                  "tokens_per_s": round(tokens / max(now - t_start, 1e-9), 2), "elapsed": round(now - t_start, 2),
                  **({"skipped_steps": book.guard.skipped} if book.guard.skipped else {})}
        logged, evaluated = book.log_due(step), bool(data.evals) and book.eval_due(step)
        if logged:
            log.info(f"ppo step {step}: reward {record['reward']:.3f} · kl {record['kl']:.3f} · kl_coef "
                     f"{kl_coef:.4f} · value loss {record['value_loss']:.4f} · clip fraction "
                     f"{record['clip_fraction']:.3f} · e.g. {rollout.responses[0][:60]!r}")
        ev = evaluate(step) if evaluated else {}
        book.record(step, {**(record if logged else {"step": step}), **ev} if logged or evaluated else None)
        book.checkpoint(step, policy, optimizer, schedule, {
            "skipped_steps": book.guard.skipped, "tokens": tokens, "seconds": now - t_start,
            "kl_ctl": kl_ctl.state_dict(), "moments": moments.state_dict(), **stream.state_dict()})
    book.close()
    extra = {"final_reward": record.get("reward"), "final_kl": record.get("kl"),
             "final_kl_coef": round(kl_ctl.value, 6), "prompts_used": stream.used,
             **({"skipped_steps": book.guard.skipped} if book.guard.skipped else {})}
    rows = [r for r in read_jsonl(out / METRICS)[0] if "eval_reward" in r] if accelerator.is_main_process else []
    if rows:  # from metrics.jsonl (rank 0 writes it), so a resumed run reports where its curve started
        extra.update(eval_reward_start=rows[0]["eval_reward"], eval_reward=rows[-1]["eval_reward"],
                     eval_kl=rows[-1]["eval_kl"], eval_prompts=len(data.evals))
    return LoopResult(steps=step, epochs=stream.used / n, tokens=tokens, trained_tokens=0,
                      seconds=time.time() - t_start, final_loss=record.get("loss"), eval_loss=None,
                      resumed_from=str(resume) if resume else None, extra=extra)
