"""Console logging. Every automatic choice is logged with its reason via :func:`choice`."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True, highlight=False)
logger = logging.getLogger("tuneforge")


def setup(level: int = logging.INFO) -> None:
    if not logger.handlers:
        if is_tty():
            handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False, markup=False,
                                                   rich_tracebacks=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:  # plain, unwrapped lines for logs, CI and the web UI's log tail
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def info(msg: str) -> None:
    logger.info(msg)


def warn(msg: str) -> None:
    logger.warning(msg)


def choice(what: str, reason: str) -> None:
    """Log an automatic decision and why it was made, e.g. ``dtype=float32: fp16 asked but no CUDA device``."""
    logger.info(f"{what}: {reason}")


def is_tty() -> bool:
    return sys.stderr.isatty()
