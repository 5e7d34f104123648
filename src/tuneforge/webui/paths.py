"""Paths typed into the web UI are confined to one root folder (the folder the UI was started in, or --root)."""

from __future__ import annotations

from pathlib import Path

from tuneforge.errors import TuneforgeError


def confine(text: str, root: Path, what: str = "path") -> Path:
    """``text`` resolved inside ``root`` (relative paths are relative to it); anything outside is refused.

    Symlinks are resolved before the check, so a link pointing out of the root is refused too.
    """
    root = Path(root).resolve()
    raw = (text or "").strip()
    if not raw:
        raise TuneforgeError(f"{what} is empty", f"give a path inside {root}")
    if "\x00" in raw:
        raise TuneforgeError(f"{what} {raw!r} contains a NUL byte", "type a plain path")
    p = Path(raw).expanduser()
    full = (p if p.is_absolute() else root / p).resolve()
    if full != root and root not in full.parents:
        raise TuneforgeError(f"{what} {raw!r} is outside the working folder {root}",
                             f"use a path inside {root} (e.g. saves/my-run), or restart with "
                             f"`tuneforge webui --root <folder>`")
    return full


def confine_list(text: str, root: Path, what: str) -> list[Path]:
    return [confine(part, root, what) for part in (text or "").split(",") if part.strip()]


def relative(path: Path, root: Path) -> str:
    """How a confined path is written into configs and commands: relative to the root when possible."""
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        return str(path)
