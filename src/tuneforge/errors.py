"""User-facing errors: a message that says what is wrong and a hint that says what to do.

The CLI prints these without a traceback (``--debug`` shows one).
"""

from __future__ import annotations


class TuneforgeError(Exception):
    """An error caused by the user's input or environment, with a fix to suggest."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(TuneforgeError):
    """One or more problems in the resolved configuration (all reported together)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} configuration {noun}:\n{lines}")


class DataError(TuneforgeError):
    """A dataset file or row that cannot be used; names the file and line/row."""


class ModelError(TuneforgeError):
    """A model or adapter that cannot be found or loaded."""
