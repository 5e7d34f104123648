"""PPO's actor side: generate replies with the policy, score them with the reward model, and measure the policy
against the reference — sampled rollouts for training, greedy replies to held-out prompts for evaluation."""

from __future__ import annotations

import contextlib

import torch

from tuneforge.train.ppo import Rollout, clean_reply, left_pad, policy_forward, response_mask, \
    rollout_generation_kwargs


class Actor:
    """``policy``: a PolicyWithValueHead (the module itself, not the engine's wrapper: generation needs no gradient
    synchronisation); ``ref``: a frozen reference model, or None to use the policy with its adapter switched off.
    ``accelerator``: several processes each roll out their own prompts; the running score statistics and the
    held-out figures are over every process's rows."""

    def __init__(self, policy, ref, scorer, tokenizer, fmt, gen_args, device, missing_eos_penalty: float = 0.0,
                 accelerator=None):
        self.policy, self.ref, self.scorer, self.tokenizer, self.fmt, self.device = (policy, ref, scorer, tokenizer,
                                                                                    fmt, device)
        self.missing_eos_penalty = missing_eos_penalty
        many = accelerator is not None and accelerator.num_processes > 1
        self.total = (lambda t: accelerator.reduce(t, "sum")) if many else (lambda t: t)
        self.gather = accelerator.gather if many else (lambda t: t)
        vocab = tokenizer.get_vocab()
        self.stop_ids = sorted({tokenizer.convert_tokens_to_ids(s) for s in fmt.stop if s in vocab}
                               | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()))
        self.sample_kw = rollout_generation_kwargs(gen_args, self.stop_ids, tokenizer.pad_token_id)
        self.greedy_kw = {k: v for k, v in self.sample_kw.items() if k not in ("temperature", "top_p", "top_k")}
        self.greedy_kw["do_sample"] = False

    def _ref_forward(self, ids, mask, P, full=False, temperature=1.0):
        if self.ref is not None:
            return policy_forward(self.ref, ids, mask, P, full=full, temperature=temperature)[0]
        with self.policy.lm.disable_adapter():
            return policy_forward(self.policy.lm, ids, mask, P, full=full, temperature=temperature)[0]

    def _generate(self, batch, kw):
        ids, mask = left_pad([s.prompt_ids for s in batch], self.tokenizer.pad_token_id)
        ids, mask, P = ids.to(self.device), mask.to(self.device), ids.shape[1]
        gen = self.policy.lm.generate(input_ids=ids, attention_mask=mask, **kw)
        rmask = response_mask(gen[:, P:], self.stop_ids)
        texts = [clean_reply(self.tokenizer.decode(r[m.bool()], skip_special_tokens=True), self.fmt.stop)
                 for r, m in zip(gen[:, P:], rmask)]
        return gen, torch.cat([mask, rmask.long()], 1), P, rmask, texts

    def _score(self, batch, texts) -> torch.Tensor:
        """The reward model's scores in its own precision (outside the policy's autocast), as `tuneforge score`
        gives them."""
        convs = [s.prompt_messages + [{"role": "assistant", "content": x}] for s, x in zip(batch, texts)]
        with torch.autocast(torch.device(self.device).type, enabled=False):
            return torch.tensor(self.scorer.score(convs), device=self.device)

    def sampling_seed(self, seed: int | None):
        """Sampling from its own seed (torch's generator state around it untouched), so that a step's replies
        depend on the step and the process only, not on what ran before (dropout, an earlier run resumed)."""
        if seed is None:
            return contextlib.nullcontext()
        dev = torch.device(self.device)
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []

        @contextlib.contextmanager
        def forked():
            with torch.random.fork_rng(devices=devices):
                torch.random.default_generator.manual_seed(seed)
                if devices:  # this process's GPU only: fork_rng restores no other
                    torch.cuda.manual_seed(seed)
                yield

        return forked()

    @torch.no_grad()
    def rollout(self, batch, moments=None, seed: int | None = None) -> Rollout:
        """Sampled replies with their log-probs (policy, reference), values and scores; a reply cut off by
        max_new_tokens loses ``missing_eos_penalty``; ``moments`` (running score statistics) normalises the scores
        when given, updated with every process's scores. ``raw_scores`` stay the reward model's own. ``seed``: the
        sampling seed of this step on this process."""
        self.policy.eval()
        with self.sampling_seed(seed):
            gen, full_mask, P, rmask, texts = self._generate(batch, self.sample_kw)
        temp = self.sample_kw.get("temperature", 1.0)
        logprobs, values = policy_forward(self.policy.lm, gen, full_mask, P, self.policy.v_head, temperature=temp)
        ref_logprobs = self._ref_forward(gen, full_mask, P, temperature=temp)
        raw = self._score(batch, texts)
        self.policy.train()
        scores = raw
        finished = torch.isin(gen[:, P:], torch.tensor(self.stop_ids, device=gen.device)).any(1)
        if self.missing_eos_penalty:
            scores = raw - self.missing_eos_penalty * (~finished).float()
        if moments is not None:
            moments.update(self.gather(scores))
            scores = moments.normalise(scores)
        return Rollout(gen, full_mask, P, rmask, logprobs, ref_logprobs, values, scores, raw, texts, temp, finished)

    @torch.no_grad()
    def evaluate(self, samples, batch_size: int) -> tuple[dict, str]:
        """Greedy replies to held-out prompts (several processes: each its own share of them): mean reward-model
        score, exact KL to the reference along each reply (Σ over its tokens of KL(π(·|prefix) ‖ π_ref(·|prefix)),
        nats) and mean length, over every process's replies; and one reply of this process."""
        self.policy.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # reward, KL, length, replies
        example = ""
        for i in range(0, len(samples), batch_size):
            batch = samples[i: i + batch_size]
            gen, full_mask, P, rmask, texts = self._generate(batch, self.greedy_kw)
            logp = policy_forward(self.policy.lm, gen, full_mask, P, full=True)[0]
            ref_logp = self._ref_forward(gen, full_mask, P, full=True)
            kl = ((logp.exp() * (logp - ref_logp)).sum(-1) * rmask).sum(1)
            sums += torch.stack([self._score(batch, texts).sum(), kl.sum(), rmask.sum(), torch.tensor(
                float(len(batch)), device=self.device)]).double()
            example = example or texts[0]
        self.policy.train()
        sums = self.total(sums)
        n = max(float(sums[3]), 1.0)
        return {"eval_reward": round(float(sums[0]) / n, 6), "eval_kl": round(float(sums[1]) / n, 6),
                "eval_response_length": round(float(sums[2]) / n, 2)}, example
