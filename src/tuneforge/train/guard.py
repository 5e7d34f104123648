"""The non-finite guard: a NaN or infinite loss or gradient norm never reaches the weights, and non-finite weights
are never written.

Every optimiser step of every loop (train/loop.py: sft, pt, rm, dpo, kto; train/ppo.py: ppo) goes through
:func:`tuneforge.train.steps.optimizer_step`, which asks :meth:`NonFiniteGuard.allows` before stepping. A step whose
loss or global gradient norm is NaN/Inf is skipped: the gradients are cleared, the optimiser does not step, the
learning-rate schedule does not move; the skip is counted (``skipped_steps`` in metrics.jsonl and the run summary)
and logged. ``nonfinite_patience`` skips in a row stop the run with :class:`NonFiniteError`, which names the step,
the likely causes and the fixes; the last good checkpoint stays, the run summary says ``"completed": false`` and the
exit code is non-zero. :func:`check_finite` refuses to write weights that hold a NaN/Inf (checkpoints and the final
adapter or model).
"""

from __future__ import annotations

import math

import torch

from tuneforge.errors import TuneforgeError
from tuneforge.utils import log

CAUSES = ("a learning rate too high for this model (try 10× lower, e.g. 1e-4 for LoRA, 1e-5 for full)",
          "float16 overflow (use --bf16 True where the GPU supports it, or float32)",
          "a row of data that makes the loss explode (check the rows around this step; see docs/data.md)")


class NonFiniteError(TuneforgeError):
    """Training produced NaN/Inf values that the guard could not step around."""


def finite(x) -> bool:
    """Whether ``x`` (a number or a tensor) is finite; None counts as finite (nothing measured)."""
    if x is None:
        return True
    if torch.is_tensor(x):
        return bool(torch.isfinite(x).all())
    return math.isfinite(float(x))


class NonFiniteGuard:
    """Counts skipped steps and stops the run after ``patience`` in a row (0: never stop, skip only)."""

    def __init__(self, patience: int = 3, on_stop=None):
        self.patience, self.on_stop = patience, on_stop  # on_stop(step, error): before the error propagates
        self.skipped = 0  # over the whole run
        self.in_a_row = 0

    def allows(self, step: int, loss, grad_norm) -> bool:
        """True: step normally. False: skip this step (the caller clears the gradients). Raises NonFiniteError
        after ``patience`` non-finite steps in a row. ``step``: the 1-based number of the step being taken."""
        if finite(loss) and finite(grad_norm):
            self.in_a_row = 0
            return True
        self.skipped += 1
        self.in_a_row += 1
        what = ", ".join(f"{name} {float(v)}" for name, v in (("loss", loss), ("gradient norm", grad_norm))
                         if not finite(v))
        log.warn(f"step {step}: non-finite {what}; the step is skipped (no weight update, the schedule waits) — "
                 f"{self.in_a_row} in a row, {self.skipped} in this run"
                 + (f", the run stops at {self.patience} in a row" if self.patience else ""))
        if self.patience and self.in_a_row >= self.patience:
            error = NonFiniteError(
                f"training stopped at step {step}: {self.in_a_row} optimiser steps in a row had a non-finite ({what}) loss or "
                f"gradient norm, so none of them changed the weights. Likely causes: " + "; ".join(CAUSES) + ".",
                "lower --learning_rate, switch fp16 → bf16, check the data; the last good checkpoint in output_dir "
                "is kept and the run resumes from it when you run the command again (nonfinite_patience sets how "
                "many skipped steps in a row stop a run)")
            if self.on_stop is not None:
                self.on_stop(step, error)
            raise error
        return False


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse to write ``what`` when any of ``tensors`` holds a NaN/Inf (a run folder never gets a broken model)."""
    bad = [n for n, t in tensors.items() if torch.is_tensor(t) and t.is_floating_point() and not finite(t)]
    if bad:
        raise NonFiniteError(
            f"{what} not written: {len(bad)} of {len(tensors)} tensors hold NaN/Inf values (e.g. {bad[0]}). "
            f"Likely causes: " + "; ".join(CAUSES) + ".",
            "lower --learning_rate or switch fp16 → bf16 and train again; earlier checkpoints in output_dir are kept")


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def check_final(out, tensors: dict[str, torch.Tensor], steps: int) -> None:
    """The final save's check: non-finite weights are not written, the run summary says the run did not
    complete (train/run_dir.py) and the error propagates (non-zero exit)."""
    try:
        check_finite(tensors, "the final model")
    except NonFiniteError as e:
        from tuneforge.train import run_dir

        run_dir.write_stopped(out, e, steps)
        raise
