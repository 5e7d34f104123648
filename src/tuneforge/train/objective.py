"""What the training loop needs of an objective, declared once (``Objective``), and evaluation on held-out samples.

An objective is a ``torch.nn.Module`` wrapping the trained model — the module the distributed engines wrap — whose
forward takes one collated batch and returns (loss sum, metric sums) over the batch's ``units`` (supervised tokens
for the token loss, pairs for preference and reward losses); the loop averages both over all units of an optimiser
step. The SFT/PT token loss (train/loss.py), the preference objectives and the reward model's (train/preference.py)
implement it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Objective(Protocol):
    model: torch.nn.Module  # what is trained and checkpointed (its parameters with requires_grad)
    saves_activations_itself: bool  # it keeps its saved activations where it wants (no generic offloading)

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss sum, metric sums) of one batch; both are summed over ``units``."""

    def collate(self, samples: list, pad_id: int, dummy: Any = None, pad_multiple: int = 1) -> dict:
        """One batch of tensors from encoded samples (``dummy``: a sample standing in for an empty process share)."""

    def units(self, batch: dict) -> int:
        """What the batch's sums are averaged over."""

    def length(self, sample: Any) -> int:
        """A sample's length in tokens (group_by_length batches similar lengths)."""

    def release(self) -> None:
        """Free what it holds for training only (called once the loop ends)."""


@torch.no_grad()
def evaluate(objective: Objective, samples: list, batch_size: int, pad_id: int, accelerator,
             module=None) -> tuple[float | None, dict[str, float]]:
    """(mean loss, mean of the objective's metrics) over ``samples``, split across processes. ``module``: the
    objective as the engine wrapped it (default: the objective itself)."""
    if not samples:
        return None, {}
    module = module if module is not None else objective
    module.eval()
    total, count = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
    extra: dict[str, torch.Tensor] = {}
    mine = samples[accelerator.process_index::accelerator.num_processes]
    # every process runs the same number of forwards (sharded engines gather weights in each): a process whose share
    # is shorter runs fully masked dummy rows, which add nothing
    per_process = -(-len(samples) // accelerator.num_processes)
    for i in range(0, per_process, batch_size):
        rows = objective.collate(mine[i: i + batch_size], pad_id, samples[0])
        batch = {k: v.to(accelerator.device) for k, v in rows.items()}
        with accelerator.autocast():
            loss, stats = module(**batch)
        total += loss.float()
        for k, v in stats.items():
            extra[k] = extra.get(k, 0) + v.float()
        count += objective.units(batch)
    module.train()
    total, count = accelerator.reduce(total, "sum"), accelerator.reduce(count, "sum").clamp(min=1)
    return float(total / count), {k: float(accelerator.reduce(v, "sum") / count) for k, v in extra.items()}
