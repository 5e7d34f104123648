"""LoRA and its variants (rsLoRA, DoRA, LoRA+, PiSSA) through peft. The only module that builds LoRA configs."""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.config.messages import Msg
from tuneforge.config.schema import FinetuneArgs
from tuneforge.config.validate import LAYER_SPEC_HELP, parse_layer_spec
from tuneforge.errors import ConfigError, ModelError
from tuneforge.utils import log


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Short names of the linear layers LoRA can target (the output head excluded)."""
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for full, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and mod is not out_emb and "lora_" not in full:
            names.add(full.split(".")[-1])
    return sorted(names)


def module_short_names(model: torch.nn.Module) -> set[str]:
    return {n.split(".")[-1] for n, _ in model.named_modules() if n}


def split_list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def resolve_targets(model: torch.nn.Module, args: FinetuneArgs) -> list[str]:
    available = linear_module_names(model)
    if args.lora_target.strip() == "all":
        log.choice(f"lora_target={','.join(available)}", "lora_target=all adapts every linear layer except the head")
        return available
    wanted = split_list(args.lora_target)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise ConfigError([Msg("lora_target_missing", missing=missing, available=", ".join(available))])
    return wanted


def resolve_layers(model: torch.nn.Module, args: FinetuneArgs) -> list[int] | None:
    if args.lora_layers is None:
        return None
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    try:
        layers = parse_layer_spec(args.lora_layers, n)
    except ValueError as e:
        raise ConfigError([Msg("lora_layers_bad", value=args.lora_layers, reason=e.args[0], help=LAYER_SPEC_HELP)]) \
            from None
    if layers is not None:
        log.choice(f"lora_layers={layers[0]}..{layers[-1]} ({len(layers)} of {n})",
                   f"asked; the backward pass stops at layer {layers[0]} (nothing below it is trained)")
    return layers


def lora_config(model: torch.nn.Module, args: FinetuneArgs):
    from peft import LoraConfig, TaskType

    extra = split_list(args.additional_target)
    if extra:
        have = module_short_names(model)
        bad = [m for m in extra if m not in have]
        if bad:
            raise ConfigError([Msg("additional_target_missing", bad=bad)])
    alpha = args.lora_alpha if args.lora_alpha is not None else 2 * args.lora_rank
    if args.lora_alpha is None:
        log.choice(f"lora_alpha={alpha:g}", "default is 2 × lora_rank")
    init: bool | str = True
    if args.pissa_init:
        init = "pissa" if args.pissa_iter == -1 else f"pissa_niter_{args.pissa_iter}"
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=args.lora_rank, lora_alpha=alpha, lora_dropout=args.lora_dropout,
        target_modules=resolve_targets(model, args), modules_to_save=extra or None, use_rslora=args.use_rslora,
        use_dora=args.use_dora, init_lora_weights=init, layers_to_transform=resolve_layers(model, args))


def check_adapter_dir(path: str) -> str | None:
    p = Path(path)
    if not p.is_dir():
        return Msg("adapter_missing", path=path)
    if not (p / "adapter_config.json").is_file():
        return Msg("adapter_no_config", path=path)
    return None


def load_adapters(model: torch.nn.Module, paths: list[str], trainable: bool):
    """Apply adapters in order. All but the last are merged into the base; the last stays a live adapter
    (trainable when ``trainable``)."""
    from peft import PeftModel

    from tuneforge.adapters.prompt import is_prompt_adapter

    for i, path in enumerate(paths):
        problem = check_adapter_dir(path)
        if problem:
            raise ModelError(problem, Msg("adapter_dir_fix"))
        last = i == len(paths) - 1
        if not last and is_prompt_adapter(path):
            raise ModelError(Msg("adapter_prompt_not_last", path=path), Msg("adapter_prompt_not_last_fix"))
        model = PeftModel.from_pretrained(model, path, is_trainable=trainable and last)
        if not last:
            model = model.merge_and_unload()
            log.info(f"merged adapter {path} into the base")
    return model


def apply_lora(model: torch.nn.Module, args: FinetuneArgs, adapter_paths: list[str]):
    from peft import get_peft_model

    if adapter_paths:
        model = load_adapters(model, adapter_paths, trainable=True)
        log.info(f"continuing training of adapter {adapter_paths[-1]}")
        return model
    model = get_peft_model(model, lora_config(model, args))
    if args.pissa_init:
        remember_pissa_init(model)
    return model


# PiSSA moves the adapter's principal part out of the base weights (W_res = W - s*B0*A0) and trains A, B from there.
# The trained A, B alone are only right on that residual base: loaded onto the original base (chat, export, vLLM)
# the principal part would count twice. So the initial adapter is kept and the final save writes the equivalent
# plain LoRA adapter for the original base (peft's conversion: rank 2r, s*[B | -B0][A ; A0] = s*(BA - B0A0)).
PISSA_INIT_ATTR = "_tuneforge_pissa_init"


def remember_pissa_init(model: torch.nn.Module) -> None:
    import tempfile

    init = Path(tempfile.mkdtemp(prefix="tuneforge-pissa-")) / "pissa_init"
    model.save_pretrained(str(init), safe_serialization=True)
    setattr(model, PISSA_INIT_ATTR, str(init))


def save_trained(model: torch.nn.Module, out: Path, state_dict: dict | None = None) -> None:
    """``model.save_pretrained(out)``; a PiSSA adapter is saved converted to plain LoRA for the original base.
    ``state_dict``: the weights gathered from every rank of a sharded run (train/distributed.py), saved instead of
    the model's own (sharded) tensors."""
    import shutil

    extra = {"state_dict": state_dict} if state_dict is not None else {}
    init = model.__dict__.get(PISSA_INIT_ATTR)
    if not init:
        model.save_pretrained(str(out), safe_serialization=True, **extra)
        return
    model.save_pretrained(str(out), safe_serialization=True, path_initial_model_for_weight_conversion=init, **extra)
    shutil.rmtree(Path(init).parent, ignore_errors=True)
    del model.__dict__[PISSA_INIT_ATTR]
    log.choice("PiSSA adapter saved as plain LoRA (rank 2r)",
               "the trained PiSSA weights only fit the residual base it trained on; the saved adapter is the "
               "equivalent update of the original base, so chat and export load it on the unmodified model")


def merge_adapters(model: torch.nn.Module, paths: list[str]) -> torch.nn.Module:
    """Merge LoRA-family adapters into ``model``, in order, and return the plain model."""
    from tuneforge.adapters.prompt import is_prompt_adapter

    prompt = [p for p in paths if is_prompt_adapter(p)]
    if prompt:
        raise ModelError(*prompt_merge_refusal(prompt[0]))
    if not paths:
        return model
    model = load_adapters(model, paths, trainable=False).merge_and_unload()
    log.info(f"merged adapter {paths[-1]} into the base")
    return model


def prompt_merge_refusal(path: str) -> tuple[Msg, Msg]:
    """(message, hint) for trying to merge a prompt-based adapter."""
    from tuneforge.adapters.prompt import adapter_method

    return (Msg("adapter_prompt_merge", path=path, method=adapter_method(path)),
            Msg("adapter_prompt_merge_fix", path=path))
