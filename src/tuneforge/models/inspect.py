"""What a model folder holds, read from its safetensors headers alone (no torch, no weights): the checks that
would otherwise wait until the model has loaded — a ``lora_target`` typo — run with the other config checks.

A safetensors file starts with an 8-byte little-endian header length and a JSON header naming every tensor with its
shape; a sharded checkpoint lists its files in ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tuneforge.config.messages import Msg, or_list

HEADER_LIMIT = 100 * 1024 * 1024  # a header larger than this is not a safetensors header


def _header(path: Path) -> dict:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > HEADER_LIMIT:
            raise ValueError(f"{path}: not a safetensors file")
        return json.loads(fh.read(n))


def weight_shapes(folder: str | Path) -> dict[str, list[int]] | None:
    """{tensor name: shape} of the safetensors weights in ``folder``; None where there are none to read."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    try:
        if index.is_file():
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        elif (folder / "model.safetensors").is_file():
            files = ["model.safetensors"]
        else:
            return None
        shapes: dict[str, list[int]] = {}
        for name in files:
            shapes.update({k: v["shape"] for k, v in _header(folder / name).items() if k != "__metadata__"})
        return shapes
    except (OSError, ValueError, KeyError, struct.error):
        return None


def linear_names(folder: str | Path) -> list[str] | None:
    """Short names of the modules with a matrix weight that is not the vocabulary (embedding, head): what LoRA can
    target by name. None where the folder has no readable safetensors weights."""
    shapes = weight_shapes(folder)
    if shapes is None:
        return None
    vocab = None
    try:
        vocab = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError):
        pass
    names = set()
    for key, shape in shapes.items():
        if not key.endswith(".weight") or len(shape) != 2 or (vocab and vocab in shape):
            continue
        module = key[: -len(".weight")]
        names.add(module.split(".")[-1])
    return sorted(names)


def model_folder(name: str | None) -> Path | None:
    """The local folder ``name`` stands for, without converting or downloading anything (None if there is none)."""
    if not name:
        return None
    from tuneforge.models.load import ALIASES, cache_root

    if name.lower() in ALIASES:  # the dequantized cache resolve_model_path writes (None until the first use)
        folder = cache_root() / ALIASES[name.lower()].gguf_file.removesuffix(".gguf").lower()
        return folder if (folder / "config.json").is_file() else None
    p = Path(name).expanduser()
    return p if (p / "config.json").is_file() else None


def check_lora_target(model_name: str | None, lora_target: str | None) -> Msg | None:
    """A ``lora_target`` name no module of the model has, with the names it has and a did-you-mean."""
    import difflib

    wanted = [x.strip() for x in (lora_target or "").split(",") if x.strip()]
    folder = model_folder(model_name)
    if not wanted or wanted == ["all"] or folder is None:
        return None
    available = linear_names(folder)
    if not available:
        return None
    missing = [w for w in wanted if w not in available]
    if not missing:
        return None
    close = sorted({c for w in missing for c in difflib.get_close_matches(w, available, n=1, cutoff=0.6)})
    hint = Msg("did_you_mean", names=or_list(close[:3])) if close else ""
    return Msg("lora_target_missing_early", missing=", ".join(missing), available=", ".join(available), hint=hint)


PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def pickle_only(folder: Path, target: str) -> Msg | None:
    """A folder whose weights exist only as pickle files (``*.bin``, ``*.pt``…): refused before anything loads them —
    torch's own refusal is a traceback that suggests ``weights_only=False``, i.e. running the payload."""
    if any(folder.glob("*.safetensors")) or any(folder.glob("*.gguf")):
        return None
    found = sorted(f.name for pattern in PICKLES for f in folder.glob(pattern) if "training_args" not in f.name)
    if not found:
        return None
    return Msg("pickle_weights", path=str(folder), files=", ".join(found), first=str(folder / found[0]),
               target=str(folder / target))
