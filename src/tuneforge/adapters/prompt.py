"""Prompt-based methods through peft: prefix tuning, P-Tuning, P-Tuning v2 and prompt tuning, on any decoder model.

They all learn *virtual tokens* and leave every weight of the model untouched:

* ``prefix``     — prefix tuning (Li & Liang 2021): trainable key/value prefixes in every layer, produced through a
                   reparameterisation MLP while training (``prefix_projection`` on by default);
* ``ptuning_v2`` — P-Tuning v2 / deep prompt tuning (Liu et al. 2022): the same per-layer prefixes, learned directly
                   (``prefix_projection`` off by default; ChatGLM's ``pre_seq_len``);
* ``ptuning``    — P-Tuning (Liu et al. 2021): virtual input embeddings produced by a prompt encoder (an MLP);
* ``prompt``     — prompt tuning (Lester et al. 2021): virtual input embeddings learned directly, optionally
                   initialised from the embeddings of ``prompt_tuning_init_text``.

``prefix``/``ptuning_v2`` act through the attention cache (the logits have the input's length); ``ptuning``/``prompt``
prepend embeddings inside ``PeftModel.forward`` (the logits are ``num_virtual_tokens`` longer than the input). Either
way the model must be called through the PeftModel, never through its decoder directly, and virtual tokens cannot be
merged into weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tuneforge.config.schema import FinetuneArgs
from tuneforge.utils import log

PROMPT_METHODS = ("prefix", "ptuning", "ptuning_v2", "prompt")
# peft's names for the same methods, as written into adapter_config.json.
PROMPT_PEFT_TYPES = {"PREFIX_TUNING": "prefix/ptuning_v2", "P_TUNING": "ptuning", "PROMPT_TUNING": "prompt"}
CACHE_METHODS = ("prefix", "ptuning_v2")  # virtual tokens live in the attention cache, not in the logits


def default_projection(method: str) -> bool:
    return method == "prefix"


def prompt_config(model: torch.nn.Module, args: FinetuneArgs):
    """The peft config for ``args.finetuning_type`` (one of PROMPT_METHODS), with every automatic choice logged."""
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType

    method, n = args.finetuning_type, args.num_virtual_tokens
    hidden = getattr(model.config, "hidden_size", None)
    enc = args.encoder_hidden_size
    if method in CACHE_METHODS:
        proj = args.prefix_projection if args.prefix_projection is not None else default_projection(method)
        if args.prefix_projection is None:
            why = ("prefix tuning reparameterises the prefixes through an MLP while training" if proj else
                   "P-Tuning v2 learns the per-layer prefixes directly")
            log.choice(f"prefix_projection={proj}", why)
        if proj and enc is None:
            enc = hidden
            log.choice(f"encoder_hidden_size={enc}", "default is the model's hidden size")
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, prefix_projection=proj,
                                  encoder_hidden_size=enc)
    if method == "ptuning":
        if enc is None:
            enc = hidden
            log.choice(f"encoder_hidden_size={enc}", "default is the model's hidden size")
        return PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, encoder_hidden_size=enc,
                                   encoder_reparameterization_type="MLP")
    # prompt tuning
    if args.prompt_tuning_init_text:
        log.choice("prompt tuning init=TEXT", f"virtual tokens start from the embeddings of "
                                             f"{args.prompt_tuning_init_text!r} (repeated/cut to {n} tokens)")
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, prompt_tuning_init="TEXT",
                                  prompt_tuning_init_text=args.prompt_tuning_init_text,
                                  tokenizer_name_or_path=str(model.name_or_path))
    log.choice("prompt tuning init=RANDOM", "no prompt_tuning_init_text given")
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, prompt_tuning_init="RANDOM")


def apply_prompt(model: torch.nn.Module, args: FinetuneArgs):
    from peft import get_peft_model

    return get_peft_model(model, prompt_config(model, args))


def is_prompt_model(model: torch.nn.Module) -> bool:
    """True for a PeftModel whose active adapter is prompt-based (virtual tokens, nothing to merge)."""
    cfg = getattr(model, "active_peft_config", None)
    return bool(getattr(cfg, "is_prompt_learning", False))


def logits_offset(model: torch.nn.Module) -> int:
    """How many virtual-token positions the model's logits carry in front of the input's positions.

    ``ptuning``/``prompt`` prepend ``num_virtual_tokens`` embeddings, so logits[:, i + n] belongs to input token i.
    ``prefix``/``ptuning_v2`` put the virtual tokens in the attention cache: the logits line up with the input."""
    if not is_prompt_model(model):
        return 0
    cfg = model.active_peft_config
    if str(getattr(cfg.peft_type, "value", cfg.peft_type)) == "PREFIX_TUNING":
        return 0
    return int(cfg.num_virtual_tokens)


def adapter_method(path: str | Path) -> str | None:
    """The peft_type in an adapter folder's adapter_config.json (None if unreadable)."""
    try:
        return json.loads((Path(path) / "adapter_config.json").read_text()).get("peft_type")
    except (OSError, ValueError):
        return None


def is_prompt_adapter(path: str | Path) -> bool:
    return adapter_method(path) in PROMPT_PEFT_TYPES
