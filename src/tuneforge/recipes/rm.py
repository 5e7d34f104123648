"""Reward model: the LM plus a scalar value head, trained with the pairwise (Bradley-Terry) loss on chosen/rejected
pairs. Saves the adapter (or model) and value_head.safetensors next to it; reports pairwise accuracy on the held-out
pairs (val_size or eval_dataset). Reads top to bottom."""

from __future__ import annotations

from tuneforge.config import Config
from tuneforge.recipes.common import (RunResult, finish, load_policy, make_accelerator, prepare_run,
                                      save_everything, train)
from tuneforge.train import distributed
from tuneforge.train.objective import evaluate
from tuneforge.train.preference import RewardObjective
from tuneforge.train.value_head import PolicyWithValueHead
from tuneforge.utils import log


def run(cfg: Config) -> RunResult:
    run = prepare_run(cfg)
    if not cfg.train.do_train:
        return run.validated_only()
    accelerator, mixed, dtype = make_accelerator(cfg)
    model = PolicyWithValueHead(load_policy(cfg, run, dtype)[0])
    objective = RewardObjective(model)
    result = train(cfg, run, objective, accelerator)

    extra = {}
    if run.data.eval:
        _, stats = evaluate(objective, run.data.eval, cfg.train.per_device_eval_batch_size,
                            run.tokenizer.pad_token_id, accelerator)
        extra = {"eval_pairs": len(run.data.eval), "eval_accuracy": round(stats["accuracy"], 4),
                 "eval_margin": round(stats["margin"], 4)}
        log.info(f"pairwise accuracy on {len(run.data.eval)} held-out pairs: {stats['accuracy']:.1%}")
    else:
        log.warn("no held-out pairs (val_size=0, no eval_dataset): pairwise accuracy not measured")
    # every rank takes part in gathering a sharded model's weights; rank 0 writes them
    full = distributed.gather_for_save(accelerator, model, save_everything(cfg))
    model = accelerator.unwrap_model(model)
    if accelerator.is_main_process:  # next to the LM, which finish() saves in its Hugging Face form
        model.save_head(run.out, state=distributed.sub_state(full, "v_head"))
    head = sum(p.numel() for p in model.v_head.parameters())
    return finish(cfg, run, accelerator, model.lm, result, mixed, extra, extra_trainable=head,
                  state=distributed.sub_state(full, "lm"))
