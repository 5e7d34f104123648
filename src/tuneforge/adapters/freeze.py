"""Freeze tuning: train only some layers / modules of the base model (LLaMA-Factory's ``freeze`` method)."""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.adapters.folders import split_list
from tuneforge.config.messages import Msg
from tuneforge.config.registry import Method, register_method
from tuneforge.config.schema import opt, register_group
from tuneforge.errors import ConfigError
from tuneforge.utils import log


@dataclass
class FreezeArgs:
    """freeze: which layers and modules of the base model are trained."""

    freeze_trainable_layers: int = opt(
        2, "freeze: number of trainable layers; positive = the last N layers, negative = the first N.")
    freeze_trainable_modules: str = opt(
        "all", "freeze: names of modules inside the trainable layers to train (comma list, e.g. mlp,self_attn), "
               "or `all`.")
    freeze_extra_modules: str | None = opt(
        None, "freeze: extra top-level modules to train as well (comma list, e.g. embed_tokens,norm).")


register_group("freeze", FreezeArgs, title=("Freeze options", "冻结微调选项"), zh={
    "freeze_trainable_layers": ("可训练层数", "freeze：可训练层数；正数为最后 N 层，负数为最前 N 层。"),
    "freeze_trainable_modules": ("可训练模块", "freeze：可训练层内要训练的模块名（逗号分隔，如 mlp,self_attn）或 all。"),
    "freeze_extra_modules": ("额外可训练模块", "freeze：额外训练的顶层模块（逗号分隔，如 embed_tokens,norm）。"),
})


def validate(cfg, user_set: set[str]) -> list[Msg]:
    return [Msg("freeze_layers_zero")] if cfg.freeze.freeze_trainable_layers == 0 else []


def find_layers(model) -> tuple[str, object]:
    """(name, ModuleList) of the decoder layers (its length is config.num_hidden_layers)."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0 and (n is None or len(mod) == n):
            if best is None or len(name) < len(best[0]):
                best = (name, mod)
    if best is None:
        raise ConfigError(["freeze tuning could not find the model's decoder layers; use finetuning_type lora or full"])
    return best


def apply_freeze(model, cfg, adapter_paths: list[str]):
    args = cfg.freeze
    prefix, layers = find_layers(model)
    n = len(layers)
    k = args.freeze_trainable_layers
    if abs(k) > n:
        raise ConfigError([f"freeze_trainable_layers={k} but the model has {n} layers; use a value in 1..{n} "
                           f"(last layers) or -{n}..-1 (first layers)"])
    chosen = list(range(n - k, n)) if k > 0 else list(range(0, -k))
    if cfg.finetune.use_llama_pro:
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


def estimate_freeze(shape, plan) -> int:
    per_layer = (shape.linear_params + 2 * shape.d * shape.layers) // shape.layers
    return per_layer * min(abs(plan.settings["freeze_trainable_layers"]), shape.layers)


FREEZE = register_method(Method(
    name="freeze", summary="some layers / modules of the base", options=tuple(FreezeArgs.__dataclass_fields__),
    apply=apply_freeze, estimate=estimate_freeze, validate=validate, adapter=False,
    quantized_refusal="quantization_full",
    describe=lambda c: ("freeze (partial fine-tuning)", [f"trainable layers {c.get('freeze_trainable_layers')}",
                                                         f"modules `{c.get('freeze_trainable_modules')}`"])))
