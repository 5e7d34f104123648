"""PPO against a reward model from --stage rm. Reads top to bottom: load the policy (with its adapter and a value
head), the reference (the policy with the adapter switched off; a frozen copy for full/freeze) and the reward model;
then, each step, generate rollouts, score them, and run ppo_epochs of the clipped objective with GAE advantages."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import torch

from tuneforge.adapters import split_list
from tuneforge.config import Config
from tuneforge.infer.reward import RewardScorer
from tuneforge.recipes.common import load_frozen, load_trainable, make_accelerator, prepare_run, save_and_summarise
from tuneforge.recipes.sft import RunResult
from tuneforge.train.loop import LoopResult
from tuneforge.train.metrics import MetricsWriter, Progress
from tuneforge.train.optim import Schedule, build_optimizer, warmup_steps
from tuneforge.train.ppo import (AdaptiveKL, Rollout, RunningMoments, clean_reply, gae, left_pad, plot_rewards,
                                 policy_forward, ppo_losses, response_mask, rollout_generation_kwargs,
                                 token_rewards, whiten)
from tuneforge.train.preference import ValueHead, save_value_head
from tuneforge.utils import log


def run(cfg: Config) -> RunResult:
    t0 = time.time()
    ft, g, t = cfg.finetune, cfg.generate, cfg.train
    out, _resume, model_path, tokenizer, fmt, data = prepare_run(cfg, g.max_new_tokens)
    if not t.do_train:
        return RunResult(out, {"completed": False, "data": data.report})
    if t.save_steps:
        log.choice("no intermediate checkpoints", "ppo runs are short; only the final adapter is saved")

    accelerator, mixed, dtype = make_accelerator(cfg)
    dev = accelerator.device
    policy = load_trainable(cfg, model_path, dtype).to(dev)
    policy.v_head = ValueHead(policy.config.hidden_size).to(dev)
    ref = None
    if ft.finetuning_type in ("full", "freeze"):
        ref = load_frozen(cfg, model_path, dtype, split_list(cfg.model.adapter_name_or_path)).to(dev)
        log.choice("reference model=frozen copy", f"finetuning_type={ft.finetuning_type} changes the base weights")
    else:
        log.choice("reference model=policy with the adapter disabled", "no second copy is loaded")
    rm_is_adapter = (Path(ft.reward_model) / "adapter_config.json").is_file()
    scorer = RewardScorer(cfg.model.model_name_or_path if rm_is_adapter else ft.reward_model,
                          ft.reward_model if rm_is_adapter else None, device=str(dev))
    stop_ids = sorted({tokenizer.convert_tokens_to_ids(s) for s in fmt.stop if s in tokenizer.get_vocab()}
                      | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()))
    gen_kw = rollout_generation_kwargs(g, stop_ids, tokenizer.pad_token_id)

    B, prompts = t.per_device_train_batch_size, data.train
    per_step = B * ft.ppo_buffer_size
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.num_train_epochs * len(prompts) / per_step))
    optimizer = build_optimizer(policy, t, ft)
    schedule = Schedule(optimizer, t.lr_scheduler_type, warmup_steps(t, total), total)
    params = [p for p in policy.parameters() if p.requires_grad]
    kl_ctl, moments = AdaptiveKL(ft.ppo_kl_coef, ft.ppo_target), RunningMoments()
    metrics, progress = MetricsWriter(out, t.report_to), Progress(total, 0)
    order, rng, cursor, tokens, t_start = list(range(len(prompts))), random.Random(t.seed), len(prompts), 0, time.time()

    def rollout(batch) -> Rollout:
        ids, mask = left_pad([s.prompt_ids for s in batch], tokenizer.pad_token_id)
        ids, mask, P = ids.to(dev), mask.to(dev), ids.shape[1]
        policy.eval()
        with torch.no_grad():
            gen = policy.generate(input_ids=ids, attention_mask=mask, **gen_kw)
            resp = gen[:, P:]
            rmask = response_mask(resp, stop_ids)
            full_mask = torch.cat([mask, rmask.long()], 1)
            logprobs, values = policy_forward(policy, gen, full_mask, P, policy.v_head)
            if ref is None:
                with policy.disable_adapter():
                    ref_logprobs, _ = policy_forward(policy, gen, full_mask, P)
            else:
                ref_logprobs, _ = policy_forward(ref, gen, full_mask, P)
            texts = [clean_reply(tokenizer.decode(r[m.bool()], skip_special_tokens=True), fmt.stop)
                     for r, m in zip(resp, rmask)]
            raw = torch.tensor(scorer.score([s.prompt_messages + [{"role": "assistant", "content": x}]
                                             for s, x in zip(batch, texts)]), device=dev)
        policy.train()
        moments.update(raw)
        scores = moments.normalise(raw) if ft.ppo_score_norm else raw
        return Rollout(gen, full_mask, P, rmask, logprobs, ref_logprobs, values, scores, raw, texts)

    step = 0
    while step < total:
        buffer = []
        for _ in range(ft.ppo_buffer_size):
            if cursor + B > len(order):
                rng.shuffle(order)
                cursor = 0
            buffer.append(rollout([prompts[i] for i in order[cursor: cursor + B]]))
            cursor += B
        prepared = []
        for r in buffer:
            rewards, kl = token_rewards(r.scores, r.logprobs, r.ref_logprobs, r.mask, kl_ctl.value)
            if ft.ppo_whiten_rewards:
                rewards = whiten(rewards, r.mask, shift_mean=False)
            adv, returns = gae(rewards, r.values, r.mask, ft.ppo_gamma, ft.ppo_lam)
            prepared.append((r, whiten(adv, r.mask), returns, kl))
        stats: dict[str, float] = {}
        for _ in range(ft.ppo_epochs):
            for r, adv, returns, _kl in prepared:
                logprobs, values = policy_forward(policy, r.input_ids, r.attention_mask, r.prompt_len, policy.v_head)
                loss, s = ppo_losses(logprobs, r.logprobs, values, r.values, adv, returns, r.mask, ft.ppo_cliprange,
                                     ft.ppo_vf_coef)
                accelerator.backward(loss / len(prepared))
                for k, v in s.items():
                    stats[k] = stats.get(k, 0.0) + v / (ft.ppo_epochs * len(prepared))
            grad_norm = accelerator.clip_grad_norm_(params, t.max_grad_norm or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        lr = schedule.get_last_lr()[0]
        schedule.step()
        step += 1
        mean_kl = float(torch.stack([kl.sum(1).mean() for *_, kl in prepared]).mean())
        kl_ctl.update(mean_kl, per_step)
        step_tokens = sum(int(r.attention_mask.sum()) for r in buffer)
        tokens += step_tokens
        now = time.time()
        record = {"step": step, "epoch": round(step * per_step / len(prompts), 4), "loss": round(stats["pg_loss"]
                  + ft.ppo_vf_coef * stats["value_loss"], 6), "lr": lr, "grad_norm": round(float(grad_norm), 6),
                  "reward": round(float(torch.cat([r.raw_scores for r in buffer]).mean()), 6),
                  "kl": round(mean_kl, 6), "kl_coef": round(kl_ctl.value, 6),
                  **{k: round(v, 6) for k, v in stats.items()},
                  "response_length": round(float(torch.cat([r.mask.sum(1) for r in buffer]).mean()), 2),
                  "tokens_per_s": round(tokens / max(now - t_start, 1e-9), 2), "elapsed": round(now - t_start, 2)}
        if step % t.logging_steps == 0 or step == total:
            metrics.write(record)
            log.info(f"ppo step {step}: reward {record['reward']:.3f} · kl {record['kl']:.3f} · value loss "
                     f"{record['value_loss']:.4f} · clip fraction {record['clip_fraction']:.3f} · e.g. "
                     f"{buffer[0].responses[0][:60]!r}")
        progress.update(step, record if step % t.logging_steps == 0 else None)
    progress.close()
    metrics.close()

    head = policy.v_head
    del policy.v_head
    save_value_head(head, out).rename(out / "ppo_value_head.safetensors")  # not a reward model: another name
    plot = plot_rewards(out)
    result = LoopResult(steps=step, epochs=step * per_step / len(prompts), tokens=tokens, trained_tokens=0,
                        seconds=time.time() - t_start, final_loss=record["loss"], eval_loss=None, resumed_from=None)
    extra = {"final_reward": record["reward"], "final_kl": record["kl"], "reward_plot": plot.name if plot else None}
    summary = save_and_summarise(cfg, accelerator, policy, tokenizer, out, fmt, data, result, t0, mixed, extra)
    return RunResult(out, summary)

