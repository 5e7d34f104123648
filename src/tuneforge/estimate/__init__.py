"""`tuneforge estimate`: predicted peak GPU memory of a run, from the model's config alone."""

from tuneforge.estimate.memory import GPUS, METHODS, Estimate, Plan, Shape, estimate, fits, load_shape, render

__all__ = ["GPUS", "METHODS", "Estimate", "Plan", "Shape", "estimate", "fits", "load_shape", "render"]
