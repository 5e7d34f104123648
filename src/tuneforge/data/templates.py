"""Chat templates. ``auto`` uses the tokenizer's own; named templates are Jinja data files in ``templates/``.

A named template is a Hugging Face-compatible chat template: it is installed as ``tokenizer.chat_template`` and saved
with the trained model, so chat, serving and other tools format prompts exactly as training did.

Every LLaMA-Factory template name resolves (``lf_templates.json``): through one of tuneforge's hand-written templates
(``index.json``), through LLaMA-Factory's turn formats rendered by ``lf_slots.jinja`` (its default system prompt,
stop words and quirks baked in when installed), through the model's own chat template, or — for vision/audio
templates — to a clear refusal.
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


@lru_cache(maxsize=1)
def load_lf() -> dict[str, dict[str, Any]]:
    """LLaMA-Factory's template names → how each resolves (lf_templates.json)."""
    data = json.loads((TEMPLATE_DIR / "lf_templates.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def template_names() -> list[str]:
    """Every name --template trains with (tuneforge's and LLaMA-Factory's text templates). LLaMA-Factory's
    vision/audio names also resolve, to a refusal that says why."""
    usable = {n for n, spec in load_lf().items() if spec["kind"] != "multimodal"}
    return sorted(set(load_index()) | usable)


def canonical(name: str) -> str | None:
    if name in load_lf():
        return name
    index = load_index()
    if name in index:
        return name
    for key, spec in index.items():
        if name in spec.get("aliases", []):
            return key
    return None


def check_template(name: str) -> str | None:
    if name == "auto":
        return None
    key = canonical(name)
    if key is None:
        return Msg("template_unknown", name=name, names=", ".join(template_names()))
    if load_lf().get(key, {}).get("kind") == "multimodal":
        return Msg("template_multimodal", name=name, family=load_lf()[key]["note"])
    return None


@dataclass
class ChatFormat:
    name: str  # "auto" or a canonical template name
    stop: list[str] = field(default_factory=list)  # end-of-turn strings that end a reply
    kwargs: dict = field(default_factory=dict)  # extra apply_chat_template arguments (enable_thinking)

    def render(self, tokenizer, messages: list[dict], tools: list | None = None,
               add_generation_prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt, **self.kwargs)


def _literal(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Jinja string literal


HEADER = "tuneforge LLaMA-Factory template"


def slots_template(name: str, spec: dict[str, Any], tokenizer, thinking: bool = True) -> str:
    """The Jinja text of an LLaMA-Factory slot template, with the tokenizer's bos/eos and the thinking mode baked
    in (as LLaMA-Factory bakes them into the template it installs)."""
    bos = tokenizer.bos_token if tokenizer.bos_token_id is not None else ""
    eos = tokenizer.eos_token if tokenizer.eos_token_id is not None else ""

    def fill(slot: str) -> str:
        return slot.replace("{bos}", bos or "").replace("{eos}", eos or "")

    efficient = bool(spec.get("efficient_eos"))
    assistant = spec.get("assistant") or ("{{content}}" if efficient else "{{content}}{eos}")
    if efficient and "{eos}" not in assistant:
        assistant += "{eos}"  # the reply must end with a token the model learns to stop at (LF: eos label)
    user = spec.get("user") or "{{content}}"
    slots = {"user": user, "assistant": assistant, "system": spec.get("system") or "{{content}}",
             "observation": spec.get("observation") or user}
    thought = spec.get("thought") or ["<think>\n", "\n</think>\n\n"]
    lines = [f"{{#- {HEADER} {name} thinking={str(bool(thinking)).lower()} -#}}",
             f"{{%- set prefix = {_literal(fill(spec.get('prefix', '')))} -%}}",
             f"{{%- set default_system = {_literal(spec.get('default_system', ''))} -%}}",
             f"{{%- set system_in_user = {str(bool(spec.get('system_in_user'))).lower()} -%}}",
             f"{{%- set reasoning = {str(bool(spec.get('reasoning'))).lower()} -%}}",
             f"{{%- set thinking = {str(bool(thinking)).lower()} -%}}",
             f"{{%- set thought_pre = {_literal(thought[0])} -%}}", f"{{%- set thought_post = {_literal(thought[1])} -%}}",
             f"{{%- set thought_open = {_literal(thought[0].strip())} -%}}",
             f"{{%- set thought_close = {_literal(thought[1].strip())} -%}}"]
    for key, slot in slots.items():
        pre, _, post = fill(slot).partition("{{content}}")
        lines += [f"{{%- set {key}_pre = {_literal(pre)} -%}}", f"{{%- set {key}_post = {_literal(post)} -%}}"]
    return "\n".join(lines) + "\n" + (TEMPLATE_DIR / "lf_slots.jinja").read_text(encoding="utf-8")


def _install_lf(tokenizer, name: str, spec: dict[str, Any], thinking: bool | None) -> ChatFormat:
    kind = spec["kind"]
    if kind == "multimodal":
        raise TuneforgeError(check_template(name), Msg("multimodal_fix"))
    if kind == "use":
        fmt = _install_index(tokenizer, spec["use"])
        return ChatFormat(name, [s for s in dict.fromkeys(list(spec.get("stop", [])) + fmt.stop) if s])
    stop = list(spec.get("stop", []))
    if kind == "own":
        if not getattr(tokenizer, "chat_template", None):
            raise TuneforgeError(Msg("template_own_missing", name=name), Msg("template_own_missing_fix"))
        log.choice(f"template={name}", f"{spec['note']}" + ("" if thinking is not False else "; thinking off"))
        return ChatFormat(name, [s for s in stop + [tokenizer.eos_token] if s],
                          {} if thinking is not False else {"enable_thinking": False})
    current = getattr(tokenizer, "chat_template", None) or ""
    saved = current.startswith(f"{{#- {HEADER} {name} ")
    if thinking is None and saved:  # chat over a trained run: its saved template is kept exactly as trained
        pass
    elif not (saved and current.startswith(f"{{#- {HEADER} {name} thinking={str(bool(thinking)).lower()} ")):
        tokenizer.chat_template = slots_template(name, spec, tokenizer, True if thinking is None else thinking)
    if spec.get("text_multimodal"):
        log.choice(f"template={name}", "text rows only (multimodal training is not supported yet)")
    return ChatFormat(name, [s for s in dict.fromkeys(stop + [tokenizer.eos_token]) if s])


def install(tokenizer, name: str, thinking: bool | None = None) -> ChatFormat:
    """Put the chosen template on ``tokenizer`` and return how to render and where replies stop. ``thinking``:
    enable_thinking for reasoning templates (None: as a saved LLaMA-Factory template of that name has it, else on)."""
    if name in load_lf():
        return _install_lf(tokenizer, name, load_lf()[name], thinking)
    if name == "auto":
        if getattr(tokenizer, "chat_template", None):
            stop = [tokenizer.eos_token] if tokenizer.eos_token else []
            log.choice("template=auto", "using the tokenizer's own chat template")
            return ChatFormat("auto", stop)
        log.choice("template=default", "template=auto but the tokenizer has no chat template (a base model?)")
        return _install_lf(tokenizer, "default", load_lf()["default"], thinking)
    return _install_index(tokenizer, name)


def _install_index(tokenizer, name: str) -> ChatFormat:
    """One of tuneforge's hand-written templates (index.json)."""
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
    """The name of the named template whose text equals ``chat_template`` (as saved by a tuneforge run), if any.
    A saved LLaMA-Factory slot template is recognised by its rendering skeleton; its stop words are then the
    tokenizer's eos (the baked-in slots still format prompts exactly as in training)."""
    if not chat_template:
        return None
    if chat_template.startswith(f"{{#- {HEADER} "):
        name = chat_template[len(HEADER) + 5:].split(" ", 1)[0]
        return name if name in load_lf() else None
    for name, spec in load_index().items():
        if (TEMPLATE_DIR / spec["file"]).read_text(encoding="utf-8").strip() == chat_template.strip():
            return name
    return None
