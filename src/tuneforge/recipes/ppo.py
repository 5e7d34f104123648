"""PPO against a reward model from --stage rm. Reads top to bottom: load the policy (with its adapter and a value
head), the reference (the policy with the adapter switched off; a frozen copy for full/freeze) and the reward model;
then, each step, generate rollouts, score them, and run ppo_epochs of the clipped objective with GAE advantages.
Held-out prompts (eval_dataset / val_size) get greedy replies scored before training and every eval_steps;
checkpoints (save_steps) hold the adapter, value head, optimiser, KL controller, score statistics and RNG states."""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from pathlib import Path

from tuneforge import compat
from tuneforge.adapters import method, split_list
from tuneforge.config import Config
from tuneforge.infer.reward import RewardScorer
from tuneforge.recipes.common import load_frozen, load_trainable, make_accelerator, prepare_run, save_and_summarise
from tuneforge.recipes.sft import RunResult
from tuneforge.train.checkpoint import load_checkpoint, save_checkpoint
from tuneforge.train.loop import LoopResult
from tuneforge.train.metrics import METRICS, MetricsWriter, Progress
from tuneforge.train.optim import Schedule, build_optimizer, warmup_steps
from tuneforge.train.ppo import AdaptiveKL, RunningMoments, plot_rewards, ppo_update
from tuneforge.train.preference import ValueHead, save_value_head
from tuneforge.train.rollout import Actor
from tuneforge.utils import log
from tuneforge.utils.system import peak_memory_mb


def run(cfg: Config) -> RunResult:
    t0 = time.time()
    ft, t = cfg.ppo, cfg.train
    out, resume, model_path, tokenizer, fmt, data = prepare_run(cfg, cfg.generate.max_new_tokens)
    if not t.do_train:
        return RunResult(out, {"completed": False, "data": data.report})

    accelerator, mixed, dtype = make_accelerator(cfg)
    dev = accelerator.device
    policy = load_trainable(cfg, model_path, dtype).to(dev)
    policy.v_head = ValueHead(policy.config.hidden_size).to(dev)  # a submodule: trained, checkpointed
    ref = None
    if not method(cfg.finetune.finetuning_type).adapter:
        ref = load_frozen(cfg, model_path, dtype, split_list(cfg.model.adapter_name_or_path)).to(dev)
        log.choice("reference model=frozen copy", f"finetuning_type={cfg.finetune.finetuning_type} changes the "
                   "base weights")
    else:
        log.choice("reference model=policy with the adapter disabled", "no second copy is loaded")
    rm_is_adapter = (Path(ft.reward_model) / "adapter_config.json").is_file()
    scorer = RewardScorer(cfg.model.model_name_or_path if rm_is_adapter else ft.reward_model,
                          ft.reward_model if rm_is_adapter else None, device=str(dev))
    actor = Actor(policy, ref, scorer, tokenizer, fmt, cfg.generate, dev, ft.ppo_missing_eos_penalty)

    B, prompts = t.per_device_train_batch_size, data.train
    batches = t.gradient_accumulation_steps * ft.ppo_buffer_size  # mini-batches of B rollouts per step
    per_step = B * batches
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.num_train_epochs * len(prompts) / per_step))
    optimizer = build_optimizer(policy, t, cfg)
    schedule = Schedule(optimizer, t.lr_scheduler_type, warmup_steps(t, total), total)
    params = [p for p in policy.parameters() if p.requires_grad]
    kl_ctl, moments = AdaptiveKL(ft.ppo_kl_coef, ft.ppo_target, ft.ppo_kl_horizon), RunningMoments()
    log.choice(f"kl controller: target {ft.ppo_target}, horizon {ft.ppo_kl_horizon} rollouts" if ft.ppo_target > 0
               else f"kl coefficient fixed at {ft.ppo_kl_coef}", f"ppo_target={ft.ppo_target}")
    log.choice(f"ppo: {per_step} rollouts per step, {ft.ppo_buffer_size} optimiser step(s) per epoch over "
               f"mini-batches of {B}", f"per_device_train_batch_size={B} × gradient_accumulation_steps="
               f"{t.gradient_accumulation_steps} × ppo_buffer_size={ft.ppo_buffer_size}; ppo_epochs={ft.ppo_epochs}")
    state = {"step": 0, "cursor": len(prompts), "order": list(range(len(prompts))), "tokens": 0, "seconds": 0.0}
    rng = random.Random(t.seed)
    if resume is not None:
        state.update(load_checkpoint(resume, policy, optimizer, schedule))
        kl_ctl.load_state_dict(state["kl_ctl"])
        moments.load_state_dict(state["moments"])
        v, internal, gauss = state["order_rng"]
        rng.setstate((v, tuple(internal), gauss))
        log.info(f"resumed from {resume} at step {state['step']} (kl_coef {kl_ctl.value:.4g})")
    metrics = MetricsWriter(out, t.report_to, state["step"])
    progress = Progress(total, state["step"])
    eval_every = t.eval_steps or t.logging_steps

    def evaluate(step: int) -> dict:
        ev, example = actor.evaluate(data.eval, t.per_device_eval_batch_size)
        log.info(f"held-out prompts at step {step}: reward {ev['eval_reward']:.3f} · kl {ev['eval_kl']:.3f} · "
                 f"e.g. {example[:60]!r}")
        return ev

    if data.eval and state["step"] == 0:
        metrics.write({"step": 0, **evaluate(0)})  # the base policy: where the curve starts
    step, order, cursor, tokens = state["step"], state["order"], state["cursor"], state["tokens"]
    t_start = time.time() - state["seconds"]
    cast = contextlib.ExitStack()  # peft's input cast off while training (compat.py)
    cast.enter_context(compat.lora_inputs_in_compute_dtype(policy))
    while step < total:
        chosen = []
        for _ in range(batches):
            if cursor + B > len(order):
                rng.shuffle(order)
                cursor = 0
            chosen += order[cursor: cursor + B]
            cursor += B
        rollout = actor.rollout([prompts[i] for i in chosen], moments if ft.ppo_score_norm else None)
        stats, mean_kl, grad_norm, _ = ppo_update(policy, rollout, kl_ctl.value, ft, accelerator, optimizer, params,
                                                  t.max_grad_norm, B, t.gradient_accumulation_steps)
        lr = schedule.get_last_lr()[0]
        schedule.step()
        step += 1
        kl_coef = kl_ctl.value  # the coefficient this step's rewards used
        kl_ctl.update(mean_kl, per_step)
        tokens += int(rollout.attention_mask.sum())
        now = time.time()
        record = {"step": step, "epoch": round(step * per_step / len(prompts), 4), "loss": round(stats["pg_loss"]
                  + ft.ppo_vf_coef * stats["value_loss"], 6), "lr": lr, "grad_norm": round(grad_norm, 6),
                  "reward": round(float(rollout.raw_scores.mean()), 6),
                  "kl": round(mean_kl, 6), "kl_coef": round(kl_coef, 6),
                  **{k: round(v, 6) for k, v in stats.items()},
                  "response_length": round(float(rollout.mask.sum(1).mean()), 2),
                  "truncated": round(1 - float(rollout.finished.float().mean()), 4),
                  "tokens_per_s": round(tokens / max(now - t_start, 1e-9), 2), "elapsed": round(now - t_start, 2)}
        logged = step % t.logging_steps == 0 or step == total
        if logged:
            log.info(f"ppo step {step}: reward {record['reward']:.3f} · kl {record['kl']:.3f} · kl_coef "
                     f"{kl_coef:.4f} · value loss {record['value_loss']:.4f} · clip fraction "
                     f"{record['clip_fraction']:.3f} · e.g. {rollout.responses[0][:60]!r}")
        evaluated = data.eval and (step % eval_every == 0 or step == total)
        if logged or evaluated:
            metrics.write({**(record if logged else {"step": step}), **(evaluate(step) if evaluated else {})})
        progress.update(step, record if logged else None)
        if t.save_steps and step % t.save_steps == 0 and step < total:
            save_checkpoint(out, step, policy, optimizer, schedule, {
                "step": step, "cursor": cursor, "order": order, "tokens": tokens, "seconds": now - t_start,
                "total_steps": total, "kl_ctl": kl_ctl.state_dict(), "moments": moments.state_dict(),
                "order_rng": (lambda s: [s[0], list(s[1]), s[2]])(rng.getstate()),
                "peak_memory_mb": peak_memory_mb()}, t.save_total_limit)
    cast.close()
    progress.close()
    metrics.close()

    head = policy.v_head
    del policy.v_head
    save_value_head(head, out).rename(out / "ppo_value_head.safetensors")  # not a reward model: another name
    plot = plot_rewards(out)
    result = LoopResult(steps=step, epochs=step * per_step / len(prompts), tokens=tokens, trained_tokens=0,
                        seconds=time.time() - t_start, final_loss=record["loss"], eval_loss=None,
                        resumed_from=str(resume) if resume else None)
    rows = [json.loads(x) for x in (out / METRICS).read_text().splitlines() if "eval_reward" in x]
    extra = {"final_reward": record["reward"], "final_kl": record["kl"], "final_kl_coef": round(kl_ctl.value, 6),
             "reward_plot": plot.name if plot else None}
    if rows:
        extra.update(eval_reward_start=rows[0]["eval_reward"], eval_reward=rows[-1]["eval_reward"],
                     eval_kl=rows[-1]["eval_kl"], eval_prompts=len(data.eval))
    summary = save_and_summarise(cfg, accelerator, policy, tokenizer, out, fmt, data, result, t0, mixed, extra)
    return RunResult(out, summary)

