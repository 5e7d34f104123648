"""Offline preference tuning: dpo (pref_loss sigmoid | ipo | hinge | orpo | simpo) and kto. Reads top to bottom.

The reference model: with LoRA (and the other adapter methods) it is the policy with its adapter switched off, so
there is no second copy in memory; full/freeze training loads a frozen copy; orpo and simpo need none. With
precompute_ref_log_probs the reference log-probs of every sample are computed once before training."""

from __future__ import annotations

import time

from tuneforge.adapters import method, split_list
from tuneforge.config import Config
from tuneforge.recipes.common import load_frozen, load_trainable, make_accelerator, prepare_run, save_and_summarise
from tuneforge.recipes.sft import RunResult
from tuneforge.train.loop import train_loop
from tuneforge.train.preference import PreferenceObjective, needs_reference, precompute_reference
from tuneforge.utils import log


def run(cfg: Config) -> RunResult:
    t0 = time.time()
    ft, pref = cfg.finetune, cfg.preference
    out, resume, model_path, tokenizer, fmt, data = prepare_run(cfg)
    if not cfg.train.do_train:
        return RunResult(out, {"completed": False, "data": data.report})

    accelerator, mixed, dtype = make_accelerator(cfg)
    model = load_trainable(cfg, model_path, dtype)
    needs_ref = needs_reference(ft.stage, pref)
    ref_model = None
    if not needs_ref:
        log.choice("reference model=none", f"pref_loss={pref.pref_loss} is reference-free")
    elif not method(ft.finetuning_type).adapter:
        ref_model = load_frozen(cfg, model_path, dtype, split_list(cfg.model.adapter_name_or_path))
        ref_model.to(accelerator.device)
        log.choice("reference model=frozen copy", f"finetuning_type={ft.finetuning_type} changes the base weights")
    else:
        log.choice("reference model=policy with the adapter disabled", "an adapter method leaves the base intact, "
                   "so no second copy is loaded")
    objective = PreferenceObjective(model, ft.stage, pref, ref_model)
    if needs_ref and pref.precompute_ref_log_probs:
        t = time.time()
        model.to(accelerator.device)
        for samples in (data.train, data.eval):
            precompute_reference(objective, samples, tokenizer.pad_token_id, cfg.train.per_device_eval_batch_size,
                                 accelerator.device)
        objective.ref_model = [None]  # no longer needed
        log.choice("reference log-probs precomputed", f"precompute_ref_log_probs=True ({len(data.train)} + "
                   f"{len(data.eval)} samples in {time.time() - t:.1f} s); no reference forward during training")
    result = train_loop(model, data.train, data.eval, cfg.train, cfg, out, tokenizer.pad_token_id, accelerator,
                        resume, objective=objective)
    extra = {"pref_loss": pref.pref_loss if ft.stage == "dpo" else "kto", "pref_beta": pref.pref_beta}
    summary = save_and_summarise(cfg, accelerator, model, tokenizer, out, fmt, data, result, t0, mixed, extra)
    return RunResult(out, summary)
