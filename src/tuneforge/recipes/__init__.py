"""Recipes: one plain function per training stage, `run(cfg) -> RunResult`."""

from __future__ import annotations

from tuneforge.config import Config


def run(cfg: Config):
    from tuneforge.recipes import sft

    # sft and pt share one recipe: they differ only in how rows become tokens (data.build handles the stage).
    return sft.run(cfg)
