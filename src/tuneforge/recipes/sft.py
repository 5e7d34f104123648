"""Supervised fine-tuning (and continued pre-training): load, adapt, build data, train, save. Reads top to bottom."""

from __future__ import annotations

from tuneforge.config import Config
from tuneforge.recipes.common import (RunResult, finish, load_policy, make_accelerator, pack, prepare_run,
                                      train)
from tuneforge.fast.decoder import build_for_training
from tuneforge.train import distributed
from tuneforge.train.loss import CausalLMLoss
from tuneforge.utils import log


def run(cfg: Config) -> RunResult:
    if cfg.train.do_predict and not cfg.train.do_train:  # LF's predict config: generate for eval_dataset only
        from tuneforge.recipes.evaluate import predict_only

        return predict_only(cfg)
    # Tokenizer, template and data first: bad data fails before any weights load.
    run = prepare_run(cfg)
    if not cfg.train.do_train:
        return run.validated_only()
    samples, packing = pack(cfg, run)  # sft and pt differ only in how rows become tokens (data.build)
    accelerator, mixed, dtype = make_accelerator(cfg)
    model, fused_ce = load_policy(cfg, run, dtype, token_loss=True)
    shared = distributed.shared_prefix_setting(accelerator, cfg.train.shared_prefix)
    if packing and shared is not False:
        log.choice("shared_prefix=off", "packed rows share no prefix (each row holds several samples)")
        shared = False
    fast = None  # tuneforge's own decoder (fast/): plain one-process runs only
    if distributed.fast_path_ok(accelerator, cfg.train):
        fast = build_for_training(model, cfg.train, accelerator.num_processes)
    objective = CausalLMLoss(model, fused_ce and distributed.fused_ce_ok(accelerator), shared, fast)
    result = train(cfg, run, objective, accelerator, samples)
    res = finish(cfg, run, accelerator, model, result, mixed, {"packing": packing, "fast_path": fast is not None})
    if cfg.train.do_predict:
        from tuneforge.recipes.evaluate import predict_trained

        res = predict_trained(cfg, run, accelerator, model, res)
    return res
