"""User-facing errors: a message that says what is wrong and a hint that says what to do — and how they are shown.

The CLI prints them without a traceback (``--debug`` shows one) in the language of its ``--lang`` flag; the web UI
shows the same text (or its HTML form). Catalogued messages (``config.messages.Msg``, where the texts of the lines
below live too: error_line, error_hint, problems_*) render in either language; plain strings are shown as they are.
In English the text is exactly the message and hint as raised.
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


def problems_heading(n: int):
    """"N configuration problems:" as a catalogued message. (config.messages is imported here, not at the top: the
    config package imports this module.)"""
    from tuneforge.config.messages import Msg

    return Msg("problems_one") if n == 1 else Msg("problems_many", n=n)


class ConfigError(TuneforgeError):
    """One or more problems in the resolved configuration (all reported together)."""

    def __init__(self, problems: list[str]):
        # a problem found by two checks (preflight and the dry run's data pass both read the catalog) is listed once
        self.problems = list(dict.fromkeys(problems))
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{problems_heading(len(self.problems))}\n{lines}")


class DataError(TuneforgeError):
    """A dataset file or row that cannot be used; names the file and line/row."""


class ModelError(TuneforgeError):
    """A model or adapter that cannot be found or loaded."""


def check_lang(lang: str) -> str | None:
    """A problem description if ``lang`` is not a language tuneforge speaks."""
    from tuneforge.config.messages import LANGUAGES

    return None if lang in LANGUAGES else f"--lang must be {' or '.join(LANGUAGES)}, got {lang!r}"


def error_text(e: TuneforgeError, lang: str = "en") -> str:
    """``e`` as plain text in ``lang``: the problems of a ConfigError one per line, else the message and its hint."""
    from tuneforge.config.messages import Msg, tr

    if isinstance(e, ConfigError):
        return "\n".join([tr(problems_heading(len(e.problems)), lang), *(f"  - {tr(p, lang)}" for p in e.problems)])
    return tr(e.message, lang) + (f"\n  {tr(Msg('error_hint', hint=e.hint), lang)}" if e.hint else "")


def render(e: TuneforgeError, lang: str = "en") -> str:
    """What the CLI prints for ``e`` (``error: …`` and the hint below it)."""
    from tuneforge.config.messages import Msg, tr

    return tr(Msg("error_line", message=error_text(e, lang)), lang)
