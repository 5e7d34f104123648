"""Full fine-tuning: every weight of the model is trained."""

from __future__ import annotations

from tuneforge.config.registry import Method, register_method


def apply_full(model, cfg, adapter_paths: list[str]):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def estimate_full(shape, plan) -> int:
    return shape.params


FULL = register_method(Method(
    name="full", summary="every weight", options=(), apply=apply_full, estimate=estimate_full, adapter=False,
    quantized_refusal="quantization_full", describe=lambda c: ("full fine-tuning", [])))
