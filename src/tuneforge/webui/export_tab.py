"""The Export tab: `tuneforge export` (merge adapters into the base, write a standalone model) as a subprocess, its
output streamed into the page."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tuneforge.errors import TuneforgeError, render as render_error
from tuneforge.webui import actions
from tuneforge.webui.i18n import t
from tuneforge.webui.schema_form import field_specs
from tuneforge.webui.widgets import Page, field_grid, model_pickers


def build(page: Page) -> None:
    lang, texts, ctx = page.lang, page.texts, page.ctx
    comps: dict[str, Any] = {}  # export settings -> widget
    with gr.Tab(t("tab_export", lang), id="export", elem_id="tab-export",
                visible=actions.export_available()) as tab:
        texts["tab_export"] = tab
        texts["export_hint"] = gr.Markdown(t("export_hint", lang))
        with gr.Row():
            model, adapters = model_pickers(page, "export")
            texts["btn_refresh_export"] = refresh = gr.Button(
                t("btn_refresh_adapters", lang), size="sm", scale=0, elem_id="btn-refresh-export")
        field_grid(page, field_specs(("export",)), comps, per_row=3)
        texts["btn_export"] = btn_export = gr.Button(t("btn_export", lang), variant="primary", elem_id="btn-export")
        texts["export_log"] = export_log = gr.Textbox(label=t("export_log", lang), lines=10, interactive=False,
                                                      elem_id="export-log")
    page.shared.update(export_model=model, export_adapters=adapters, export_refresh=refresh)
    names = list(comps)

    def on_export(lang_, model_, adapters_, *values):
        try:
            yield from actions.run_export(ctx, model_, adapters_, dict(zip(names, values)), lang_)
        except TuneforgeError as e:
            yield render_error(e, lang_)

    btn_export.click(on_export, [page.lang_radio, model, adapters, *[comps[n] for n in names]], export_log)
