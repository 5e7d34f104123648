"""Decoding through prompt-based adapters (prefix, ptuning, ptuning_v2, prompt) with the positions used in training.

peft's ``generate`` for prompt-learning adapters does not reproduce the adapter's forward under transformers 5.x:
its ``prepare_inputs_for_generation`` still looks for ``past_key_values``/``cache_position`` (renamed ``cache`` and
gone from Llama's forward), so tokens get positions that ignore the virtual tokens, and on SmolLM2 a P-Tuning
adapter that answers fluently by forward answered garbage through ``generate``. This loop calls the base model
directly with exactly what ``PeftModel.forward`` gives it in training (``train/loss.py``), plus a KV cache:

* ``prefix``/``ptuning_v2``: the cache starts with the ``n`` virtual key/value pairs (``get_prompt``); input token
  ``i`` sits at position ``n + i`` and attends to every virtual token — as in training, where the model derives the
  positions from the cache length.
* ``ptuning``/``prompt``: ``n`` virtual embeddings are prepended (positions ``0..n-1``), input token ``i`` sits at
  ``n + i``; after the prefill the virtual tokens live in the cache like any other context.

Left padding (batched chat) is handled with the attention mask and explicit position ids, so a padded row decodes
exactly as it would alone. Greedy decoding therefore equals the argmax of the training forward at every step
(tests/test_prompt_methods.py).
"""

from __future__ import annotations

import torch

from tuneforge import compat


def _cache_arg(base: torch.nn.Module) -> str:
    return compat.cache_kwarg(base.forward)


def _out_cache(out):
    return out.get("cache") if out.get("cache") is not None else out.get("past_key_values")


def logits_processors(args) -> "list":
    """transformers' own processors for the sampling settings a GenerateArgs asks for (empty for greedy)."""
    from transformers.generation import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                         TopKLogitsWarper, TopPLogitsWarper)

    procs = []
    if args.get("repetition_penalty") not in (None, 1.0):
        procs.append(RepetitionPenaltyLogitsProcessor(args["repetition_penalty"]))
    if args.get("do_sample"):
        if args.get("temperature") not in (None, 1.0):
            procs.append(TemperatureLogitsWarper(args["temperature"]))
        if args.get("top_k"):
            procs.append(TopKLogitsWarper(args["top_k"]))
        if args.get("top_p") not in (None, 1.0):
            procs.append(TopPLogitsWarper(args["top_p"]))
    return procs


@torch.no_grad()
def generate_prompt_model(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
                          eos_token_id: list[int] | int | None = None, pad_token_id: int | None = None,
                          do_sample: bool = False, temperature=None, top_p=None, top_k=None,
                          repetition_penalty=None, stop_strings: list[str] | None = None, tokenizer=None,
                          streamer=None, min_new_tokens: int = 0, logits_processor=None,
                          **_ignored) -> torch.Tensor:
    """Like ``model.generate`` (returns prompt + new tokens, finished rows padded) for a PeftModel whose active
    adapter is prompt-based. Takes the keyword arguments ``ChatEngine.gen_kwargs`` produces; ``logits_processor``
    (callables ``(ids, scores) -> scores``, as in transformers) run first on each step's raw logits."""
    cfg = model.active_peft_config
    n = int(cfg.num_virtual_tokens)
    base = model.get_base_model()
    cache_arg = _cache_arg(base)
    b = input_ids.shape[0]
    dev = input_ids.device
    stops = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []),
                         dtype=torch.long, device=dev)
    pad = pad_token_id if pad_token_id is not None else (int(stops[0]) if len(stops) else 0)
    procs = logits_processors({"repetition_penalty": repetition_penalty, "do_sample": do_sample,
                               "temperature": temperature, "top_k": top_k, "top_p": top_p})
    procs = list(logits_processor or []) + procs

    mask = torch.cat([attention_mask.new_ones(b, n), attention_mask], 1)
    pos = n + (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # real token i at n + i, as in training
    if str(getattr(cfg.peft_type, "value", cfg.peft_type)) == "PREFIX_TUNING":
        out = base(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                   **{cache_arg: model.get_prompt(batch_size=b, max_cache_len=-1)}, use_cache=True)
    else:
        embeds = model.word_embeddings(input_ids)
        prompts = model.get_prompt(batch_size=b).to(embeds.dtype)
        virtual_pos = torch.arange(n, device=dev).expand(b, n)
        out = base(inputs_embeds=torch.cat([prompts, embeds], 1), attention_mask=mask,
                   position_ids=torch.cat([virtual_pos, pos], 1), use_cache=True)
    cache, next_pos = _out_cache(out), pos[:, -1:] + 1

    if streamer is not None:
        streamer.put(input_ids.cpu())
    seq = input_ids
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    for step in range(max_new_tokens):
        logits = out.logits[:, -1, :].float()
        for p in procs:
            logits = p(seq, logits)
        if step < min_new_tokens and len(stops):
            logits[:, stops] = float("-inf")
        tok = (torch.multinomial(torch.softmax(logits, -1), 1)[:, 0] if do_sample else logits.argmax(-1))
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        seq = torch.cat([seq, tok[:, None]], 1)
        if streamer is not None:
            streamer.put(tok.cpu())
        if len(stops):
            done |= torch.isin(tok, stops)
        if stop_strings and tokenizer is not None:
            for r in range(b):
                if not done[r]:
                    text = tokenizer.decode(seq[r, input_ids.shape[1]:], skip_special_tokens=False)
                    done[r] = any(s in text for s in stop_strings)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(b, 1)], 1)
        out = base(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                   **{cache_arg: cache}, use_cache=True)
        cache, next_pos = _out_cache(out), next_pos + 1
    if streamer is not None:
        streamer.end()
    return seq
