"""What tuneforge can train, as plain dicts of records: fine-tuning methods (``METHODS``), preference losses
(``LOSSES``) and training stages (``STAGES``).

Each record is declared next to its code — ``adapters/<method>.py`` for a method, ``train/pref_losses.py`` for the
losses, ``recipes/stages.py`` for the stages — and added here with ``register_*`` when that module is imported (the
``tuneforge`` package imports them, as peft's ``__init__`` imports its tuners; none of them imports torch at import
time). Everything that depends on a method, a loss or a stage reads its record: validation, the web form,
``tuneforge estimate``, export, chat, the optimiser's parameter groups, the recipes. This module sits in the config
layer so that validation can read the records; it imports nothing above it, and the records' functions are called by
the layers above only.

Adding a method is one new ``adapters/<method>.py`` (its option dataclass, registered with
``config.schema.register_group``, and its record) plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tuneforge.config.messages import Msg


def _none(*_args) -> Any:
    return None


@dataclass(frozen=True)
class Method:
    """A fine-tuning method (a ``finetuning_type`` value) and everything the rest of tuneforge needs to know of it."""

    name: str
    summary: str  # one line: what is trained (help, the estimate's header, docs)
    options: tuple[str, ...]  # the settings (flat names) that apply to this method; elsewhere they are refused
    apply: Callable  # (model, cfg, adapter_paths) -> model with exactly this method's parameters trainable
    estimate: Callable  # (estimate.Shape, estimate.Plan) -> trainable parameter count, from config.json alone
    validate: Callable = lambda cfg, user_set: []  # (Config, keys the user set) -> [Msg]; runs before any weights load
    adapter: bool = True  # trains separate adapter weights (a peft folder); False: the base weights themselves change
    merges: bool = True  # the trained adapter can be merged into the weights (export; chat merges it for speed)
    continues: bool = False  # adapter_name_or_path: the last adapter (of this method) is trained further
    quantized_refusal: str | None = None  # id of the message (param: method) refusing quantization_bit; None: QLoRA-style training works
    peft_types: tuple[str, ...] = ()  # the peft_type values its adapter_config.json carries
    keeps_embedding: str | None = None  # why the input embedding cannot move to CPU memory (offload_embedding)
    virtual_tokens: bool = False  # estimate: num_virtual_tokens positions are added in front of every row
    lr_scale: Callable = _none  # (parameter name, cfg) -> learning-rate factor or None (LoRA+)
    full_forward: str | None = None  # why the loss must run the adapter's own forward (no gathered head)
    logits_offset: Callable = lambda model: 0  # positions the logits carry in front of the input's (virtual tokens)
    generate: Callable | None = None  # (model, input_ids, attention_mask, **kw) -> ids, when model.generate is wrong
    save: Callable | None = None  # (model, folder) -> None, when save_pretrained is not the whole story (PiSSA)
    merge_refusal: Callable | None = None  # (adapter path) -> (Msg, hint Msg) when merges is False
    preflight: Callable | None = None  # (Config) -> problem text or None: checked against the model's files before
    # training loads weights (e.g. LoRA's targets exist in the checkpoint's headers)
    describe: Callable | None = None  # (flat config dict) -> (display name, [key settings]) for the model card;
    # None: the name and no settings (the method's options are in config.yaml)
    extra: dict = field(default_factory=dict)  # anything else a method wants to carry, by name


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` (a module registers its record once, at import)."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"fine-tuning method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def method(name: str) -> Method:
    """The record of ``name``; an unknown name lists the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        from tuneforge.errors import ConfigError

        raise ConfigError([Msg("not_one_of", got=name, choices=", ".join(METHODS))]) from None


def methods_taking(option: str) -> tuple[str, ...]:
    """The methods an option applies to (empty: it is not a method option)."""
    return tuple(m.name for m in METHODS.values() if option in m.options)


def method_options() -> set[str]:
    return {o for m in METHODS.values() for o in m.options}


def for_peft_type(peft_type: str | None) -> Method | None:
    """The record of the method whose adapters carry ``peft_type`` (the first registered, e.g. prefix for
    PREFIX_TUNING, which ptuning_v2 shares)."""
    return next((m for m in METHODS.values() if peft_type in m.peft_types), None)


@dataclass(frozen=True)
class PrefLoss:
    """A preference loss of --stage dpo (a ``pref_loss`` value)."""

    name: str
    summary: str
    fn: Callable  # (pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing) -> (loss, reward chosen, reward rejected)
    reference: bool = True  # needs the reference model's log-probs (rc, rr)
    params: tuple[str, ...] = ("pref_beta",)  # the settings it reads; the other losses' own ones are refused


LOSSES: dict[str, PrefLoss] = {}


def register_loss(loss: PrefLoss) -> PrefLoss:
    if loss.name in LOSSES and LOSSES[loss.name] is not loss:
        raise ValueError(f"preference loss {loss.name!r} registered twice")
    LOSSES[loss.name] = loss
    return loss


# Model-preparation and speed settings a stage either honours or refuses (Stage.refuses), each with how to tell that
# the user asked for it. A stage that honours one logs what it did; one that refuses it says why before any weights
# load.
PREPARATION: dict[str, Callable] = {
    "packing": lambda cfg: bool(cfg.data.packing or cfg.data.neat_packing),
    "enable_liger_kernel": lambda cfg: cfg.model.enable_liger_kernel is True,
    "torch_compile": lambda cfg: bool(cfg.train.torch_compile),
    "shared_prefix": lambda cfg: cfg.train.shared_prefix is True,
    "group_by_length": lambda cfg: bool(cfg.train.group_by_length),
    "gradient_checkpointing": lambda cfg: bool(cfg.train.gradient_checkpointing),
    "enable_activation_offloading": lambda cfg: bool(cfg.train.enable_activation_offloading),
    "sample_prompts": lambda cfg: bool((cfg.train.sample_prompts or "").strip()),
    "fast_path": lambda cfg: cfg.train.fast_path is True,
    "fp8": lambda cfg: bool(cfg.train.fp8),
}


@dataclass(frozen=True)
class Stage:
    """A training stage (a ``stage`` value): its recipe, its own settings, and what it cannot honour."""

    name: str
    summary: str
    run: Callable  # (Config) -> RunResult
    options: tuple[str, ...] = ()  # settings only the stages listing them take; elsewhere they are refused
    validate: Callable = lambda cfg, user_set, for_training: []  # its own checks, before any weights load
    refuses: dict = field(default_factory=dict)  # PREPARATION setting -> id of the message saying why not


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    if stage.name in STAGES and STAGES[stage.name] is not stage:
        raise ValueError(f"stage {stage.name!r} registered twice")
    unknown = sorted(set(stage.refuses) - set(PREPARATION))
    if unknown:
        raise ValueError(f"stage {stage.name!r} refuses unknown settings {unknown}")
    STAGES[stage.name] = stage
    return stage


def stages_taking(option: str) -> tuple[str, ...]:
    """The stages an option applies to (empty: it is not a stage option)."""
    return tuple(s.name for s in STAGES.values() if option in s.options)
