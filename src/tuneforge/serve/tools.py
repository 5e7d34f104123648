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
    force: bool = False  # the reply must be a call (tool_choice "required" or a named function)
    only: str | None = None  # a named tool_choice: the one function the reply may call


def format_of(backend) -> str | None:
    """The tool-call format of the served template (None: it renders no tools): the chat engine's own."""
    return backend.engine.tool_format()


def mode(req, fmt: str | None, guided: bool = True) -> Mode:
    """How a chat request's tools are handled. ``guided``: the server decodes calls schema-guided
    (``guided_tool_calls``), which is what can force a call."""
    choice = req.tool_choice
    if not req.tools:
        if choice not in (None, "none", "auto"):
            raise APIError(400, "tool_choice is set but tools is empty; send the tools the model may call",
                           "tool_choice")
        return Mode()
    if choice == "none":
        return Mode()
    if fmt is None:
        raise APIError(400, "this model's chat template renders no tools, so its replies cannot be read as tool "
                            "calls; start the server with a template that has tools (e.g. --template qwen, or a "
                            "model whose own template takes tools=)", "tools", "tools_unsupported")
    if choice in (None, "auto"):
        return Mode(True, True, fmt)
    only = None if choice == "required" else choice.function.name
    if only is not None and only not in [t.function.name for t in req.tools]:
        raise APIError(400, f"tool_choice names the function {only!r}, which is not in tools (offered: "
                            f"{', '.join(t.function.name for t in req.tools)}); name one of them",
                       "tool_choice")
    if fmt != "hermes" or not guided:
        why = ("the server was started with --guided_tool_calls false" if fmt == "hermes" else
               f"this template writes calls in the {fmt} format, and calls are decoded schema-guided (which is what "
               f"forces one) only in the hermes <tool_call> format")
        raise APIError(400, f"tool_choice {'required' if only is None else 'with a named function'} cannot be "
                            f"honoured: {why}; send tool_choice \"auto\" or leave it out", "tool_choice",
                       "unsupported_parameter")
    return Mode(True, True, fmt, force=True, only=only)


def guided_tools(tools: list[dict] | None, m: Mode) -> list[dict] | None:
    """The tools a reply's calls are decoded against: those rendered, or only the function tool_choice names."""
    if not m.render or not tools:
        return None
    return [t for t in tools if t["function"]["name"] == m.only] if m.only else tools


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
