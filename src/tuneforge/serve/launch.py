"""`tuneforge api`: check everything (options, bind address, config) before the model loads, then serve."""

from __future__ import annotations

import socket

from tuneforge.errors import TuneforgeError
from tuneforge.serve.options import ServeOptions, check_bind, options_from


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound here, so a busy port is a clear error and --port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise TuneforgeError(f"cannot listen on {host}:{port}: {e.strerror}",
                             "pick another --port (or stop what uses it), or check --host") from None
    sock.listen(128)
    return sock


def build_app(cfg, opts: ServeOptions):
    from tuneforge.serve.app import create_app
    from tuneforge.serve.backend import ChatBackend, RewardBackend

    backend = (RewardBackend if opts.stage == "rm" else ChatBackend).from_config(cfg, opts)
    return create_app(backend, opts)


def serve(cfg, extra: dict) -> int:
    from tuneforge.config.lf_keys import apply_lf_generation_defaults
    from tuneforge.models import DEFAULT_MODEL
    from tuneforge.recipes.preflight import preflight

    opts = options_from(extra)
    check_bind(opts)
    apply_lf_generation_defaults(cfg)
    if not cfg.model.model_name_or_path:
        cfg.model.model_name_or_path = DEFAULT_MODEL
    preflight(cfg, for_training=False)  # config mistakes are answered before torch is imported
    try:
        import uvicorn  # noqa: F401
        import fastapi  # noqa: F401
    except ImportError as e:
        raise TuneforgeError(f"the API server needs fastapi and uvicorn ({e.name} is missing)",
                             'pip install "tuneforge[api]"') from None
    import uvicorn

    sock = bind(opts.host, opts.port)  # before the model loads: a busy port is answered at once
    app = build_app(cfg, opts)
    host, port = sock.getsockname()[:2]
    print(f"tuneforge api: serving {', '.join(app.state.server.backend.adapters)} on http://{opts.host}:{port}/v1"
          + (" (API key required)" if opts.api_key else ""), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
    return 0
