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


MULTIMODAL_COLUMNS = ("images", "videos", "audios")


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
    # Hub datasets (LLaMA-Factory's hf_hub_url / ms_hub_url): loaded by datasets.load_dataset (data/hub.py).
    hub_id: str | None = None
    ms_hub_id: str | None = None
    subset: str | None = None
    folder: str | None = None
    # An entry that cannot be used: reported only when the dataset is asked for (an unrelated bad entry never
    # blocks a run).
    problem: Msg | None = None
    hint: Msg | None = None

    @property
    def source(self) -> str:
        return "hub" if (self.hub_id or self.ms_hub_id) else "file"


def _read_info(path: Path) -> dict[str, Any]:
    from tuneforge.data.readers import read_utf8

    try:
        info = json.loads(read_utf8(path))
    except RecursionError:
        raise DataError(Msg("data_json_too_deep", path=str(path), depth=1000), Msg("catalog_invalid_json_fix")) from None
    except json.JSONDecodeError as e:
        raise DataError(Msg("catalog_invalid_json", path=path, line=e.lineno, column=e.colno, error=e.msg),
                        Msg("catalog_invalid_json_fix")) from None
    if not isinstance(info, dict):
        raise DataError(Msg("catalog_not_object", path=path), Msg("catalog_not_object_fix"))
    return info


def _bad(name: str, base: Path, builtin: bool, problem: Msg, hint: Msg | None = None) -> DatasetEntry:
    return DatasetEntry(name=name, path=base, builtin=builtin, problem=problem, hint=hint)


def _entry(name: str, spec: dict[str, Any], base: Path, info_path: Path, builtin: bool) -> DatasetEntry:
    """An entry of dataset_info.json, resolved as LLaMA-Factory does: a hub url wins over file_name."""
    if not isinstance(spec, dict):
        return _bad(name, base, builtin, Msg("catalog_entry_not_object", path=info_path, name=name))
    fmt = spec.get("formatting")
    if fmt is not None and fmt not in FORMATS:
        return _bad(name, base, builtin, Msg("catalog_bad_format", path=info_path, name=name, fmt=fmt),
                    Msg("catalog_bad_format_fix", formats=", ".join(FORMATS)))
    for key in ("columns", "tags", "vars"):  # mappings of names to names (or default values)
        value = spec.get(key)
        if value is not None and (not isinstance(value, dict)
                                  or not all(isinstance(v, (str, int, float)) for v in value.values())):
            return _bad(name, base, builtin, Msg("catalog_not_mapping", path=info_path, name=name, key=key,
                                                 kind=type(value).__name__), Msg("catalog_not_mapping_fix", key=key))
    n = spec.get("num_samples")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        return _bad(name, base, builtin, Msg("catalog_num_samples", path=info_path, name=name, got=n),
                    Msg("catalog_num_samples_fix"))
    columns = dict(spec.get("columns") or {})
    media = [c for c in MULTIMODAL_COLUMNS if c in columns]
    if media:
        return _bad(name, base, builtin, Msg("catalog_multimodal", path=info_path, name=name, columns=media),
                    Msg("multimodal_fix"))
    hub, ms = spec.get("hf_hub_url"), spec.get("ms_hub_url")
    if not hub and not ms:
        for remote in ("om_hub_url", "script_url", "cloud_file_name"):
            if remote in spec:
                return _bad(name, base, builtin, Msg("catalog_remote", path=info_path, name=name, remote=remote),
                            Msg("catalog_remote_fix"))
        if "file_name" not in spec:
            return _bad(name, base, builtin, Msg("catalog_no_file_name", path=info_path, name=name),
                        Msg("catalog_no_file_name_fix"))
    return DatasetEntry(
        name=name, path=base / str(spec.get("file_name", "")), formatting=fmt, columns=columns,
        tags=dict(spec.get("tags") or {}), ranking=bool(spec.get("ranking", False)),
        split=str(spec.get("split", "train")), num_samples=spec.get("num_samples"),
        vars=dict(spec.get("vars") or {}), builtin=builtin, hub_id=hub, ms_hub_id=ms, subset=spec.get("subset"),
        folder=spec.get("folder"))


ONLINE = "ONLINE"  # LLaMA-Factory's dataset_dir for "dataset names are hub ids"


def load_catalog(dataset_dir: str | Path | None) -> dict[str, DatasetEntry]:
    """Built-ins overlaid with the user's ``dataset_info.json`` (if the folder and file exist). Entries are checked
    when they are asked for (``lookup`` / ``check_datasets``), not here."""
    catalog: dict[str, DatasetEntry] = {}
    info_path = BUILTIN_DIR / "dataset_info.json"
    for name, spec in _read_info(info_path).items():
        catalog[name] = _entry(name, spec, BUILTIN_DIR, info_path, builtin=True)
    if dataset_dir and str(dataset_dir).startswith("REMOTE:"):
        raise DataError(Msg("catalog_remote_dir", dir=str(dataset_dir)), Msg("catalog_remote_dir_fix"))
    if dataset_dir and str(dataset_dir) != ONLINE:
        user_info = Path(dataset_dir) / "dataset_info.json"
        if user_info.is_file():
            for name, spec in _read_info(user_info).items():
                catalog[name] = _entry(name, spec, Path(dataset_dir), user_info, builtin=False)
    return catalog


def split_names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def lookup(catalog: dict[str, DatasetEntry], name: str, dataset_dir: str | Path | None = None) -> DatasetEntry | None:
    if name in catalog:
        return catalog[name]
    alias = BUILTIN_ALIASES.get(name)
    if alias:
        return catalog.get(alias)
    if dataset_dir is not None and str(dataset_dir) == ONLINE:  # dataset_dir ONLINE: the name is a hub id
        return DatasetEntry(name=name, path=Path(name), hub_id=name, ms_hub_id=name)
    return None


def check_datasets(names: str | None, dataset_dir: str | None) -> list[str]:
    """Problems with the requested dataset names and files, without reading rows (hub datasets are checked when
    they load: finding them may need the network)."""
    try:
        catalog = load_catalog(dataset_dir)
    except DataError as e:
        return [Msg("with_hint", message=e.message, hint=e.hint) if e.hint else e.message]
    problems = []
    for name in split_names(names):
        entry = lookup(catalog, name, dataset_dir)
        if entry is not None and entry.problem is not None:
            problems.append(Msg("with_hint", message=entry.problem, hint=entry.hint) if entry.hint else entry.problem)
        elif entry is not None and entry.source == "hub":
            continue
        elif entry is None:
            info = f"{dataset_dir}/dataset_info.json"
            where = info if dataset_dir and Path(info).is_file() else Msg("builtins_only", path=info)
            known = sorted(set(catalog) | set(BUILTIN_ALIASES))
            problems.append(Msg("dataset_unknown", name=name, where=where, known=", ".join(known)))
        elif not entry.path.exists() and not has_glob(entry.path):
            problems.append(Msg("dataset_file_missing", name=name, path=str(entry.path)))
    return problems


def has_glob(path: Path) -> bool:
    """file_name as a glob pattern (`data/*.jsonl`), matched relative to dataset_dir."""
    return any(c in str(path) for c in "*?[")
