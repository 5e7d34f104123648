"""The Train tab: the form generated from the config schema, the reproducing command, Start/Abort of a `tuneforge
train` subprocess (``runner.RunManager``), and its progress, loss curve and log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from tuneforge.config.parse import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.webui import actions
from tuneforge.webui.i18n import t
from tuneforge.webui.render import log_html, loss_svg, progress_html
from tuneforge.webui.schema_form import FieldSpec, conditional, field_specs, specs_by_name
from tuneforge.webui.train_layout import group_visible, layout
from tuneforge.webui.widgets import DEFAULT_CHOICE, Page, field_grid, show

def build(page: Page, demo) -> None:
    lang, texts, mgr, ctx = page.lang, page.texts, page.mgr, page.ctx
    comps: dict[str, Any] = {}  # schema field name -> widget
    by_name = specs_by_name()
    main, groups = layout(field_specs())  # the dozen main settings; the rest in collapsed groups
    group_boxes = {}  # group -> its accordion, shown while the chosen stage and method take one of its settings
    with gr.Tab(t("tab_train", lang), id="train", elem_id="tab-train") as tab:
        texts["tab_train"] = tab
        field_grid(page, main, comps)
        with gr.Row():  # right under the main settings: visible without scrolling
            texts["btn_preview_data"] = gr.Button(t("btn_preview_data", lang), elem_id="btn-preview-data")
            texts["btn_preview_cmd"] = btn_cmd = gr.Button(t("btn_preview_cmd", lang), elem_id="btn-preview-cmd")
            texts["btn_start"] = btn_start = gr.Button(t("btn_start", lang), variant="primary", elem_id="btn-start")
            texts["btn_abort"] = btn_abort = gr.Button(t("btn_abort", lang), variant="stop", elem_id="btn-abort")
        message = gr.HTML(elem_id="tf-message")
        shown = gr.State(None)  # what `message` shows, re-rendered when the language changes
        with gr.Row():
            with gr.Column(scale=3):
                progress = gr.HTML(progress_html(mgr.status(None), lang), elem_id="tf-progress-box")
                loss = gr.HTML(loss_svg([], lang), elem_id="tf-loss-box")
            with gr.Column(scale=2):
                log_box = gr.HTML(log_html("", lang), elem_id="tf-log-box")  # follows its tail (render.log_html)
        texts["command"] = command = gr.Textbox(label=t("command", lang), lines=3, interactive=False,
                                                elem_id="tf-command", buttons=["copy"])
        data_preview = gr.HTML(elem_id="tf-data-preview")
        texts["more_settings"] = gr.Markdown(t("more_settings", lang), elem_id="tf-more")
        for section, specs in groups.items():
            key = "sec_" + section.replace(":", "_")
            with gr.Accordion(t(key, lang), open=False, visible=group_visible(specs, *DEFAULT_CHOICE),
                              elem_id=f"sec-{section.replace(':', '-')}") as acc:
                texts[key] = acc
                group_boxes[section] = acc
                field_grid(page, specs, comps)
                if section == "data":
                    texts["btn_refresh_data"] = gr.Button(t("btn_refresh_data", lang), size="sm")
        with gr.Row():
            texts["args_file"] = args_file = gr.Textbox(value="webui_args.yaml", label=t("args_file", lang),
                                                        elem_id="tf-args-file", scale=2)
            texts["btn_save_args"] = btn_save = gr.Button(t("btn_save_args", lang), elem_id="btn-save-args")
            texts["btn_load_args"] = btn_load = gr.Button(t("btn_load_args", lang), elem_id="btn-load-args")
        timer = gr.Timer(1.0)
        # inside the Tab: a component directly under gr.Tabs takes a tab's place in Gradio 6's tab order, and
        # the next tab selected then shows as a copy of another (the Chat tab's label on the Evaluate tab)
        job_dir = gr.State(None)
    page.notes.append((message, shown))
    page.shared.update(job_dir=job_dir, dataset_vars=comps["dataset_vars"])

    def on_lang_progress(lang_, current):
        st = mgr.status(Path(current) if current else None)
        return [progress_html(st, lang_), loss_svg(st.loss, lang_, st.eval_loss), log_html(st.log_tail, lang_)]

    page.on_lang.append(([progress, loss, log_box], on_lang_progress))

    names = list(comps)
    inputs = [comps[n] for n in names]
    lang_radio = page.lang_radio

    def values_of(args) -> dict[str, Any]:
        return dict(zip(names, args))

    chosen_fields = [n for n in names if conditional(by_name[n])]  # shown for the methods/stages they apply to

    def on_method(method, stage):
        return ([gr.update(visible=group_visible(groups[sec], method, stage)) for sec in group_boxes]
                + [gr.update(visible=actions.field_visible(by_name[n], method, stage)) for n in chosen_fields])

    for chooser in ("finetuning_type", "stage"):
        comps[chooser].change(on_method, [comps["finetuning_type"], comps["stage"]],
                              [*group_boxes.values(), *[comps[n] for n in chosen_fields]])

    def on_dataset_dir(dataset_dir, selected):
        return gr.update(choices=actions.choices(page.root, dataset_dir)["datasets"], value=selected)

    comps["dataset_dir"].change(on_dataset_dir, [comps["dataset_dir"], comps["dataset"]], comps["dataset"])

    def on_datasets(dataset_dir, selected, current_vars):
        return actions.suggest_vars(page.root, dataset_dir, selected, current_vars)

    comps["dataset"].change(on_datasets, [comps["dataset_dir"], comps["dataset"], comps["dataset_vars"]],
                            comps["dataset_vars"])

    def on_refresh_data(dataset_dir, selected):
        ch = actions.choices(page.root, dataset_dir)
        return (gr.update(choices=ch["datasets"], value=selected), gr.update(choices=ch["models"]),
                gr.update(choices=ch["adapters"]))

    texts["btn_refresh_data"].click(on_refresh_data, [comps["dataset_dir"], comps["dataset"]],
                                    [comps["dataset"], comps["model_name_or_path"], comps["adapter_name_or_path"]])

    def on_preview_data(lang_, *args):
        try:
            return actions.preview_data(ctx, values_of(args), lang_), "", None
        except TuneforgeError as e:
            return "", *show(e, lang_)

    texts["btn_preview_data"].click(on_preview_data, [lang_radio, *inputs], [data_preview, message, shown])

    def on_preview_cmd(lang_, *args):
        try:
            cfg = actions.resolve(ctx, values_of(args))
            return actions.command(cfg, lang_), *show(actions.Msg("msg_command_ok"), lang_)
        except TuneforgeError as e:
            return "", *show(e, lang_)

    btn_cmd.click(on_preview_cmd, [lang_radio, *inputs], [command, message, shown])

    def on_save(lang_, path, *args):
        try:
            where = actions.save_args(ctx, values_of(args), path)
            return show(actions.Msg("msg_saved", path=where), lang_)
        except TuneforgeError as e:
            return show(e, lang_)

    btn_save.click(on_save, [lang_radio, args_file, *inputs], [message, shown])

    def on_load(lang_, path):
        try:
            values = actions.load_args(ctx, path)
            return [*show(actions.Msg("msg_loaded", path=path), lang_)] + [
                actions.widget_update(by_name[n], values.get(n)) for n in names]
        except TuneforgeError as e:
            return [*show(e, lang_)] + [gr.update() for _ in names]

    btn_load.click(on_load, [lang_radio, args_file], [message, shown, *inputs])

    def on_start(lang_, current, *args):
        try:
            cfg = actions.resolve(ctx, values_of(args), for_start=True)
            job = mgr.start(cfg, lang_)
            return (job.output_dir, actions.command(cfg, lang_),
                    *show(actions.Msg("msg_started", pid=job.pid, out=job.output_dir), lang_))
        except TuneforgeError as e:
            return current, gr.update(), *show(e, lang_)

    btn_start.click(on_start, [lang_radio, job_dir, *inputs], [job_dir, command, message, shown])

    def on_abort(lang_, current):
        if current and mgr.abort(Path(current)):
            st = mgr.status(Path(current))
            last = st.checkpoints[-1] if st.checkpoints else actions.Msg("none")
            return show(actions.Msg("msg_aborted", ckpt=last), lang_)
        return show(TuneforgeError(actions.Msg("msg_no_job")), lang_)

    btn_abort.click(on_abort, [lang_radio, job_dir], [message, shown])

    def on_tick(lang_, current):
        st = mgr.status(Path(current) if current else None)
        return progress_html(st, lang_), loss_svg(st.loss, lang_, st.eval_loss), log_html(st.log_tail, lang_)

    timer.tick(on_tick, [lang_radio, job_dir], [progress, loss, log_box], show_progress="hidden")

    def on_page_load(lang_):
        """A reloaded page finds the running (or last) job and shows its settings again."""
        job = mgr.current()
        if job is None:
            return [None, gr.update()] + [gr.update() for _ in names]
        values = actions.load_config_values(job.output_dir)
        cmd = actions.command(build_config(values), lang_) if values else gr.update()
        return [str(job.output_dir), cmd] + [actions.widget_update(by_name[n], values.get(n)) if values else
                                             gr.update() for n in names]

    demo.load(on_page_load, [lang_radio], [job_dir, command, *inputs])
