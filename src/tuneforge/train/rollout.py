"""PPO's actor side: generate replies with the policy, score them with the reward model, and measure the policy
against the reference — sampled rollouts for training, greedy replies to held-out prompts for evaluation."""

from __future__ import annotations

import torch

from tuneforge.train.ppo import Rollout, clean_reply, left_pad, policy_forward, response_mask, \
    rollout_generation_kwargs


class Actor:
    """``policy``: a PolicyWithValueHead; ``ref``: a frozen reference model, or None to use the policy with its
    adapter switched off."""

    def __init__(self, policy, ref, scorer, tokenizer, fmt, gen_args, device, missing_eos_penalty: float = 0.0):
        self.policy, self.ref, self.scorer, self.tokenizer, self.fmt, self.device = (policy, ref, scorer, tokenizer,
                                                                                    fmt, device)
        self.missing_eos_penalty = missing_eos_penalty
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
        convs = [s.prompt_messages + [{"role": "assistant", "content": x}] for s, x in zip(batch, texts)]
        return torch.tensor(self.scorer.score(convs), device=self.device)

    @torch.no_grad()
    def rollout(self, batch, moments=None) -> Rollout:
        """Sampled replies with their log-probs (policy, reference), values and scores; a reply cut off by
        max_new_tokens loses ``missing_eos_penalty``; ``moments`` (running score statistics) normalises the scores
        when given. ``raw_scores`` stay the reward model's own."""
        self.policy.eval()
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
            moments.update(scores)
            scores = moments.normalise(scores)
        return Rollout(gen, full_mask, P, rmask, logprobs, ref_logprobs, values, scores, raw, texts, temp, finished)

    @torch.no_grad()
    def evaluate(self, samples, batch_size: int) -> tuple[dict, str]:
        """Greedy replies to held-out prompts: mean reward-model score, exact KL to the reference along each reply
        (Σ over its tokens of KL(π(·|prefix) ‖ π_ref(·|prefix)), nats) and mean length; and one reply."""
        self.policy.eval()
        rewards, kls, lengths, example = [], [], [], ""
        for i in range(0, len(samples), batch_size):
            batch = samples[i: i + batch_size]
            gen, full_mask, P, rmask, texts = self._generate(batch, self.greedy_kw)
            logp = policy_forward(self.policy.lm, gen, full_mask, P, full=True)[0]
            ref_logp = self._ref_forward(gen, full_mask, P, full=True)
            kls.append(((logp.exp() * (logp - ref_logp)).sum(-1) * rmask).sum(1))
            rewards.append(self._score(batch, texts))
            lengths.append(rmask.sum(1))
            example = example or texts[0]
        self.policy.train()
        return {"eval_reward": round(float(torch.cat(rewards).mean()), 6),
                "eval_kl": round(float(torch.cat(kls).mean()), 6),
                "eval_response_length": round(float(torch.cat(lengths).mean()), 2)}, example
