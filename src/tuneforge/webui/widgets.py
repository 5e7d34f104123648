"""What the web UI's tabs share: the page they are built on (``Page``) and the widgets made from the config schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from tuneforge.config.schema import FinetuneArgs
from tuneforge.webui import actions
from tuneforge.webui.i18n import field_help, field_label, t
from tuneforge.webui.runner import RunManager
from tuneforge.webui.schema_form import FieldSpec, conditional, to_widget

# The method and stage a fresh form starts with (the schema's defaults): they decide which options are shown.
DEFAULT_CHOICE = (FinetuneArgs.__dataclass_fields__["finetuning_type"].default,
                  FinetuneArgs.__dataclass_fields__["stage"].default)


@dataclass
class Page:
    """The page the tabs are built on, and what each tab leaves for the others and for the language switch."""

    root: Path
    mgr: RunManager
    ctx: actions.Context
    lang: str
    choices: dict[str, list[str]]
    lang_radio: Any = None  # the language switch (every handler's first input)
    texts: dict[str, Any] = field(default_factory=dict)  # i18n key -> component whose label/value is that text
    fields: dict[str, tuple[FieldSpec, Any]] = field(default_factory=dict)  # setting -> (spec, widget), every tab
    notes: list[tuple[Any, Any]] = field(default_factory=list)  # (message box, gr.State of its language-free record)
    on_lang: list[tuple[list, Callable]] = field(default_factory=list)  # (outputs, fn(lang, job_dir) -> updates)
    shared: dict[str, Any] = field(default_factory=dict)  # components one tab reads from another


def show(result, lang: str) -> tuple[str, tuple]:
    """A message box's HTML and its language-free record (see actions.note), for a result or an error."""
    n = actions.note(result)
    return actions.note_html(n, lang), n


def field_widget(spec: FieldSpec, lang: str, choices: dict[str, list[str]]):
    label, info = field_label(spec.name, lang), field_help(spec, lang)
    common = dict(label=label, info=info, elem_id=f"field-{spec.name}")
    if conditional(spec):  # an option of some methods or stages: shown while one of them is chosen
        common["visible"] = actions.field_visible(spec, *DEFAULT_CHOICE)
    value = to_widget(spec, spec.default)
    if spec.name == "model_name_or_path":
        # starts on the embedded model, as Chat and Export do
        return gr.Dropdown(choices=choices["models"], value=value or actions.DEFAULT_MODEL, allow_custom_value=True,
                           **common)
    if spec.name == "adapter_name_or_path":
        return gr.Dropdown(choices=choices["adapters"], value=[], multiselect=True, allow_custom_value=True,
                           **common)
    if spec.name == "dataset":
        return gr.Dropdown(choices=choices["datasets"], value=[], multiselect=True, allow_custom_value=True,
                           **common)
    if spec.name == "template":
        return gr.Dropdown(choices=choices["templates"], value=value, **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if spec.kind == "tribool":
        return gr.Dropdown(choices=["auto", "true", "false"], value=value, **common)
    if spec.kind == "choice":
        opts = list(spec.choices or ())
        return gr.Dropdown(choices=([""] if spec.optional else []) + opts, value=value, **common)
    if spec.kind in ("int", "float") and spec.optional:  # empty = unset (a Number box cannot be empty)
        return gr.Textbox(value="" if value is None else str(value), placeholder="auto", **common)
    if spec.kind == "int":
        return gr.Number(value=value, precision=0, **common)
    if spec.kind == "float":
        return gr.Number(value=value, **common)
    return gr.Textbox(value=value, **common)


def field_grid(page: Page, specs: list[FieldSpec], comps: dict, per_row: int = 4) -> None:
    """Widgets for ``specs``, ``per_row`` to a row, into ``comps`` (and the page's fields, for the language switch)."""
    for i in range(0, len(specs), per_row):
        with gr.Row():
            for spec in specs[i: i + per_row]:
                comps[spec.name] = field_widget(spec, page.lang, page.choices)
                page.fields[spec.name] = (spec, comps[spec.name])


def model_pickers(page: Page, tab: str) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The base model and adapter(s) dropdowns of the Chat and Export tabs (labels `{tab}_model/_adapters`)."""
    page.texts[f"{tab}_model"] = model = gr.Dropdown(
        choices=page.choices["models"], value=actions.DEFAULT_MODEL, allow_custom_value=True,
        label=t(f"{tab}_model", page.lang), elem_id=f"{tab}-model")
    page.texts[f"{tab}_adapters"] = adapters = gr.Dropdown(
        choices=page.choices["adapters"], value=[], multiselect=True, allow_custom_value=True,
        label=t(f"{tab}_adapters", page.lang), elem_id=f"{tab}-adapters")
    return model, adapters
