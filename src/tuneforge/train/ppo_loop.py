"""PPO's loop: each step generates rollouts with the policy, scores them with the reward model, and runs ppo_epochs
of the clipped objective with GAE advantages (train/ppo.py). It shares the optimiser step, the schedule, resuming,
checkpoints and metrics with the training loop (train/steps.py). Held-out prompts get greedy replies scored before
training and every eval_steps; checkpoints hold the policy's trainable weights and value head, the optimiser, the
KL controller, the score statistics and the prompt order."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from tuneforge.config.schema import PpoArgs, TrainArgs
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


def ppo_steps(n_prompts: int, train: TrainArgs, ppo: PpoArgs) -> tuple[int, int]:
    """(total steps, rollouts per step): a step generates per_device_train_batch_size × gradient_accumulation_steps
    × ppo_buffer_size rollouts."""
    per_step = train.per_device_train_batch_size * train.gradient_accumulation_steps * ppo.ppo_buffer_size
    total = train.max_steps if train.max_steps > 0 else math.ceil(train.num_train_epochs * n_prompts / per_step)
    return max(1, total), per_step


def ppo_loop(policy: PolicyWithValueHead, actor: Actor, data: PpoData, optimizer, schedule, args: PpoArgs,
             train: TrainArgs, out: Path, accelerator, resume: Path | None) -> LoopResult:
    B, prompts, total = train.per_device_train_batch_size, data.prompts, schedule.total
    per_step = ppo_steps(len(prompts), train, args)[1]
    kl_ctl, moments = AdaptiveKL(args.ppo_kl_coef, args.ppo_target, args.ppo_kl_horizon), RunningMoments()
    log.choice(f"kl controller: target {args.ppo_target}, horizon {args.ppo_kl_horizon} rollouts" if args.ppo_target
               > 0 else f"kl coefficient fixed at {args.ppo_kl_coef}", f"ppo_target={args.ppo_target}")
    log.choice(f"ppo: {per_step} rollouts per step, {args.ppo_buffer_size} optimiser step(s) per epoch over "
               f"mini-batches of {B}", f"per_device_train_batch_size={B} × gradient_accumulation_steps="
               f"{train.gradient_accumulation_steps} × ppo_buffer_size={args.ppo_buffer_size}; "
               f"ppo_epochs={args.ppo_epochs}")
    rng = random.Random(train.seed)
    state = resume_from(resume, policy, optimizer, schedule, {"step": 0, "cursor": len(prompts),
                        "order": list(range(len(prompts))), "tokens": 0, "seconds": 0.0}, accelerator)
    if resume is not None:
        kl_ctl.load_state_dict(state["kl_ctl"])
        moments.load_state_dict(state["moments"])
        v, internal, gauss = state["order_rng"]
        rng.setstate((v, tuple(internal), gauss))
        log.info(f"kl_coef {kl_ctl.value:.4g} restored")
    params, book = trainable(policy), Bookkeeping(out, train, total, state["step"], accelerator,
                                                   state.get("skipped_steps", 0))
    offload = activation_offload(train)

    def evaluate(step: int) -> dict:
        ev, example = actor.evaluate(data.evals, train.per_device_eval_batch_size)
        log.info(f"held-out prompts at step {step}: reward {ev['eval_reward']:.3f} · kl {ev['eval_kl']:.3f} · "
                 f"e.g. {example[:60]!r}")
        return ev

    if data.evals and state["step"] == 0:
        book.record(0, {"step": 0, **evaluate(0)})  # the base policy: where the curve starts
    step, order, cursor, tokens = state["step"], state["order"], state["cursor"], state["tokens"]
    t_start, record = time.time() - state["seconds"], {}
    while step < total:
        chosen = []
        for _ in range(per_step // B):
            if cursor + B > len(order):
                rng.shuffle(order)
                cursor = 0
            chosen += order[cursor: cursor + B]
            cursor += B
        rollout = actor.rollout([prompts[i] for i in chosen], moments if args.ppo_score_norm else None)
        stats, mean_kl, grad_norm, stepped = ppo_update(policy, rollout, kl_ctl.value, args, accelerator, optimizer,
                                                        params, train.max_grad_norm, B,
                                                        train.gradient_accumulation_steps, offload, book.guard,
                                                        step + 1)
        lr = schedule.get_last_lr()[0]
        if stepped:  # every optimiser step of this PPO step skipped (train/guard.py): the schedule waits
            schedule.step()
        step += 1
        kl_coef = kl_ctl.value  # the coefficient this step's rewards used
        if math.isfinite(mean_kl):  # a NaN KL would stick in the controller for the rest of the run
            kl_ctl.update(mean_kl, per_step)
        tokens += int(rollout.attention_mask.sum())
        now = time.time()
        record = {"step": step, "epoch": round(step * per_step / len(prompts), 4), "loss": round(stats["pg_loss"]
                  + args.ppo_vf_coef * stats["value_loss"], 6), "lr": lr, "grad_norm": round(grad_norm, 6),
                  "reward": round(float(rollout.raw_scores.mean()), 6), "kl": round(mean_kl, 6),
                  "kl_coef": round(kl_coef, 6), **{k: round(v, 6) for k, v in stats.items()},
                  "response_length": round(float(rollout.mask.sum(1).mean()), 2),
                  "truncated": round(1 - float(rollout.finished.float().mean()), 4),
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
            "skipped_steps": book.guard.skipped, "cursor": cursor, "order": order, "tokens": tokens, "seconds": now - t_start,
            "kl_ctl": kl_ctl.state_dict(), "moments": moments.state_dict(),
            "order_rng": (lambda s: [s[0], list(s[1]), s[2]])(rng.getstate())})
    book.close()
    extra = {"final_reward": record.get("reward"), "final_kl": record.get("kl"),
             "final_kl_coef": round(kl_ctl.value, 6), **({"skipped_steps": book.guard.skipped} if book.guard.skipped
                                                         else {})}
    rows = [r for r in read_jsonl(out / METRICS)[0] if "eval_reward" in r]
    if rows:  # from metrics.jsonl, so a resumed run reports where its curve started
        extra.update(eval_reward_start=rows[0]["eval_reward"], eval_reward=rows[-1]["eval_reward"],
                     eval_kl=rows[-1]["eval_kl"], eval_prompts=len(data.evals))
    return LoopResult(steps=step, epochs=step * per_step / len(prompts), tokens=tokens, trained_tokens=0,
                      seconds=time.time() - t_start, final_loss=record.get("loss"), eval_loss=None,
                      resumed_from=str(resume) if resume else None, extra=extra)
