"""Tool calling through the API: whether a request's tools are rendered into the prompt and its reply parsed for
calls, and the reply as OpenAI's ``message`` (``tool_calls``, ``finish_reason: "tool_calls"``). The format of the
calls (and so the parser) is the one the served chat template renders; rendering and parsing are
``data/templates.py`` and ``infer/tools.py``, the same code training uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tuneforge.serve.errors import APIError

log = logging.getLogger("tuneforge.api")


@dataclass(frozen=True)
class Mode:
    render: bool = False  # the request's tools go into the prompt
    parse: bool = False  # the reply is parsed for calls
    fmt: str | None = None  # the tool-call format (infer/tools.FORMATS)


def format_of(backend) -> str | None:
    """The tool-call format of the served template (None: it renders no tools)."""
    try:
        from tuneforge.infer.tools import detect_format
    except ImportError:
        return None
    fmt = backend.engine.fmt
    return detect_format(getattr(backend.tokenizer, "chat_template", None), fmt.name)


def mode(req, fmt: str | None) -> Mode:
    choice = req.tool_choice
    if not req.tools:
        if choice not in (None, "none", "auto"):
            raise APIError(400, "tool_choice is set but tools is empty; send the tools the model may call",
                           "tool_choice")
        return Mode()
    if choice == "none":
        return Mode()
    if choice not in (None, "auto"):
        raise APIError(400, "tool_choice: only \"auto\" and \"none\" are supported (a call, once the model "
                            "opens one, is decoded schema-guided, but tuneforge does not force one); send "
                            "tool_choice \"auto\" or leave it out", "tool_choice",
                       "unsupported_parameter")
    if fmt is None:
        raise APIError(400, "this model's chat template renders no tools, so its replies cannot be read as tool "
                            "calls; start the server with a template that has tools (e.g. --template qwen, or a "
                            "model whose own template takes tools=)", "tools", "tools_unsupported")
    return Mode(True, True, fmt)


def safe_len(text: str, m: Mode) -> int:
    """How much of a partial reply can be streamed as content now (the rest may be a call being generated)."""
    if not m.parse:
        return len(text)
    from tuneforge.infer.tools import safe_content_len

    return safe_content_len(text, m.fmt)


def reply_message(text: str, reason: str, m: Mode) -> tuple[dict, str]:
    """(OpenAI assistant message, finish_reason) of a finished reply."""
    if not m.parse:
        return {"role": "assistant", "content": text}, reason
    from tuneforge.infer.tools import parse_tool_calls

    parsed = parse_tool_calls(text, m.fmt)
    if parsed.errors:  # a call-looking span that does not parse is sent as text, never guessed
        log.warning("reply kept as text: %s", "; ".join(parsed.errors))
    if not parsed.calls:
        return {"role": "assistant", "content": parsed.content if not parsed.errors else text.strip()}, reason
    return ({"role": "assistant", "content": parsed.content or None,
             "tool_calls": [c.to_openai() for c in parsed.calls]}, "tool_calls")
