"""Reward model: the LM plus a scalar value head, trained with the pairwise (Bradley-Terry) loss on chosen/rejected
pairs. Saves the adapter (or model) and value_head.safetensors next to it; reports pairwise accuracy on the held-out
pairs (val_size or eval_dataset). Reads top to bottom."""

from __future__ import annotations

import time

from tuneforge.config import Config
from tuneforge.recipes.common import load_trainable, make_accelerator, prepare_run, save_and_summarise, save_everything
from tuneforge.recipes.sft import RunResult
from tuneforge.train import distributed
from tuneforge.train.loop import evaluate, train_loop
from tuneforge.train.preference import RewardObjective, ValueHead, save_value_head
from tuneforge.utils import log


def run(cfg: Config) -> RunResult:
    t0 = time.time()
    out, resume, model_path, tokenizer, fmt, data = prepare_run(cfg)
    if not cfg.train.do_train:
        return RunResult(out, {"completed": False, "data": data.report})

    accelerator, mixed, dtype = make_accelerator(cfg)
    model = load_trainable(cfg, model_path, dtype)
    # The head is attached to the model so that the optimiser and the checkpoints see its parameters.
    model.v_head = ValueHead(model.config.hidden_size).to(next(model.parameters()).device)
    objective = RewardObjective(model)
    result = train_loop(model, data.train, data.eval, cfg.train, cfg, out, tokenizer.pad_token_id,
                        accelerator, resume, objective=objective)

    extra = {}
    if data.eval:
        eval_loss, stats = evaluate(objective, data.eval, cfg.train, tokenizer.pad_token_id, accelerator,
                                    objective.collate, objective.units)
        extra = {"eval_pairs": len(data.eval), "eval_accuracy": round(stats["accuracy"], 4),
                 "eval_margin": round(stats["margin"], 4)}
        log.info(f"pairwise accuracy on {len(data.eval)} held-out pairs: {stats['accuracy']:.1%}")
    else:
        log.warn("no held-out pairs (val_size=0, no eval_dataset): pairwise accuracy not measured")
    # every rank takes part in gathering a sharded model's weights; rank 0 writes them
    lm_state, head_state = distributed.split_state(
        distributed.gather_for_save(accelerator, model, save_everything(cfg)), "v_head")
    unwrapped = accelerator.unwrap_model(model)
    head = unwrapped.v_head
    del unwrapped.v_head  # the LM is saved in its Hugging Face form; the head goes next to it
    if accelerator.is_main_process:
        save_value_head(head, out, head_state)
    extra["_extra_trainable"] = (sum(t.numel() for t in head_state.values()) if head_state is not None
                                 else sum(p.numel() for p in head.parameters()))
    summary = save_and_summarise(cfg, accelerator, unwrapped, tokenizer, out, fmt, data, result, t0, mixed, extra,
                                 state=lm_state)
    return RunResult(out, summary)
