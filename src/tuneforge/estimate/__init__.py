"""`tuneforge estimate`: predicted peak GPU memory of a run, from the model's config alone."""

from tuneforge.estimate.memory import GPUS, Estimate, Plan, Shape, estimate, fits, load_shape, render
from tuneforge.estimate.plan import EXTRA_KEYS, plan_from_config

__all__ = ["EXTRA_KEYS", "GPUS", "Estimate", "Plan", "Shape", "estimate", "fits", "load_shape", "plan_from_config",
           "render"]
