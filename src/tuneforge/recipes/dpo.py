"""Offline preference tuning: dpo (pref_loss sigmoid | ipo | hinge | orpo | simpo) and kto. Reads top to bottom.

The reference model: with LoRA (and the other adapter methods) it is the policy with its adapter switched off, so
there is no second copy in memory; full/freeze training loads a frozen copy; a loss that needs none (orpo, simpo)
gets none. With precompute_ref_log_probs the reference log-probs of every sample are computed once before training."""

from __future__ import annotations

import time

from tuneforge.config import Config
from tuneforge.recipes.common import (RunResult, finish, load_policy, load_reference, make_accelerator,
                                      prepare_run, train)
from tuneforge.train.preference import PreferenceObjective, needs_reference, precompute_reference
from tuneforge.utils import log


def run(cfg: Config) -> RunResult:
    stage, pref = cfg.finetune.stage, cfg.preference
    run = prepare_run(cfg)
    if not cfg.train.do_train:
        return run.validated_only()
    accelerator, mixed, dtype = make_accelerator(cfg)
    model = load_policy(cfg, run, dtype)[0]
    needs_ref = needs_reference(stage, pref)
    if needs_ref:
        ref_model = load_reference(cfg, run, dtype, accelerator.device)
    else:
        ref_model = None
        log.choice("reference model=none", f"pref_loss={pref.pref_loss} is reference-free")
    objective = PreferenceObjective(model, stage, pref, ref_model)
    if needs_ref and pref.precompute_ref_log_probs:
        t = time.time()
        model.to(accelerator.device)
        for samples in (run.data.train, run.data.eval):
            precompute_reference(objective, samples, run.tokenizer.pad_token_id, cfg.train.per_device_eval_batch_size,
                                 accelerator.device)
        objective.ref_model = [None]  # no longer needed
        log.choice("reference log-probs precomputed", f"precompute_ref_log_probs=True ({len(run.data.train)} + "
                   f"{len(run.data.eval)} samples in {time.time() - t:.1f} s); no reference forward during training")
    result = train(cfg, run, objective, accelerator)
    extra = {"pref_loss": pref.pref_loss if stage == "dpo" else "kto", "pref_beta": pref.pref_beta}
    return finish(cfg, run, accelerator, model, result, mixed, extra)
