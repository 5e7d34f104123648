"""The Gradio app: Train, Chat, Evaluate and Export tabs, one module each (``train_tab``, ``chat_tab``, ``eval_tab``,
``export_tab``). Forms come from the config schema (``schema_form``); training and export run as the CLI in a
subprocess (``runner.RunManager``); chat and evaluation use ``infer.engine.ChatEngine``. This module builds the page
around the tabs: the language switch (every label, help text and message) and what one tab refreshes in another.
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from tuneforge.webui import actions, chat_tab, eval_tab, export_tab, train_tab
from tuneforge.webui.i18n import LANGS, field_help, field_label, t
from tuneforge.webui.runner import RunManager
from tuneforge.webui.widgets import Page

CSS = """
#tf-progress .tf-bar {height: 14px; background: #e5e7eb; border-radius: 7px; overflow: hidden}
#tf-progress .tf-fill {height: 100%; background: #2563eb; transition: width .5s}
#tf-progress .tf-progress-text {margin-top: 4px; font-size: 14px}
.tf-sample {border: 1px solid #ddd; border-radius: 6px; margin: 6px 0; padding: 6px}
.tf-sample-head {font-size: 12px; color: #666}
.tf-sample-text {white-space: pre-wrap; font-size: 13px; margin: 4px 0}
.tf-sup {background: #bbf7d0; color: inherit; padding: 0}
.tf-cut {color: #999}
.tf-msg-error {color: #b91c1c; white-space: pre-wrap}
.tf-msg-ok {color: #166534; white-space: pre-wrap}
.tf-log-label {font-size: 14px; font-weight: 600; margin-bottom: 4px}
.tf-log {height: 280px; overflow-y: auto; display: flex; flex-direction: column-reverse; border: 1px solid #ddd;
         border-radius: 6px; padding: 6px; background: #fafafa}
.tf-log pre {margin: 0; white-space: pre-wrap; font-size: 12px}
"""


def build_app(root: Path, lang: str = "en", manager: RunManager | None = None) -> gr.Blocks:
    root = Path(root).resolve()
    mgr = manager or RunManager(root)
    page = Page(root, mgr, actions.Context(root, mgr), lang, actions.choices(root, "data"))
    with gr.Blocks(title="tuneforge", analytics_enabled=False) as demo:
        with gr.Row():
            page.texts["title"] = gr.Markdown(t("title", lang))
            page.lang_radio = gr.Radio(choices=[(v, k) for k, v in LANGS.items()], value=lang,
                                       label="Language / 语言", elem_id="tf-lang", scale=0, min_width=220)
        with gr.Tabs():
            train_tab.build(page, demo)
            chat_tab.build(page)
            eval_tab.build(page)
            export_tab.build(page)
        refresh_pickers(page)
        language_switch(page)
    demo.tf_context = page.ctx  # for tests and the CLI
    return demo


def refresh_pickers(page: Page) -> None:
    """The Chat and Export tabs' refresh buttons update both tabs' model and adapter choices."""
    sh = page.shared

    def on_refresh_adapters():
        ch = actions.choices(page.root, "data")
        return gr.update(choices=ch["adapters"]), gr.update(choices=ch["models"]), gr.update(choices=ch["adapters"])

    sh["chat_refresh"].click(on_refresh_adapters, None, [sh["chat_adapters"], sh["chat_model"], sh["export_adapters"]])
    sh["export_refresh"].click(on_refresh_adapters, None,
                               [sh["chat_adapters"], sh["export_model"], sh["export_adapters"]])


def language_switch(page: Page) -> None:
    """Every label, help text, button and message in the new language; message boxes re-render from their
    language-free records."""
    boxes, states = [b for b, _ in page.notes], [s for _, s in page.notes]
    extra_outputs = [c for outputs, _ in page.on_lang for c in outputs]

    def on_lang(lang_, current, *shown):
        out = [actions.note_html(n, lang_) for n in shown]
        out += [actions.text_update(comp, t(key, lang_)) for key, comp in page.texts.items()]
        out += [gr.update(label=field_label(n, lang_), info=field_help(spec, lang_))
                for n, (spec, _) in page.fields.items()]
        for _, fn in page.on_lang:
            out += fn(lang_, current)
        return out

    page.lang_radio.change(on_lang, [page.lang_radio, page.shared["job_dir"], *states],
                           [*boxes, *page.texts.values(), *[c for _, c in page.fields.values()], *extra_outputs])


def launch(root: Path, host: str, port: int, share: bool, auth: list[tuple[str, str]], lang: str) -> None:
    os.chdir(root)  # relative paths in configs and commands are relative to the working folder
    demo = build_app(root, lang)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, share=share, auth=auth or None, css=CSS,
                show_error=False, quiet=False, footer_links=[])
