"""Paths typed into the web UI are confined to one root folder (the folder the UI was started in, or --root)."""

from __future__ import annotations

from pathlib import Path

from tuneforge.errors import TuneforgeError
from tuneforge.webui.i18n import Msg  # the UI's messages are registered there


def confine(text: str, root: Path, what: str | Msg | None = None) -> Path:
    """``text`` resolved inside ``root`` (relative paths are relative to it); anything outside is refused.

    Symlinks are resolved before the check, so a link pointing out of the root is refused too.
    """
    root = Path(root).resolve()
    what = what if what is not None else Msg("what_path")  # a setting's name, or a Msg naming the thing
    raw = (text or "").strip()
    if not raw:
        raise TuneforgeError(Msg("msg_path_empty", what=what), Msg("msg_path_empty_fix", root=root))
    if "\x00" in raw:
        raise TuneforgeError(Msg("msg_path_nul", what=what, path=raw), Msg("msg_path_nul_fix"))
    p = Path(raw).expanduser()
    full = (p if p.is_absolute() else root / p).resolve()
    if full != root and root not in full.parents:
        raise TuneforgeError(Msg("msg_path_outside", what=what, path=raw, root=root),
                             Msg("msg_path_outside_fix", root=root))
    return full


def confine_list(text: str, root: Path, what: str | Msg) -> list[Path]:
    return [confine(part, root, what) for part in (text or "").split(",") if part.strip()]


def relative(path: Path, root: Path) -> str:
    """How a confined path is written into configs and commands: relative to the root when possible."""
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        return str(path)


def confine_dataset(entry, root: Path) -> None:
    """Every file a dataset entry of a ``dataset_info.json`` makes the UI read — its ``file_name`` (absolute, with
    ``../`` or a symlink out), each file of a folder or glob, each symlink among them — inside ``root``. Built-in and
    hub datasets read nothing of the user's disk."""
    if entry.builtin or entry.source != "file" or entry.problem is not None:
        return
    what = Msg("what_dataset_file", name=entry.name)
    path = Path(entry.path)
    if any(c in str(path) for c in "*?["):
        import glob

        fixed = []  # the part of the pattern before its first wildcard must lie inside the root itself
        for part in path.parts:
            if any(c in part for c in "*?["):
                break
            fixed.append(part)
        confine(str(Path(*fixed)) if fixed else str(root), root, what)
        files = [Path(f) for f in glob.glob(str(path), recursive=True)]
    elif path.is_dir():
        confine(str(path), root, what)
        files = [f for f in path.rglob("*")]
    else:
        files = [path]
    for f in files:
        confine(str(f), root, what)
