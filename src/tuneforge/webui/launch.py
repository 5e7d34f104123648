"""Who may reach the web UI: loopback by default; any other address or a public share link needs a login."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tuneforge.errors import ConfigError, TuneforgeError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a hostname we cannot vouch for binds wherever it resolves


def parse_auth(auth: str | None, auth_file: str | None) -> list[tuple[str, str]]:
    """``user:password`` pairs from --auth and/or a file holding one ``user:password`` per line (# comments)."""
    pairs: list[tuple[str, str]] = []
    sources = []
    if auth:
        sources.append(("--auth", 0, auth))
    if auth_file:
        p = Path(auth_file)
        if not p.is_file():
            raise TuneforgeError(f"--auth-file {auth_file!r}: no such file",
                                 "write one user:password per line into a file and pass its path")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                sources.append((auth_file, i, line.strip()))
    for where, line, text in sources:
        user, sep, password = text.partition(":")
        if not sep or not user.strip() or not password:
            place = f"{where} line {line}" if line else where
            raise TuneforgeError(f"{place}: expected user:password", "e.g. --auth admin:a-long-password")
        pairs.append((user.strip(), password))
    return pairs


def check_launch(host: str, share: bool, auth: list[tuple[str, str]]) -> None:
    """Refuse to expose the UI beyond this machine without a login."""
    if auth:
        return
    if share:
        raise TuneforgeError("--share publishes the UI through a public link, so it needs a login",
                             "add --auth user:password (or --auth-file FILE with one user:password per line)")
    if not is_loopback(host):
        raise TuneforgeError(f"--host {host} makes the UI reachable from other machines, so it needs a login",
                             "add --auth user:password (or --auth-file FILE), or bind to 127.0.0.1 (the default)")


WEBUI_USAGE = """usage: tuneforge webui [--host 127.0.0.1] [--port 7860] [--root DIR] [--auth user:password]
                       [--auth-file FILE] [--share] [--lang en|zh]

  --host       address to bind (default 127.0.0.1). Any non-loopback address needs --auth or --auth-file.
  --port       port (default 7860)
  --root       working folder: every path typed into the UI must lie inside it (default: the current folder)
  --auth       user:password required to open the UI
  --auth-file  file with one user:password per line
  --share      also publish a public Gradio link (needs --auth or --auth-file)
  --lang       (global) starting language: en or zh (switchable in the page); also the language of errors
  needs the webui extra: pip install "tuneforge[webui]"
"""


def parse_webui_args(argv: list[str]) -> dict:
    """--key value / --key=value / --share for `tuneforge webui`; every problem at once. (--lang, the starting
    language, is the CLI's global flag.)"""
    opts = {"host": "127.0.0.1", "port": 7860, "root": ".", "auth": None, "auth_file": None, "share": False}
    problems, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            problems.append(f"unexpected argument {tok!r}: options are --key value")
            i += 1
            continue
        key, _, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if key == "share":
            opts["share"] = val.lower() not in ("false", "0", "no") if val else True
            i += 1
            continue
        if key not in opts:
            from tuneforge.config.parse import did_you_mean

            flag = "--" + key.replace("_", "-")
            known = ["--" + k.replace("_", "-") for k in opts]
            problems.append(f"webui does not take {flag}{did_you_mean(flag, known)} (see `tuneforge webui --help`)")
            skip_value = not val and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            i += 2 if skip_value else 1
            continue
        if not val:
            if i + 1 >= len(argv):
                problems.append(f"--{key} needs a value")
                break
            val, i = argv[i + 1], i + 1
        opts[key] = val
        i += 1
    try:
        opts["port"] = int(opts["port"])
    except ValueError:
        problems.append(f"--port must be a whole number, got {opts['port']!r}")
    if problems:
        raise ConfigError(problems)
    return opts
