"""Full fine-tuning and freeze tuning (train only some layers / modules of the base model)."""

from __future__ import annotations

import torch

from tuneforge.adapters.lora import split_list
from tuneforge.config.schema import FinetuneArgs
from tuneforge.errors import ConfigError
from tuneforge.utils import log


def find_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The ModuleList holding the decoder layers (its length is config.num_hidden_layers)."""
    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0 and (n is None or len(mod) == n):
            if best is None or len(name) < len(best[0]):
                best = (name, mod)
    if best is None:
        raise ConfigError(["freeze tuning could not find the model's decoder layers; use finetuning_type lora or full"])
    return best


def apply_full(model: torch.nn.Module) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def apply_freeze(model: torch.nn.Module, args: FinetuneArgs) -> torch.nn.Module:
    prefix, layers = find_layers(model)
    n = len(layers)
    k = args.freeze_trainable_layers
    if abs(k) > n:
        raise ConfigError([f"freeze_trainable_layers={k} but the model has {n} layers; use a value in 1..{n} "
                           f"(last layers) or -{n}..-1 (first layers)"])
    chosen = list(range(n - k, n)) if k > 0 else list(range(0, -k))
    if args.use_llama_pro:
        from tuneforge.adapters.llama_pro import expanded_layers

        chosen = expanded_layers(n, k)
    modules = split_list(args.freeze_trainable_modules)
    train_all = modules == ["all"] or not modules
    if not train_all:
        children = {name.split(".")[0] for name, _ in layers[0].named_modules() if name}
        bad = [m for m in modules if m not in children]
        if bad:
            raise ConfigError([f"freeze_trainable_modules names {bad}; the layers' modules are: "
                               f"{', '.join(sorted(children))} (or `all`)"])
    extra = split_list(args.freeze_extra_modules)
    top = {name for name, _ in model.named_modules() if name}
    short = {name.split(".")[-1]: name for name in top}
    bad = [m for m in extra if m not in short and m not in top]
    if bad:
        raise ConfigError([f"freeze_extra_modules names {bad}; top-level modules include: "
                           f"{', '.join(sorted(n for n in short if '.' not in n and not n.isdigit())[:20])}"])
    layer_prefixes = [f"{prefix}.{i}." for i in chosen]
    for name, p in model.named_parameters():
        train = False
        for lp in layer_prefixes:
            if name.startswith(lp):
                rest = name[len(lp):]
                train = train_all or rest.split(".")[0] in modules
        if any(f".{m}." in f".{name}" for m in extra):
            train = True
        p.requires_grad_(train)
    where = "last" if k > 0 else "first"
    log.choice(f"freeze: training layers {chosen[0]}–{chosen[-1]} ({where} {abs(k)} of {n})",
               f"freeze_trainable_layers={k}, modules={args.freeze_trainable_modules}"
               + (f", extra={','.join(extra)}" if extra else ""))
    return model
