"""PPO against a reward model from --stage rm. Reads top to bottom: load the policy with its value head, the
reference (the policy with the adapter switched off; a frozen copy for full/freeze) and the reward model; then the
PPO loop (train/ppo_loop.py) generates rollouts, scores them and runs the clipped objective each step. Several
processes run DDP (train/distributed.py refuses the sharded engines): each process rolls out its share of the
prompts; rank 0 saves."""

from __future__ import annotations

from tuneforge import compat
from tuneforge.config import Config
from tuneforge.infer.reward import RewardScorer
from tuneforge.recipes.common import (RunResult, finish, load_policy, load_reference, make_accelerator,
                                      prepare_run)
from tuneforge.train.ppo import plot_rewards
from tuneforge.train.ppo_loop import PpoData, ppo_loop, ppo_steps
from tuneforge.train.rollout import Actor
from tuneforge.train.steps import optimizer_and_schedule
from tuneforge.train.value_head import PolicyWithValueHead

HEAD = "ppo_value_head.safetensors"  # a value head, not a reward model: another name than rm's


def run(cfg: Config) -> RunResult:
    ppo, t = cfg.ppo, cfg.train
    run = prepare_run(cfg, cfg.generate.max_new_tokens)
    if not t.do_train:
        return run.validated_only()
    accelerator, mixed, dtype = make_accelerator(cfg)
    dev = accelerator.device
    policy = PolicyWithValueHead(load_policy(cfg, run, dtype)[0].to(dev))
    ref = load_reference(cfg, run, dtype, dev)
    scorer = RewardScorer.for_reward_model(cfg.model.model_name_or_path, ppo.reward_model, device=str(dev))
    actor = Actor(policy, ref, scorer, run.tokenizer, run.fmt, cfg.generate, dev, ppo.ppo_missing_eos_penalty,
                  accelerator)
    total = ppo_steps(len(run.data.train), t, ppo, accelerator.num_processes)[0]
    optimizer, schedule = optimizer_and_schedule(policy, cfg, total)
    with compat.lora_inputs_in_compute_dtype(policy):  # peft's input cast off while training (compat.py)
        result = ppo_loop(policy, actor, PpoData(run.data.train, run.data.eval), optimizer, schedule, ppo, t,
                          run.out, accelerator, run.resume)
    plot = None
    if accelerator.is_main_process:  # the head next to the LM, which finish() saves on the shared path
        policy.save_head(run.out, HEAD)
        plot = plot_rewards(run.out)
    return finish(cfg, run, accelerator, policy.lm, result, mixed, {"reward_plot": plot.name if plot else None},
                  extra_trainable=sum(p.numel() for p in policy.v_head.parameters()))
