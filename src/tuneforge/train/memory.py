"""Memory savers applied inside the training step."""

from __future__ import annotations

import contextlib

import torch

from tuneforge.config.schema import TrainArgs
from tuneforge.utils import log


def activation_offload(args: TrainArgs):
    """A context factory: saved activations go to pinned CPU memory when enable_activation_offloading is on."""
    if not args.enable_activation_offloading:
        return contextlib.nullcontext
    if not torch.cuda.is_available():
        log.choice("enable_activation_offloading=off", "there is no CUDA device to offload from")
        return contextlib.nullcontext
    log.choice("enable_activation_offloading=on", "asked; tensors saved for backward wait in pinned CPU memory")
    return lambda: torch.autograd.graph.save_on_cpu(pin_memory=True)
