"""Crash-safe files in a run folder: a file is replaced whole (written to a temporary name in the same folder,
fsynced, renamed over the old one: a reader sees the old bytes or the new ones, never half) or appended one whole
line at a time; JSON is strict (NaN/Inf become null) so that every JSON parser reads it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±Inf) replaced by None, through dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, **kw) -> str:
    """Strict JSON text of ``value`` (no bare NaN/Infinity tokens)."""
    return json.dumps(strict(value), allow_nan=False, **kw)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + rename + fsync of the folder)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        from tuneforge.compat import umask

        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; a run-folder file gets what open() would give
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, value: Any, **kw) -> Path:
    return write_text(path, dumps(value, **kw))


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` and its newline in one write, flushed to disk: a crash leaves whole lines, or one partial
    last line that :func:`read_jsonl` sets aside."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> tuple[list[dict], list[int]]:
    """The JSON objects of a .jsonl file and the line numbers (1-based) of lines that are not one (a partial line
    left by a crash)."""
    rows, bad = [], []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad.append(i)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(i)
    return rows, bad


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
