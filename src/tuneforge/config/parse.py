"""Turn a YAML file, ``key=value`` overrides and ``--key value`` flags into one :class:`Config`.

Strict: an unknown key is an error with a "did you mean"; every problem (unknown keys, bad values, conflicting
settings) is collected and raised together as one :class:`~tuneforge.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config.messages import Msg, or_list
from tuneforge.config import lf_keys
from tuneforge.config.schema import GROUPS, field_choices, field_map
from tuneforge.errors import ConfigError, TuneforgeError

# Other names users type for the same key (ChatGLM's, older LLaMA-Factory's).
KEY_ALIASES = {"lora_r": "lora_rank", "evaluation_steps": "eval_steps", "pre_seq_len": "num_virtual_tokens"}
TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}


class BareFlag(str):
    """The value of a ``--flag`` given without one: "true" for a True/False setting, an error for any other."""


# A value that is not a choice but names something the choices cover another way: the fix, not just the list.
CHOICE_HINTS = {
    ("finetuning_type", "qlora"): Msg("qlora_is_lora"),
    ("finetuning_type", "dora"): Msg("lora_variant_is_lora", name="DoRA", flag="--use_dora True"),
    ("finetuning_type", "rslora"): Msg("lora_variant_is_lora", name="rsLoRA", flag="--use_rslora True"),
    ("finetuning_type", "pissa"): Msg("lora_variant_is_lora", name="PiSSA", flag="--pissa_init True"),
    ("finetuning_type", "loraplus"): Msg("lora_variant_is_lora", name="LoRA+", flag="--loraplus_lr_ratio 16"),
    ("finetuning_type", "lora+"): Msg("lora_variant_is_lora", name="LoRA+", flag="--loraplus_lr_ratio 16"),
}


class Config:
    """One resolved configuration: an instance of every settings group (``schema.GROUPS``: model, data, finetune,
    each method's options, train, generate, export) as an attribute of the group's name — ``cfg.train.seed``,
    ``cfg.lora.lora_rank``. Groups registered by the modules that own them are part of it like the others."""

    def __init__(self, **groups: Any):
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise TypeError(f"unknown settings groups {unknown}")
        for name, cls in GROUPS.items():
            setattr(self, name, groups.get(name) or cls())
        self.explicit: set = set()  # keys the user set (file, overrides or flags)
        self.ignored: dict = {}  # accepted-but-ignored compatibility keys → reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self.to_flat() == other.to_flat()

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{g}={getattr(self, g)!r}" for g in GROUPS) + ")"

    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group in GROUPS:
            obj = getattr(self, group)
            for f in fields(obj):
                out[f.name] = getattr(obj, f.name)
        return out

    def to_yaml(self) -> str:
        """The resolved config, grouped by concern; feeding it back to `tuneforge train` reproduces the run."""
        chunks = []
        for group in GROUPS:
            obj = getattr(self, group)
            values = {f.name: getattr(obj, f.name) for f in fields(obj)}
            chunks.append(f"### {group}\n" + yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
        return "\n".join(chunks)


def _type_of(f) -> tuple[type, bool]:
    """(base type, optional?) of a dataclass field annotated like ``int | None``."""
    hint = f.type
    if isinstance(hint, str):
        hint = eval(hint, {"dict": dict, "list": list}, {})  # annotations are simple builtins only
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        base = [a for a in args if a is not type(None)][0]
        return base, True
    return hint, False


def parse_dict_value(text: str) -> dict[str, str]:
    """``name=Nimbus,author=Orchard Labs`` → ``{"name": "Nimbus", "author": "Orchard Labs"}``."""
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(Msg("expect_pairs", got=part.strip()))
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def coerce(key: str, f, value: Any) -> Any:
    base, optional = _type_of(f)
    if isinstance(value, BareFlag) and base is not bool:
        kind = {int: "kind_int", float: "kind_number"}.get(base, "kind_text")
        example = f.default if f.default not in (None, "", {}) and not callable(f.default) else "…"
        choices = field_choices(f)
        raise ValueError(Msg("flag_without_value", kind=Msg(kind), key=key, example=choices[0] if choices else example))
    is_none_text = isinstance(value, str) and value.strip().lower() in {"none", "null", "~"}
    if value is None or (is_none_text and optional):
        if optional:
            return None
        raise ValueError(Msg("needs_value"))
    if base is bool:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in TRUE:
            return True
        if s in FALSE:
            return False
        raise ValueError(Msg("expect_bool", got=value))
    if base is int:
        if isinstance(value, bool):
            raise ValueError(Msg("expect_int", got=value))
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(Msg("expect_int", got=value)) from None
    if base is float:
        try:
            number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
        except (ValueError, OverflowError):
            raise ValueError(Msg("expect_number", got=value)) from None
        if not math.isfinite(number):  # learning_rate inf trains to NaN; no float setting means anything at inf
            raise ValueError(Msg("expect_finite", got=value))
        return number
    if base is dict:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return parse_dict_value(str(value))
    if f.metadata.get("json_value") and isinstance(value, (dict, list)):  # a nested mapping kept whole (fsdp_config)
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        if f.metadata.get("json_list"):  # free-text items (questions) may hold commas: keep them as a JSON list
            return json.dumps([str(v) for v in value], ensure_ascii=False)
        return ",".join(str(v) for v in value)  # YAML lists for comma-list keys (dataset, lora_target, …)
    value = str(value)
    choices = field_choices(f)
    if choices and f.metadata.get("choice_list"):  # a comma list of choices (report_to)
        bad = [v for v in value.split(",") if v.strip() not in choices]
        if bad:
            raise ValueError(Msg("not_one_of", got=",".join(bad), choices=", ".join(choices)))
        return ",".join(v.strip() for v in value.split(","))
    if choices and value not in choices:
        hint = CHOICE_HINTS.get((key, value.strip().lower()))
        if hint:
            raise ValueError(Msg("not_one_of_hint", got=value, choices=", ".join(choices), hint=hint))
        raise ValueError(Msg("not_one_of_suggest", got=value, choices=", ".join(choices),
                             suggestion=did_you_mean(value, list(choices))))
    return value


def did_you_mean(key: str, known: list[str]) -> Msg | str:
    """" — did you mean 'x'?" with the closest names only: those about as close as the best one (a typo of
    lora_rank suggests lora_rank, not lora_alpha and lora_target too); "" when nothing is close."""
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if not close:
        return ""
    score = {c: difflib.SequenceMatcher(None, key, c).ratio() for c in close}
    best = max(score.values())
    return Msg("did_you_mean", names=or_list([c for c in close if score[c] >= best - 0.1]))


def build_config(values: dict[str, Any], base: Config | None = None, command: str = "train") -> Config:
    """Apply flat ``values`` onto ``base`` (or the defaults), collecting every problem. Names that are not settings
    of ``command`` go through the LLaMA-Factory key policy (config/lf_keys.py): ignored with a reason, or refused
    with the reason and the fix."""
    cfg = base or Config()
    fmap = field_map()
    problems: list[str] = []
    for raw_key, value in values.items():
        key = KEY_ALIASES.get(raw_key, raw_key)
        action, reason, fix = lf_keys.route(key, value, fmap[key][0] if key in fmap else None, command)
        if action == "ignore":
            cfg.ignored[key] = reason
            continue
        if action == "refuse":
            problems.append(Msg("lf_refused", key=raw_key, value=value, reason=reason, fix=fix))
            continue
        if action == "unknown":
            problems.append(Msg("unknown_key", key=raw_key, suggestion=did_you_mean(raw_key, list(fmap))))
            continue
        group, f = fmap[key]
        try:
            setattr(getattr(cfg, group), key, coerce(key, f, value))
            cfg.explicit.add(key)
        except ValueError as e:
            problems.append(Msg("key_problem", key=key, problem=e.args[0] if e.args else str(e)))
    if problems:
        raise ConfigError(problems + _range_problems(cfg, command, base))
    lf_keys.normalize(cfg)
    return cfg


def _range_problems(cfg: Config, command: str, base: Config | None) -> list:
    """The range and cross-field problems of the values that did parse, so that one error lists every problem (a
    value that failed to parse keeps its default, which is valid). Only for a config built from scratch: a ``base`` may be
    partial on purpose (the web form builds one in steps)."""
    if base is not None:
        return []
    from tuneforge.config.validate import validate

    try:
        found = validate(cfg, for_training=command == "train")
    except Exception:  # noqa: BLE001 — the parse problems are reported whatever the checks make of the rest
        return []
    # only those about values given (a key not given yet is not a mistake of this list)
    return [p for p in found if any(re.search(rf"\b{k}\b", str(p)) for k in cfg.explicit)]


class _Duplicate(yaml.YAMLError):
    def __init__(self, key, first: int, second: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.second = key, first, second


class _NoDuplicates(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<: *anchor` merges (SafeLoader's job); complex keys are SafeLoader's to judge
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise _Duplicate(key, seen[key], key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise TuneforgeError(Msg("config_not_found", path=str(p)), Msg("config_not_found_fix"))
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TuneforgeError(Msg("yaml_not_utf8", path=p, offset=e.start, line=raw.count(b"\n", 0, e.start) + 1),
                             Msg("yaml_not_utf8_fix")) from None
    try:
        data = yaml.load(text, Loader=_NoDuplicates) or {}
    except _Duplicate as d:
        raise TuneforgeError(Msg("yaml_duplicate_key", path=p, key=d.key, first=d.first, second=d.second),
                             Msg("yaml_duplicate_key_fix")) from None
    except yaml.YAMLError as e:
        raise TuneforgeError(Msg("yaml_invalid", path=p, error=e), Msg("yaml_invalid_fix")) from None
    if not isinstance(data, dict):
        raise TuneforgeError(Msg("yaml_not_mapping", path=p, kind=type(data).__name__), Msg("yaml_not_mapping_fix"))
    # Accept the grouped layout that Config.to_yaml writes as well as LLaMA-Factory's flat one.
    return data


def split_argv(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """``[cfg.yaml] [key=value | --key value | --key=value]...`` → (yaml path, {key: raw value})."""
    path = None
    values: dict[str, Any] = {}
    problems: list[str] = []
    i = 0
    if argv and not argv[0].startswith("-") and "=" not in argv[0]:
        path, i = argv[0], 1
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            key = tok[2:].replace("-", "_") if "=" not in tok else tok[2:].split("=", 1)[0].replace("-", "_")
            if "=" in tok:
                values[key] = tok.split("=", 1)[1]
                i += 1
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                values[key] = argv[i + 1]
                i += 2
            else:
                values[key] = BareFlag("true")  # a bare --flag means True, as in LLaMA-Factory (bool keys only)
                i += 1
        elif "=" in tok:
            k, v = tok.split("=", 1)
            values[k.strip()] = v
            i += 1
        else:
            problems.append(Msg("unexpected_argument", arg=tok))
            i += 1
    if problems:
        raise ConfigError(problems)
    return path, values


def parse_args(argv: list[str], command: str = "train") -> Config:
    """Parse a full `tuneforge train` (or chat/export) argument list: file first, then overrides that win over it."""
    path, overrides = split_argv(argv)
    values: dict[str, Any] = {}
    if path is not None:
        values.update(load_yaml(path))
    values.update(overrides)
    return build_config(values, command=command)
