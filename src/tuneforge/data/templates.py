"""Chat templates. ``auto`` uses the tokenizer's own; named templates are Jinja data files in ``templates/``.

A named template is a Hugging Face-compatible chat template: it is installed as ``tokenizer.chat_template`` and saved
with the trained model, so chat, serving and other tools format prompts exactly as training did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.errors import TuneforgeError
from tuneforge.utils import log

TEMPLATE_DIR = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def load_index() -> dict[str, dict[str, Any]]:
    return json.loads((TEMPLATE_DIR / "index.json").read_text(encoding="utf-8"))


def template_names() -> list[str]:
    return sorted(load_index())


def canonical(name: str) -> str | None:
    index = load_index()
    if name in index:
        return name
    for key, spec in index.items():
        if name in spec.get("aliases", []):
            return key
    return None


def check_template(name: str) -> str | None:
    if name == "auto" or canonical(name):
        return None
    return Msg("template_unknown", name=name, names=", ".join(template_names()))


@dataclass
class ChatFormat:
    name: str  # "auto" or a canonical template name
    stop: list[str] = field(default_factory=list)  # end-of-turn strings that end a reply

    def render(self, tokenizer, messages: list[dict], tools: list | None = None,
               add_generation_prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)


def install(tokenizer, name: str) -> ChatFormat:
    """Put the chosen template on ``tokenizer`` and return how to render and where replies stop."""
    if name == "auto":
        if getattr(tokenizer, "chat_template", None):
            stop = [tokenizer.eos_token] if tokenizer.eos_token else []
            log.choice("template=auto", "using the tokenizer's own chat template")
            return ChatFormat("auto", stop)
        log.choice("template=default", "template=auto but the tokenizer has no chat template (a base model?)")
        name = "default"
    key = canonical(name)
    if key is None:
        raise TuneforgeError(check_template(name) or name, "pass --template with one of the names listed")
    spec = load_index()[key]
    tokenizer.chat_template = (TEMPLATE_DIR / spec["file"]).read_text(encoding="utf-8")
    stop = list(spec.get("stop", []))
    if (spec.get("eos_stop") or not stop) and tokenizer.eos_token:
        stop.append(tokenizer.eos_token)
    return ChatFormat(key, [s for s in stop if s])


def identify(chat_template: str | None) -> str | None:
    """The name of the named template whose text equals ``chat_template`` (as saved by a tuneforge run), if any."""
    if not chat_template:
        return None
    for name, spec in load_index().items():
        if (TEMPLATE_DIR / spec["file"]).read_text(encoding="utf-8").strip() == chat_template.strip():
            return name
    return None
