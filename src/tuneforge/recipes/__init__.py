"""Recipes: one plain function per training stage, `run(cfg) -> RunResult`, found through the stage records
(``recipes/stages.py``). Importing this package registers the stages and the preference losses (torch-free)."""

from __future__ import annotations

from tuneforge.config import Config
from tuneforge.config.registry import STAGES
from tuneforge.recipes import stages  # noqa: F401  (registers the stage records)
from tuneforge.train import pref_losses  # noqa: F401  (registers the pref_loss records)


def run(cfg: Config):
    return STAGES[cfg.finetune.stage].run(cfg)
