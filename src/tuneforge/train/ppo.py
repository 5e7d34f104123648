"""PPO pieces: rollouts, per-token rewards with a KL penalty, generalized advantage estimation, the clipped
objective, the adaptive KL controller, and the reward plot. The recipe (recipes/ppo.py) strings them together.

Shapes: a rollout batch holds B prompts (left-padded) followed by up to T generated tokens; per-token tensors are
(B, T) over the response positions, with ``mask`` 1 on real response tokens (up to and including the first stop
token)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.train.loss import _base
from tuneforge.train.steps import optimizer_step


@dataclass
class Rollout:
    input_ids: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    prompt_len: int  # P
    mask: torch.Tensor  # (B, T) float, response tokens
    logprobs: torch.Tensor  # (B, T) policy at rollout time
    ref_logprobs: torch.Tensor  # (B, T)
    values: torch.Tensor  # (B, T)
    scores: torch.Tensor  # (B,) reward-model scores (after normalisation)
    raw_scores: torch.Tensor  # (B,)
    responses: list[str]
    temperature: float = 1.0  # the sampling temperature: log-probs are those of the distribution sampled from
    finished: torch.Tensor | None = None  # (B,) bool: the reply ended with a stop token within max_new_tokens


def rollout_generation_kwargs(g, stop_ids: list[int], pad_id: int) -> dict:
    """generate() settings for rollouts: sampling (temperature/top_p/top_k from the generation settings, default
    plain sampling at temperature 1) unless do_sample is False."""
    sample = g.do_sample is not False
    kw = {"max_new_tokens": g.max_new_tokens, "do_sample": sample, "eos_token_id": stop_ids, "pad_token_id": pad_id,
          "use_cache": True}
    if sample:
        kw.update(temperature=g.temperature or 1.0, top_p=g.top_p or 1.0, top_k=g.top_k or 0)
    if g.repetition_penalty:
        kw["repetition_penalty"] = g.repetition_penalty
    return kw


def clean_reply(text: str, stops: list[str]) -> str:
    for s in stops:
        if s and s in text:
            text = text[: text.index(s)]
    return text.strip()


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def response_mask(tokens: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """1 up to and including the first stop token of each row, 0 after it."""
    is_stop = torch.zeros_like(tokens, dtype=torch.bool)
    for s in stop_ids:
        is_stop |= tokens == s
    after = (is_stop.cumsum(1) - is_stop.long()) > 0  # strictly after the first stop
    return (~after).float()


def policy_forward(model, input_ids, attention_mask, prompt_len: int, head=None, full: bool = False,
                   temperature: float = 1.0):
    """(log-probs of the response tokens, values before each response token or None); only response positions
    go through the LM head. ``full``: the whole log-distribution at each response position, (B, T, V).
    ``temperature``: log-probs of the tempered distribution rollouts were sampled from (as TRL does), so the
    ratio and the KL refer to the policy that acted."""
    base = _base(model)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                use_cache=False).last_hidden_state[:, prompt_len - 1:-1]
    logits = base.get_output_embeddings()(hidden).float()
    logprobs = torch.log_softmax(logits / temperature if temperature != 1.0 else logits, -1)
    if not full:
        logprobs = logprobs.gather(-1, input_ids[:, prompt_len:, None]).squeeze(-1)
    values = head(hidden) if head is not None else None
    return logprobs, values


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, total=None) -> torch.Tensor:
    """``x`` shifted and scaled to mean 0, variance 1 over the tokens of ``mask``. ``total``: sums a tensor over
    every process (several processes: the mean and variance are those of every process's tokens, so a 2-process
    step whitens exactly as one process holding the whole batch)."""
    total = total or (lambda t: t)
    s = total(torch.stack([(x * mask).sum(), mask.sum()]).float())
    n = s[1].clamp(min=1)
    mean = s[0] / n
    var = total((((x - mean) * mask) ** 2).sum().float()) / n
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return (out if shift_mean else out + mean) * mask


def token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef × (log π - log π_ref) at every response token, plus the score at the last one.
    Returns (rewards, per-token KL)."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards * mask, kl


def gae(rewards, values, mask, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over the response tokens: (advantages, returns)."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], device=rewards.device)
    values = values * mask
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last * (mask[:, t + 1] if t + 1 < T else 0)
        adv[:, t] = last
    adv = adv * mask
    return adv, (adv + values) * mask


def ppo_losses(logprobs, old_logprobs, values, old_values, advantages, returns, mask, cliprange: float,
               vf_coef: float, n: torch.Tensor | float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped policy objective plus clipped value loss (both token-averaged), and their statistics. ``n``: the
    token count to average over (default: this mask's tokens; several processes: the mini-batch's tokens over
    every process, so that the processes' shares add up to the global token average)."""
    n = mask.sum().clamp(min=1) if n is None else n
    ratio = torch.exp(logprobs - old_logprobs)
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    pg_loss = (torch.max(pg1, pg2) * mask).sum() / n
    v_clipped = old_values + (values - old_values).clamp(-cliprange, cliprange)
    vf_loss = 0.5 * (torch.max((values - returns) ** 2, (v_clipped - returns) ** 2) * mask).sum() / n
    clipfrac = (((pg2 > pg1).float()) * mask).sum() / n
    loss = pg_loss + vf_coef * vf_loss
    pg_loss, vf_loss = pg_loss.detach(), vf_loss.detach()
    return loss, {"pg_loss": float(pg_loss), "value_loss": float(vf_loss), "clip_fraction": float(clipfrac),
                  "approx_kl": float((0.5 * ((logprobs.detach() - old_logprobs) ** 2) * mask).sum() / n)}


def minibatch(r: Rollout, rows: slice) -> Rollout:
    """The rows ``rows`` of a rollout batch (the responses trimmed to their longest real reply)."""
    width, P = int(r.mask[rows].sum(1).max()), r.prompt_len
    return Rollout(r.input_ids[rows, : P + width], r.attention_mask[rows, : P + width], P, r.mask[rows, :width],
                   r.logprobs[rows, :width], r.ref_logprobs[rows, :width], r.values[rows, :width], r.scores[rows],
                   r.raw_scores[rows], r.responses[rows], r.temperature,
                   None if r.finished is None else r.finished[rows])


def ppo_update(policy, rollout: Rollout, kl_coef: float, ft, accelerator, optimizer, params, max_grad_norm: float,
               mini_batch_size: int, accumulation: int = 1, offload=contextlib.nullcontext, guard=None,
               step: int = 0) -> tuple[dict[str, float], float, float, int]:
    """Rewards with the KL penalty and GAE advantages for the whole step's rollouts (advantages whitened over all of
    them), then ppo_epochs passes over them in mini-batches of ``mini_batch_size`` rows, one optimiser step every
    ``accumulation`` mini-batches (as TRL's and LLaMA-Factory's mini_batch_size / gradient accumulation). ``policy``:
    the PolicyWithValueHead to train, as the engine wrapped it (DDP: gradients are averaged over the processes in
    its backward); ``ft``: the ppo settings; ``offload``: train/memory.py's activation offloading; ``guard``:
    train/guard.py's, which skips an optimiser step whose loss or gradient norm is not finite (``step``: the PPO
    step, for its messages). Returns (loss statistics averaged over the passes, mean KL per reply, last gradient
    norm, optimiser steps taken).

    Several processes: each holds its own rows of every mini-batch (train/ppo_loop.py's sharding). Whitening, the
    token counts, the statistics and the KL are summed over every process, and each process's loss is its tokens'
    sum over the mini-batch's token count on every process, × world size because DDP averages the gradients — so
    the step is the one a single process holding the whole batch takes."""
    r, world = rollout, accelerator.num_processes
    total = (lambda t: accelerator.reduce(t, "sum")) if world > 1 else (lambda t: t)
    rewards, kl = token_rewards(r.scores, r.logprobs, r.ref_logprobs, r.mask, kl_coef)
    if ft.ppo_whiten_rewards:
        rewards = whiten(rewards, r.mask, shift_mean=False, total=total)
    adv, returns = gae(rewards, r.values, r.mask, ft.ppo_gamma, ft.ppo_lam)
    adv = whiten(adv, r.mask, total=total)
    n = r.input_ids.shape[0]
    chunks = [slice(i, i + mini_batch_size) for i in range(0, n, mini_batch_size)]
    # every mini-batch's response tokens over every process, in one all-reduce
    counts = total(torch.stack([r.mask[c].sum() for c in chunks]).float()).clamp(min=1)
    sums: dict[str, float] = {}
    grad_norm, steps, passes, window = 0.0, 0, ft.ppo_epochs * len(chunks), 0.0
    for _ in range(ft.ppo_epochs):
        for j, rows in enumerate(chunks):
            mb = minibatch(r, rows)
            width = mb.mask.shape[1]
            group = min(accumulation, len(chunks) - (j // accumulation) * accumulation)
            last = (j + 1) % accumulation == 0 or j + 1 == len(chunks)
            sync = contextlib.nullcontext() if last else accelerator.no_sync(policy)
            with sync, accelerator.autocast(), offload():
                logprobs, values = policy(mb.input_ids, mb.attention_mask, mb.prompt_len, temperature=mb.temperature)
                loss, s = ppo_losses(logprobs, mb.logprobs, values, mb.values, adv[rows, :width],
                                     returns[rows, :width], mb.mask, ft.ppo_cliprange, ft.ppo_vf_coef, counts[j])
                accelerator.backward(loss * world / group)
            window += float(loss.detach()) / group
            for k, v in s.items():
                sums[k] = sums.get(k, 0.0) + v / passes
            if last:  # the loss the guard sees is the same on every process: the global token average
                window = float(total(torch.tensor(window, device=counts.device))) if world > 1 else window
                norm, stepped = optimizer_step(accelerator, params, optimizer, max_grad_norm, guard, step, window)
                grad_norm, steps, window = float(norm), steps + int(stepped), 0.0
    names = sorted(sums)
    # one all-reduce: the statistics (each process's share of the global averages), the KL and the reply count
    g = total(torch.tensor([sums[k] for k in names] + [float(kl.sum()), float(n)], device=counts.device,
                           dtype=torch.float64))
    stats = {k: float(v) for k, v in zip(names, g[:len(names)])}
    return stats, float(g[-2] / g[-1]), grad_norm, steps


class AdaptiveKL:
    """Ziegler et al. (2019): move the KL coefficient so the observed KL tracks ``target``. Each update multiplies
    the coefficient by 1 + e·n/horizon, e = clip(KL/target − 1, ±0.2), n = rollouts in the step: with TRL's and
    LLaMA-Factory's horizon of 10,000 rollouts the coefficient barely moves in a run of a few hundred rollouts, so
    short runs need a horizon near the rollouts per step (ppo_kl_horizon)."""

    def __init__(self, init: float, target: float, horizon: int = 10000):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, kl: float, n: int) -> None:
        if self.target <= 0:  # fixed coefficient
            return
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.value *= 1 + error * n / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class RunningMoments:
    """Running mean/std of reward-model scores (ppo_score_norm)."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, x: torch.Tensor) -> None:
        m, v, n = float(x.mean()), float(x.var(unbiased=False)) if x.numel() > 1 else 0.0, x.numel()
        delta, total = m - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / math.sqrt(self.var + 1e-8)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


def plot_rewards(out: Path, metrics_file: str = "metrics.jsonl") -> Path | None:
    """ppo_reward.png: mean reward (of the sampled rollouts and, where evaluated, of the greedy replies to the
    held-out prompts) and KL to the reference per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tuneforge.utils.atomic import read_jsonl

    rows = read_jsonl(out / metrics_file)[0]
    train = [r for r in rows if "reward" in r]
    held = [r for r in rows if "eval_reward" in r]
    if not train and not held:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    curves = ((a, "reward", "rollouts (sampled)", "#9ecae1"), (a, "eval_reward", "held-out prompts (greedy)",
              "#08519c"), (b, "kl", "rollouts (sampled)", "#fc9272"), (b, "eval_kl", "held-out prompts (greedy)",
              "#a50f15"))
    for ax, key, label, color in curves:
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), color=color, marker="o", label=label)
    a.set_xlabel("step"), a.set_ylabel("mean reward-model score"), a.grid(alpha=0.3), a.legend()
    b.set_xlabel("step"), b.set_ylabel("KL to the reference (nats per reply)"), b.grid(alpha=0.3), b.legend()
    fig.suptitle(f"PPO on {out.name}")
    fig.tight_layout()
    path = out / "ppo_reward.png"
    fig.savefig(path)
    plt.close(fig)
    return path
