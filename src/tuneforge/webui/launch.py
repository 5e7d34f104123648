"""Who may reach the web UI: loopback by default; any other address or a public share link needs a login."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tuneforge.errors import TuneforgeError

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
