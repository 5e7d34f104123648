"""The flags of `tuneforge api` that are not model/generation settings, and who may reach the server."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from tuneforge.errors import ConfigError, TuneforgeError

# name -> help (the CLI table's `extra`: these are taken out of the arguments before the settings are parsed)
API_EXTRA = {
    "host": "address to bind (default 127.0.0.1); any non-loopback address needs --api_key",
    "port": "port (default 8000)",
    "api_key": "require `Authorization: Bearer KEY` on every route (compared in constant time)",
    "api_key_file": "read the key from the first line of this file (keeps it out of the process list)",
    "lora_modules": "more adapters served at once, picked by the request's `model`: name=path[,name2=path2]",
    "served_model_name": "the name the base model (with --adapter_name_or_path merged) is served under "
                         "(default: --model_name_or_path as given)",
    "stage": "sft (default: chat and completions) or rm (a --stage rm reward model: POST /v1/score)",
    "max_tokens_limit": "largest max_tokens a request may ask for (default 2048)",
    "max_n": "largest n (choices per request) (default 8)",
    "max_request_bytes": "largest request body in bytes (default 1000000)",
    "max_batch_size": "most sequences generated together in one batch (default 8)",
    "batch_wait_ms": "how long the scheduler waits for more requests to join a batch (default 10)",
    "cors_origins": "comma-separated origins allowed by CORS (default: CORS off)",
}


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    api_key_file: str | None = None
    lora_modules: dict[str, str] = field(default_factory=dict)
    served_model_name: str | None = None
    stage: str = "sft"
    max_tokens_limit: int = 2048
    max_n: int = 8
    max_request_bytes: int = 1_000_000
    max_batch_size: int = 8
    batch_wait_ms: float = 10.0
    cors_origins: list[str] = field(default_factory=list)


INTS = ("port", "max_tokens_limit", "max_n", "max_request_bytes", "max_batch_size")


def parse_lora_modules(text: str) -> tuple[dict[str, str], list[str]]:
    mods, problems = {}, []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            problems.append(f"--lora_modules {part!r}: expected name=path (e.g. --lora_modules agent=runs/agent)")
        elif name.strip() in mods:
            problems.append(f"--lora_modules: the name {name.strip()!r} is given twice; give each adapter its own")
        else:
            mods[name.strip()] = path.strip()
    return mods, problems


def options_from(extra: dict) -> ServeOptions:
    """The command's own flags (strings from the command line or values from YAML) → ServeOptions; every problem
    at once."""
    opts, problems = ServeOptions(), []
    for f in fields(ServeOptions):
        if f.name not in extra or extra[f.name] is None:
            continue
        v = extra[f.name]
        if f.name in INTS:
            try:
                v = int(v)
                if v < (0 if f.name == "port" else 1):
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"--{f.name} must be a whole number ≥ {0 if f.name == 'port' else 1}, got {v!r}")
                continue
        elif f.name == "batch_wait_ms":
            try:
                v = float(v)
                if v < 0:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"--batch_wait_ms must be a number ≥ 0, got {v!r}")
                continue
        elif f.name == "lora_modules":
            v, more = parse_lora_modules(v)
            problems += more
        elif f.name == "cors_origins":
            v = [o.strip() for o in str(v).split(",") if o.strip()]
        elif f.name == "stage":
            v = str(v)
            if v not in ("sft", "rm"):
                problems.append(f"--stage {v!r}: api serves sft (chat, completions) or rm (a reward model's "
                                "/v1/score)")
                continue
        else:
            v = str(v)
        setattr(opts, f.name, v)
    if opts.api_key_file:
        p = Path(opts.api_key_file)
        if opts.api_key:
            problems.append("give --api_key or --api_key_file, not both")
        elif not p.is_file():
            problems.append(f"--api_key_file {opts.api_key_file!r}: no such file; write the key on its first line")
        else:
            lines = p.read_text(encoding="utf-8").splitlines()
            opts.api_key = lines[0].strip() if lines else ""
    if opts.api_key is not None and not opts.api_key.strip():
        problems.append("--api_key is empty: give a long random key (e.g. `python -c \"import secrets; "
                        "print(secrets.token_urlsafe(32))\"`)")
    for name, path in opts.lora_modules.items():
        if not (Path(path) / "adapter_config.json").is_file():
            problems.append(f"--lora_modules {name}={path}: no adapter_config.json there; give the output_dir of a "
                            "LoRA training run")
    if opts.stage == "rm" and opts.lora_modules:
        problems.append("--lora_modules serves chat adapters; a --stage rm server scores with one reward model "
                        "(its adapter goes in --adapter_name_or_path)")
    if problems:
        raise ConfigError(problems)
    return opts


def check_bind(opts: ServeOptions) -> None:
    """Refuse to listen beyond this machine without a key."""
    from tuneforge.webui.launch import is_loopback  # noqa: the same loopback rule as the web UI (interfaces layer)

    if not is_loopback(opts.host) and not opts.api_key:
        raise TuneforgeError(f"--host {opts.host} makes the API reachable from other machines, so it needs a key",
                             "add --api_key KEY (clients then send `Authorization: Bearer KEY`), or bind to "
                             "127.0.0.1 (the default)")


API_USAGE = """usage: tuneforge api [config.yaml] --model_name_or_path M [--adapter_name_or_path A[,B]] [--template T]
                     [--lora_modules name=path[,name2=path2]] [--host 127.0.0.1] [--port 8000] [--api_key KEY | --api_key_file F]
                     [--stage sft|rm] [--max_tokens_limit 2048] [--max_n 8] [--max_request_bytes 1000000]
                     [--max_batch_size 8] [--batch_wait_ms 10] [--cors_origins URL[,URL]] [generation settings]

An OpenAI-compatible server (FastAPI + uvicorn): GET /v1/models, POST /v1/chat/completions (tools, streaming, n,
stop, seed, usage), POST /v1/completions, and POST /v1/score with --stage rm. Concurrent requests are batched on the
one model. Decoding is greedy unless the request (or the launch settings) asks for temperature/top_p; temperature 0
is greedy. Errors are OpenAI-shaped JSON.

api's own options:"""
