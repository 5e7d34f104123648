"""Recipes: one plain function per training stage, `run(cfg) -> RunResult`."""

from __future__ import annotations

from tuneforge.config import Config


def run(cfg: Config):
    stage = cfg.finetune.stage
    if stage == "rm":
        from tuneforge.recipes import rm

        return rm.run(cfg)
    if stage in ("dpo", "kto"):
        from tuneforge.recipes import dpo

        return dpo.run(cfg)
    if stage == "ppo":
        from tuneforge.recipes import ppo

        return ppo.run(cfg)
    from tuneforge.recipes import sft

    # sft and pt share one recipe: they differ only in how rows become tokens (data.build handles the stage).
    return sft.run(cfg)
