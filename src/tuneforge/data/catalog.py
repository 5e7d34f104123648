"""The dataset catalog: ``<dataset_dir>/dataset_info.json`` (LLaMA-Factory's schema) plus our built-in datasets.

An entry looks like ``{"file_name": "x.json", "formatting": "alpaca" | "sharegpt" | "openai", "columns": {...},
"tags": {...}, "ranking": false, "split": "train", "num_samples": 100}``. A name found in the user's catalog wins over
a built-in of the same name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.errors import DataError

BUILTIN_DIR = Path(__file__).parent / "builtin"
FORMATS = ("alpaca", "sharegpt", "openai")
# LLaMA-Factory's name for the identity set.
BUILTIN_ALIASES = {"self_cognition": "identity"}


@dataclass
class DatasetEntry:
    name: str
    path: Path
    formatting: str | None = None  # None = infer from the columns
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    ranking: bool = False
    split: str = "train"
    num_samples: int | None = None
    vars: dict[str, str] = field(default_factory=dict)  # default values for {{placeholders}}
    builtin: bool = False


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(Msg("catalog_invalid_json", path=path, line=e.lineno, column=e.colno, error=e.msg),
                        Msg("catalog_invalid_json_fix")) from None
    if not isinstance(info, dict):
        raise DataError(Msg("catalog_not_object", path=path), Msg("catalog_not_object_fix"))
    return info


def _entry(name: str, spec: dict[str, Any], base: Path, info_path: Path, builtin: bool) -> DatasetEntry:
    if not isinstance(spec, dict):
        raise DataError(Msg("catalog_entry_not_object", path=info_path, name=name))
    for remote in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"):
        if remote in spec and "file_name" not in spec:
            raise DataError(Msg("catalog_remote", path=info_path, name=name, remote=remote), Msg("catalog_remote_fix"))
    if "file_name" not in spec:
        raise DataError(Msg("catalog_no_file_name", path=info_path, name=name), Msg("catalog_no_file_name_fix"))
    fmt = spec.get("formatting")
    if fmt is not None and fmt not in FORMATS:
        raise DataError(Msg("catalog_bad_format", path=info_path, name=name, fmt=fmt),
                        Msg("catalog_bad_format_fix", formats=", ".join(FORMATS)))
    return DatasetEntry(
        name=name, path=base / spec["file_name"], formatting=fmt, columns=dict(spec.get("columns") or {}),
        tags=dict(spec.get("tags") or {}), ranking=bool(spec.get("ranking", False)),
        split=str(spec.get("split", "train")), num_samples=spec.get("num_samples"),
        vars=dict(spec.get("vars") or {}), builtin=builtin)


def load_catalog(dataset_dir: str | Path | None) -> dict[str, DatasetEntry]:
    """Built-ins overlaid with the user's ``dataset_info.json`` (if the folder and file exist)."""
    catalog: dict[str, DatasetEntry] = {}
    info_path = BUILTIN_DIR / "dataset_info.json"
    for name, spec in _read_info(info_path).items():
        catalog[name] = _entry(name, spec, BUILTIN_DIR, info_path, builtin=True)
    if dataset_dir:
        user_info = Path(dataset_dir) / "dataset_info.json"
        if user_info.is_file():
            for name, spec in _read_info(user_info).items():
                catalog[name] = _entry(name, spec, Path(dataset_dir), user_info, builtin=False)
    return catalog


def split_names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def lookup(catalog: dict[str, DatasetEntry], name: str) -> DatasetEntry | None:
    if name in catalog:
        return catalog[name]
    alias = BUILTIN_ALIASES.get(name)
    return catalog.get(alias) if alias else None


def check_datasets(names: str | None, dataset_dir: str | None) -> list[str]:
    """Problems with the requested dataset names and files, without reading rows."""
    try:
        catalog = load_catalog(dataset_dir)
    except DataError as e:
        return [Msg("with_hint", message=e.message, hint=e.hint) if e.hint else e.message]
    problems = []
    for name in split_names(names):
        entry = lookup(catalog, name)
        if entry is None:
            info = f"{dataset_dir}/dataset_info.json"
            where = info if dataset_dir and Path(info).is_file() else Msg("builtins_only", path=info)
            known = sorted(set(catalog) | set(BUILTIN_ALIASES))
            problems.append(Msg("dataset_unknown", name=name, where=where, known=", ".join(known)))
        elif not entry.path.exists():
            problems.append(Msg("dataset_file_missing", name=name, path=str(entry.path)))
    return problems
