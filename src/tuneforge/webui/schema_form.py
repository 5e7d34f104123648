"""Form fields derived from the config schema (``config/schema.py``), not mapped by hand.

Every dataclass field of a group becomes one :class:`FieldSpec` with its kind (bool, tri-state bool, choice, int,
float, text, key=value mapping), default, choices and help, all read from the field's type and metadata. Which
methods and stages an option applies to comes from the method and stage records (``config.registry``) that
validation reads too, so a new schema field, group, method or stage appears in the form without touching this
module.
"""

from __future__ import annotations

import shlex
from dataclasses import MISSING, dataclass, fields
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.config.parse import Config, _type_of, build_config
from tuneforge.config.registry import methods_taking, stages_taking
from tuneforge.config.schema import GROUP_INFO, GROUPS, field_choices

# Groups that describe a training run (the Train tab); the others feed Chat/Evaluate (generate) and Export (export).
TRAIN_GROUPS = tuple(g for g in GROUPS if g not in ("generate", "export"))
QUANT_PREFIX = "quantization_"
# Settings that name files or folders (confined to the UI's root); a field can also say so with metadata path=True.
PATH_SUFFIXES = ("_dir", "_path", "name_or_path", "_from_checkpoint", "_file", "_model")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    group: str
    kind: str  # bool | tribool | choice | int | float | text | mapping
    default: Any
    optional: bool
    choices: tuple[str, ...] | None
    help: str
    section: str  # the group, or a method's options group: "method:lora", "method:freeze", …
    methods: tuple[str, ...] | None  # finetuning types this option applies to (None = all)
    is_path: bool
    stages: tuple[str, ...] | None = None  # stages this option applies to (None = all)


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _kind(f) -> tuple[str, bool]:
    base, optional = _type_of(f)
    if field_choices(f):
        return "choice", optional
    if base is bool:
        return ("tribool" if optional else "bool"), optional
    if base is int:
        return "int", optional
    if base is float:
        return "float", optional
    if base is dict:
        return "mapping", optional
    return "text", optional


def _methods(name: str) -> tuple[str, ...] | None:
    return methods_taking(name) or None


def _section(group: str, name: str) -> str:
    if group in GROUP_INFO:
        return GROUP_INFO[group].section
    if group == "model" and name.startswith(QUANT_PREFIX) or name == "double_quantization":
        return "quantization"
    return group


def is_path_field(f) -> bool:
    if "path" in f.metadata:
        return bool(f.metadata["path"])
    return f.name.endswith(PATH_SUFFIXES)


def field_specs(groups: tuple[str, ...] = TRAIN_GROUPS) -> list[FieldSpec]:
    """One spec per schema field of ``groups``, in schema order."""
    out = []
    for group in groups:
        for f in fields(GROUPS[group]):
            kind, optional = _kind(f)
            methods = _methods(f.name)
            out.append(FieldSpec(f.name, group, kind, _default(f), optional, field_choices(f),
                                 f.metadata.get("help", ""), _section(group, f.name), methods, is_path_field(f),
                                 stages_taking(f.name) or None))
    return out


def specs_by_name(groups: tuple[str, ...] = TRAIN_GROUPS) -> dict[str, FieldSpec]:
    return {s.name: s for s in field_specs(groups)}


# ---- widget value <-> config value -------------------------------------------------------------------------------

TRI = ("auto", "true", "false")


def to_widget(spec: FieldSpec, value: Any) -> Any:
    """A config value as the form shows it."""
    if spec.kind == "tribool":
        return "auto" if value is None else ("true" if value else "false")
    if spec.kind == "mapping":
        return ",".join(f"{k}={v}" for k, v in (value or {}).items())
    if spec.kind in ("text", "choice") or (spec.optional and spec.kind in ("int", "float")):
        return "" if value is None else str(value)
    return value


def from_widget(spec: FieldSpec, raw: Any) -> Any:
    """A form value as a raw config value (``build_config`` coerces and checks it)."""
    if spec.kind == "tribool":
        return None if raw in (None, "", "auto") else raw
    if spec.kind == "bool":
        return bool(raw)
    if spec.kind in ("int", "float"):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None if spec.optional else spec.default
        return raw
    if spec.kind == "mapping":
        return raw or {}
    if isinstance(raw, (list, tuple)):  # multi-select lists (datasets, adapters)
        raw = ",".join(str(x) for x in raw if str(x).strip())
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None if spec.optional else (spec.default if raw is None else raw)
    return raw


def applies(spec: FieldSpec, method: str, stage: str | None = None) -> bool:
    """Whether the option belongs to the chosen method (and stage); the form shows it only then."""
    return ((spec.methods is None or method in spec.methods)
            and (stage is None or spec.stages is None or stage in spec.stages))


def conditional(spec: FieldSpec) -> bool:
    """An option of some methods or stages only (shown and read for those)."""
    return spec.methods is not None or spec.stages is not None


def config_from_form(values: dict[str, Any], groups: tuple[str, ...] = TRAIN_GROUPS) -> Config:
    """Build the run's Config from form values. Options of other methods and stages are hidden in the form and
    left out."""
    specs = specs_by_name(groups)
    method = values.get("finetuning_type") or specs["finetuning_type"].default
    stage = values.get("stage") or specs["stage"].default
    raw = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None or not applies(spec, str(method), str(stage)):
            continue
        raw[name] = from_widget(spec, value)
    return build_config(raw)


# ---- the reproducing command -------------------------------------------------------------------------------------

def _flag_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return repr(value)
    return str(value)


def command_args(cfg: Config) -> list[str]:
    """``--key value`` for every setting that differs from its default, in schema order."""
    defaults = Config().to_flat()
    args = []
    for key, value in cfg.to_flat().items():
        if value != defaults.get(key):
            args += [f"--{key}", _flag_value(value)]
    return args


def preview_command(cfg: Config) -> str:
    """The shell command that reproduces ``cfg`` (each argument quoted for POSIX shells)."""
    return shlex.join(["tuneforge", "train", *command_args(cfg)])


def check_mapping_text(text: str) -> Msg | None:
    """A key=value list that the command line can carry unchanged; None if fine."""
    for part in (text or "").split(","):
        if part.strip() and "=" not in part:
            return Msg("key_problem", key="dataset_vars", problem=Msg("expect_pairs", got=part.strip()))
    return None
