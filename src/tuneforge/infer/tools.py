"""Tool calls in generated text: which format a chat template uses, and parsing a reply back into structured calls.

One parser per format, each the inverse of how the family's chat template renders an assistant ``tool_calls`` turn:

``hermes``   Qwen2.5/Qwen3, Hermes, and tuneforge's ``chatml``/``qwen`` templates and LLaMA-Factory slot templates:
             ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks (one per call) after any text.
``llama3``   Llama 3.1/3.2/3.3 JSON tool calling: ``{"name": ..., "parameters": {...}}`` (one object per line, or the
             whole reply; ``<|python_tag|>`` prefix allowed; a JSON list of such objects too).
``mistral``  ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`` after any text (v3), or the newer
             ``[TOOL_CALLS]name[ARGS]{...}`` form (one per call).
``glm4``     GLM-4: a call is ``{name}\\n{arguments JSON}``; several calls are separated by ``<|assistant|>``; a text
             segment starts with a newline.

Parsing is tolerant of whitespace (around tags, inside JSON, CRLF, a missing newline after a tag, an unterminated
final ``</tool_call>`` when generation stopped there) and strict about JSON: a call whose JSON does not parse, has no
``name``, or whose arguments are not a JSON object is reported in :attr:`ParsedReply.errors` and never guessed.
OpenAI-style arguments given as a JSON *string* holding an object are accepted (decoded).

Generated text must be decoded with special tokens kept (``skip_special_tokens=False``) for the formats whose
markers are special tokens (``[TOOL_CALLS]``, ``<|assistant|>``); end-of-turn tokens are stripped here.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("hermes", "llama3", "mistral", "glm4")

# named template (index.json) → format; LLaMA-Factory slot templates use tuneforge's generic hermes-style convention
NAMED = {"chatml": "hermes", "qwen": "hermes", "llama3": "llama3", "mistral": "mistral", "glm4": "glm4"}

END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<|user|>",
               "<|observation|>", "<end_of_turn>", "<eos>")


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` item (arguments as a JSON string)."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}


@dataclass
class ParsedReply:
    content: str  # the text outside the calls, stripped
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per call-looking span that did not parse

    @property
    def has_calls(self) -> bool:
        return bool(self.calls)


def detect_format(chat_template: str | None = None, template_name: str | None = None) -> str | None:
    """The tool-call format a template renders, or None when it renders no tools.

    ``template_name``: a tuneforge/LLaMA-Factory template name (``--template``); ``auto`` or None means: look at
    ``chat_template`` (the tokenizer's own Jinja text, or a template tuneforge saved with a run).
    """
    if template_name and template_name != "auto":
        from tuneforge.data import templates as T  # late: only a named template needs the catalogue

        key = T.canonical(template_name) or template_name
        if key in NAMED:
            return NAMED[key]
        spec = T.load_lf().get(key)
        if spec is not None:
            if spec.get("kind") == "use":
                return NAMED.get(T.canonical(spec["use"]) or spec["use"], "hermes")
            if spec.get("kind") == "own":
                return detect_format(chat_template)
            return "hermes"  # lf_slots.jinja renders the generic <tool_call> convention
    if not chat_template:
        return None
    t = chat_template
    if "tuneforge LLaMA-Factory template" in t:
        return "hermes"
    if "[TOOL_CALLS]" in t:
        return "mistral"
    if "<tool_call>" in t:
        return "hermes"
    if "<|observation|>" in t and ("tools" in t or "可用工具" in t):
        return "glm4"
    if "<|python_tag|>" in t or ("ipython" in t and '"parameters"' in t):
        return "llama3"
    return None


def _strip_end(text: str) -> str:
    text = text.replace("\r\n", "\n")
    changed = True
    while changed:
        changed = False
        s = text.rstrip()
        for m in END_MARKERS:
            if s.endswith(m):
                text, changed = s[: -len(m)], True
    return text


def _snippet(s: str, n: int = 80) -> str:
    s = s.strip().replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 1] + "…"


def _call_from_obj(obj: Any, args_keys: tuple[str, ...], errors: list[str], raw: str) -> ToolCall | None:
    """A call from a decoded JSON object ({name, arguments|parameters}, or OpenAI's {function: {...}})."""
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
        obj = obj["function"]
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"].strip():
        errors.append(f"tool call has no function name: {_snippet(raw)}")
        return None
    args: Any = {}
    for k in args_keys:
        if k in obj:
            args = obj[k]
            break
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            errors.append(f"arguments of {obj['name']!r} are not valid JSON ({e.msg}): {_snippet(raw)}")
            return None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        errors.append(f"arguments of {obj['name']!r} are not a JSON object: {_snippet(raw)}")
        return None
    call = ToolCall(obj["name"].strip(), args)
    if isinstance(obj.get("id"), str) and obj["id"]:
        call.id = obj["id"]
    return call


def _loads(raw: str, errors: list[str], what: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw)
    except json.JSONDecodeError as e:
        errors.append(f"{what} is not valid JSON ({e.msg} at char {e.pos}): {_snippet(raw)}")
        return False, None


TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)


def parse_hermes(text: str) -> ParsedReply:
    errors: list[str] = []
    calls: list[ToolCall] = []
    for m in TOOL_CALL_RE.finditer(text):
        raw = m.group(1).strip()
        ok, obj = _loads(raw, errors, "<tool_call> body")
        if not ok:
            continue
        for item in obj if isinstance(obj, list) else [obj]:
            call = _call_from_obj(item, ("arguments", "parameters"), errors, raw)
            if call:
                calls.append(call)
    content = TOOL_CALL_RE.sub("", text).replace("</tool_call>", "")
    return ParsedReply(content.strip(), calls, errors)


_DECODER = json.JSONDecoder()
_LOOKS_LIKE_CALL = re.compile(r'^\s*[\[{][^\n]{0,40}"(name|function)"\s*:')


def _is_call(obj: Any) -> bool:
    return isinstance(obj, dict) and ("name" in obj or isinstance(obj.get("function"), dict))


def parse_llama3(text: str) -> ParsedReply:
    """JSON objects on their own lines (or the whole reply) with a ``name`` are calls; other lines are content."""
    errors: list[str] = []
    calls: list[ToolCall] = []
    text = text.replace("<|python_tag|>", "\n")
    content: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("\n", i)
        j = n if j < 0 else j
        line = text[i:j]
        stripped = line.lstrip()
        if stripped[:1] in "{[":
            start = i + (len(line) - len(stripped))
            try:
                obj, end = _DECODER.raw_decode(text, start)
            except json.JSONDecodeError as e:
                if _LOOKS_LIKE_CALL.match(stripped):
                    errors.append(f"tool call JSON is not valid ({e.msg}): {_snippet(text[start:j])}")
                    i = j + 1
                    continue
                obj = end = None
            items = obj if isinstance(obj, list) else [obj]
            if obj is not None and items and all(_is_call(x) for x in items):
                raw = text[start:end]
                for item in items:
                    call = _call_from_obj(item, ("parameters", "arguments"), errors, raw)
                    if call:
                        calls.append(call)
                while end < n and text[end] in " \t;,":  # "{...}; {...}" on one line
                    end += 1
                i = end
                continue
        content.append(line)
        i = j + 1
    return ParsedReply("\n".join(content).strip(), calls, errors)


_MISTRAL_ARGS = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*\[ARGS\]", re.S)


def parse_mistral(text: str) -> ParsedReply:
    errors: list[str] = []
    calls: list[ToolCall] = []
    head, sep, rest = text.partition("[TOOL_CALLS]")
    if not sep:
        return ParsedReply(text.strip(), [], [])
    chunks = rest.split("[TOOL_CALLS]")
    for chunk in chunks:
        m = _MISTRAL_ARGS.match(chunk)
        if m:  # [TOOL_CALLS]name[ARGS]{...}
            raw = chunk[m.end():].strip()
            ok, args = _loads(raw, errors, f"arguments of {m.group(1)!r}")
            if ok:
                call = _call_from_obj({"name": m.group(1), "arguments": args}, ("arguments",), errors, raw)
                if call:
                    calls.append(call)
            continue
        raw = chunk.strip()
        try:
            obj, end = _DECODER.raw_decode(raw)
        except json.JSONDecodeError as e:
            errors.append(f"[TOOL_CALLS] body is not valid JSON ({e.msg}): {_snippet(raw)}")
            continue
        tail = raw[end:].strip()
        if tail:
            head = (head + "\n" + tail) if head.strip() else tail
        for item in obj if isinstance(obj, list) else [obj]:
            call = _call_from_obj(item, ("arguments", "parameters"), errors, raw[:end])
            if call:
                calls.append(call)
    return ParsedReply(head.strip(), calls, errors)


_GLM_NAME = re.compile(r"^([A-Za-z_][\w.\-]*)[ \t]*\n(.*)$", re.S)


def parse_glm4(text: str) -> ParsedReply:
    errors: list[str] = []
    calls: list[ToolCall] = []
    content: list[str] = []
    for k, seg in enumerate(text.split("<|assistant|>")):
        if not seg.strip():
            continue
        if seg.startswith("\n") or (k == 0 and not _GLM_NAME.match(seg)):
            content.append(seg.strip())
            continue
        m = _GLM_NAME.match(seg.lstrip(" \t"))
        if not m:
            content.append(seg.strip())
            continue
        name, raw = m.group(1), m.group(2).strip()
        ok, args = _loads(raw, errors, f"arguments of {name!r}")
        if ok:
            call = _call_from_obj({"name": name, "arguments": args}, ("arguments",), errors, raw)
            if call:
                calls.append(call)
    return ParsedReply("\n".join(c for c in content if c).strip(), calls, errors)


PARSERS = {"hermes": parse_hermes, "llama3": parse_llama3, "mistral": parse_mistral, "glm4": parse_glm4}


def parse_tool_calls(text: str, fmt: str | None) -> ParsedReply:
    """Split a generated reply into its text and its tool calls. ``fmt``: one of :data:`FORMATS` (see
    :func:`detect_format`); None → no calls are looked for (the template renders no tools)."""
    text = _strip_end(text)
    if fmt is None:
        return ParsedReply(text.strip())
    try:
        parser = PARSERS[fmt]
    except KeyError:
        raise ValueError(f"unknown tool-call format {fmt!r}; valid: {', '.join(FORMATS)}") from None
    return parser(text)


# ---- streaming -------------------------------------------------------------------------------------------------------
START_MARKERS = {"hermes": "<tool_call>", "mistral": "[TOOL_CALLS]", "glm4": "<|assistant|>"}


def safe_content_len(text: str, fmt: str | None) -> int:
    """How many leading characters of a partial generation are surely plain content (never part of a call), so a
    streaming server can send them now and hold back the rest until the reply ends and :func:`parse_tool_calls`
    runs. The held-back tail is a call marker, a prefix of one, or (llama3/glm4) a reply that may be a call."""
    if fmt is None:
        return len(text)
    if fmt == "glm4" and text and not text.startswith("\n"):
        return 0  # a GLM-4 call starts with the function name
    if fmt == "llama3":
        stripped = text.lstrip()
        if not stripped or stripped[0] in "{[<":
            return 0
        cut = text.find("\n")
        while cut >= 0:
            nxt = text[cut + 1:].lstrip()
            if not nxt or nxt[0] in "{[<":
                return cut
            cut = text.find("\n", cut + 1)
        return len(text)
    marker = START_MARKERS[fmt]
    at = text.find(marker)
    if at >= 0:
        return at
    for k in range(min(len(marker) - 1, len(text)), 0, -1):  # a marker may be arriving
        if text.endswith(marker[:k]):
            return len(text) - k
    return len(text)
