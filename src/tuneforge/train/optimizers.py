"""The other `optim` names of transformers' Trainer, built the way Trainer builds them (same classes, same settings),
so an LLaMA-Factory config that picks one trains with the same optimizer."""

from __future__ import annotations

import torch

from tuneforge.config.schema import TrainArgs
from tuneforge.utils import log


def torch_optimizer(groups: list[dict], train: TrainArgs) -> torch.optim.Optimizer:
    """adagrad / rmsprop: torch's own classes; adafactor: transformers' Adafactor with the external learning rate
    (scale_parameter=False, relative_step=False), as Trainer sets it. Weight decay comes from the param groups."""
    if train.optim == "adagrad":
        opt = torch.optim.Adagrad(groups, lr=train.learning_rate)
    elif train.optim == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=train.learning_rate)
    else:
        from transformers.optimization import Adafactor

        opt = Adafactor(groups, lr=train.learning_rate, scale_parameter=False, relative_step=False)
    log.choice(f"optim={train.optim}", f"asked; {type(opt).__module__}.{type(opt).__name__} as transformers' Trainer "
               "builds it")
    return opt
