"""The Gradio app: Train, Chat, Evaluate and Export tabs. Forms come from the config schema (``schema_form``);
training runs as the CLI in a subprocess (``runner.RunManager``); chat and evaluation use ``infer.engine.ChatEngine``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from tuneforge.config.parse import build_config
from tuneforge.config.schema import FinetuneArgs
from tuneforge.errors import TuneforgeError
from tuneforge.webui import actions
from tuneforge.webui.i18n import LANGS, field_help, field_label, t
from tuneforge.webui.render import loss_svg, progress_html
from tuneforge.webui.runner import RunManager
from tuneforge.webui.schema_form import FieldSpec, conditional, field_specs, specs_by_name, to_widget

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
"""

# Fields that get a richer widget than their kind's default (choices come from the machine, not the schema).
SPECIAL = ("model_name_or_path", "adapter_name_or_path", "dataset", "template")
OPEN_SECTIONS = ("model", "data", "finetune", "train")
# The method and stage a fresh form starts with (the schema's defaults): they decide which options are shown.
DEFAULT_CHOICE = (FinetuneArgs.__dataclass_fields__["finetuning_type"].default,
                  FinetuneArgs.__dataclass_fields__["stage"].default)


def _widget(spec: FieldSpec, lang: str, choices: dict[str, list[str]]):
    label, info = field_label(spec.name, lang), field_help(spec, lang)
    common = dict(label=label, info=info, elem_id=f"field-{spec.name}")
    if conditional(spec):  # an option of some methods or stages: shown while one of them is chosen
        common["visible"] = actions.field_visible(spec, *DEFAULT_CHOICE)
    value = to_widget(spec, spec.default)
    if spec.name == "model_name_or_path":
        return gr.Dropdown(choices=choices["models"], value=value or None, allow_custom_value=True, **common)
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


def _grid(specs: list[FieldSpec], lang: str, choices, comps: dict, per_row: int = 4) -> None:
    for i in range(0, len(specs), per_row):
        with gr.Row():
            for spec in specs[i: i + per_row]:
                comps[spec.name] = _widget(spec, lang, choices)


def _model_pickers(tab: str, lang: str, choices, texts: dict) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The base model and adapter(s) dropdowns of the Chat and Export tabs (labels `{tab}_model/_adapters`)."""
    texts[f"{tab}_model"] = model = gr.Dropdown(
        choices=choices["models"], value=actions.DEFAULT_MODEL, allow_custom_value=True,
        label=t(f"{tab}_model", lang), elem_id=f"{tab}-model")
    texts[f"{tab}_adapters"] = adapters = gr.Dropdown(
        choices=choices["adapters"], value=[], multiselect=True, allow_custom_value=True,
        label=t(f"{tab}_adapters", lang), elem_id=f"{tab}-adapters")
    return model, adapters


def build_app(root: Path, lang: str = "en", manager: RunManager | None = None) -> gr.Blocks:
    root = Path(root).resolve()
    mgr = manager or RunManager(root)
    ctx = actions.Context(root, mgr)
    specs = field_specs()
    by_name = specs_by_name()
    choices = actions.choices(root, "data")
    texts: dict[str, Any] = {}  # i18n key -> component whose label/value is that text
    comps: dict[str, Any] = {}  # schema field name -> component (Train tab)

    with gr.Blocks(title="tuneforge", analytics_enabled=False) as demo:
        with gr.Row():
            texts["title"] = gr.Markdown(t("title", lang))
            lang_radio = gr.Radio(choices=[(v, k) for k, v in LANGS.items()], value=lang, label="Language / 语言",
                                  elem_id="tf-lang", scale=0, min_width=220)
        job_dir = gr.State(None)
        with gr.Tabs():
            # ---------------------------------------------------------------- Train
            with gr.Tab(t("tab_train", lang), id="train", elem_id="tab-train") as tab_train:
                texts["tab_train"] = tab_train
                sections: dict[str, list[FieldSpec]] = {}
                for s in specs:
                    sections.setdefault(s.section, []).append(s)
                accordions = {}
                method_boxes = {}  # sections holding only options of some methods or stages
                first = ("model", "quantization", "data", "finetune")
                methods = [k for k in sections if k.startswith("method:")]
                order = [*first, *methods, *[k for k in sections if k not in (*first, *methods)]]
                for section in order:
                    if section not in sections:
                        continue
                    key = "sec_" + section.replace(":", "_")
                    chosen_only = all(conditional(s) for s in sections[section])
                    visible = not chosen_only or actions.section_visible(sections[section], *DEFAULT_CHOICE)
                    with gr.Accordion(t(key, lang), open=section in OPEN_SECTIONS or chosen_only, visible=visible,
                                      elem_id=f"sec-{section.replace(':', '-')}") as acc:
                        texts[key] = acc
                        accordions[section] = acc
                        if chosen_only:
                            method_boxes[section] = acc
                        _grid(sections[section], lang, choices, comps)
                        if section == "data":
                            with gr.Row():
                                texts["btn_refresh_data"] = gr.Button(t("btn_refresh_data", lang), size="sm")
                                texts["btn_preview_data"] = gr.Button(t("btn_preview_data", lang), size="sm",
                                                                      elem_id="btn-preview-data")
                            data_preview = gr.HTML(elem_id="tf-data-preview")
                with gr.Row():
                    texts["args_file"] = args_file = gr.Textbox(value="webui_args.yaml", label=t("args_file", lang),
                                                                elem_id="tf-args-file", scale=2)
                    texts["btn_save_args"] = btn_save = gr.Button(t("btn_save_args", lang), elem_id="btn-save-args")
                    texts["btn_load_args"] = btn_load = gr.Button(t("btn_load_args", lang), elem_id="btn-load-args")
                with gr.Row():
                    texts["btn_preview_cmd"] = btn_cmd = gr.Button(t("btn_preview_cmd", lang),
                                                                   elem_id="btn-preview-cmd")
                    texts["btn_start"] = btn_start = gr.Button(t("btn_start", lang), variant="primary",
                                                               elem_id="btn-start")
                    texts["btn_abort"] = btn_abort = gr.Button(t("btn_abort", lang), variant="stop",
                                                               elem_id="btn-abort")
                texts["command"] = command = gr.Textbox(label=t("command", lang), lines=3, interactive=False,
                                                        elem_id="tf-command", buttons=["copy"])
                message = gr.HTML(elem_id="tf-message")
                shown = gr.State(None)  # what `message` shows, re-rendered when the language changes
                progress = gr.HTML(progress_html(mgr.status(None), lang), elem_id="tf-progress-box")
                loss = gr.HTML(loss_svg([], lang), elem_id="tf-loss-box")
                texts["log"] = log_box = gr.Textbox(label=t("log", lang), lines=12, max_lines=12, interactive=False,
                                                    autoscroll=True, elem_id="tf-log")
                timer = gr.Timer(1.0)

            # ---------------------------------------------------------------- Chat
            gen_specs = field_specs(("generate",))
            chat_comps: dict[str, Any] = {}
            with gr.Tab(t("tab_chat", lang), id="chat", elem_id="tab-chat") as tab_chat:
                texts["tab_chat"] = tab_chat
                with gr.Row():
                    chat_model, chat_adapters = _model_pickers("chat", lang, choices, texts)
                    texts["chat_template"] = chat_template = gr.Dropdown(
                        choices=choices["templates"], value="auto", label=t("chat_template", lang),
                        elem_id="chat-template")
                    texts["btn_refresh_adapters"] = btn_refresh_ad = gr.Button(
                        t("btn_refresh_adapters", lang), size="sm", scale=0, elem_id="btn-refresh-adapters")
                with gr.Row():
                    texts["chat_system"] = chat_system = gr.Textbox(label=t("chat_system", lang),
                                                                    elem_id="chat-system", scale=3)
                    texts["side_by_side"] = side_by_side = gr.Checkbox(value=True, label=t("side_by_side", lang),
                                                                       elem_id="chat-side-by-side")
                    texts["btn_load_model"] = btn_load_model = gr.Button(t("btn_load_model", lang),
                                                                         variant="primary", elem_id="btn-load-model")
                with gr.Accordion(t("sec_generate", lang), open=False) as acc_gen:
                    texts["sec_generate"] = acc_gen
                    _grid(gen_specs, lang, choices, chat_comps, per_row=3)
                chat_status = gr.HTML(elem_id="chat-status")
                chat_shown = gr.State(None)  # what chat_status shows, in no language (re-rendered on a switch)
                with gr.Row():
                    texts["chat_tuned"] = tuned_bot = gr.Chatbot(label=t("chat_tuned", lang), elem_id="chat-tuned",
                                                                 height=360)
                    texts["chat_base"] = base_bot = gr.Chatbot(label=t("chat_base", lang), elem_id="chat-base",
                                                               height=360)
                with gr.Row():
                    texts["chat_input"] = chat_input = gr.Textbox(label=t("chat_input", lang), scale=4,
                                                                  elem_id="chat-input")
                    texts["btn_send"] = btn_send = gr.Button(t("btn_send", lang), variant="primary",
                                                             elem_id="btn-send", scale=0)
                    texts["btn_clear"] = btn_clear = gr.Button(t("btn_clear", lang), scale=0)

            # ---------------------------------------------------------------- Evaluate
            with gr.Tab(t("tab_eval", lang), id="eval", elem_id="tab-eval") as tab_eval:
                texts["tab_eval"] = tab_eval
                texts["eval_hint"] = gr.Markdown(t("eval_hint", lang))
                with gr.Row():
                    texts["eval_questions"] = eval_questions = gr.Textbox(
                        value="Who are you?\nWhat is your name?\nWhat is the capital of France?\n你是谁？",
                        lines=5, label=t("eval_questions", lang), elem_id="eval-questions", scale=3)
                    with gr.Column():
                        texts["eval_file"] = eval_file = gr.Textbox(label=t("eval_file", lang),
                                                                    elem_id="eval-file")
                        texts["eval_name"] = eval_name = gr.Textbox(label=t("eval_name", lang),
                                                                    elem_id="eval-name")
                        texts["btn_eval"] = btn_eval = gr.Button(t("btn_eval", lang), variant="primary",
                                                                 elem_id="btn-eval")
                eval_summary = gr.HTML(elem_id="eval-summary")
                eval_shown = gr.State(None)  # what eval_summary shows, in no language
                eval_table = gr.Dataframe(headers=actions.eval_headers(lang), interactive=False, wrap=True,
                                          elem_id="eval-table")

            # ---------------------------------------------------------------- Export
            export_comps: dict[str, Any] = {}
            with gr.Tab(t("tab_export", lang), id="export", elem_id="tab-export",
                        visible=actions.export_available()) as tab_export:
                texts["tab_export"] = tab_export
                texts["export_hint"] = gr.Markdown(t("export_hint", lang))
                with gr.Row():
                    export_model, export_adapters = _model_pickers("export", lang, choices, texts)
                    texts["btn_refresh_export"] = btn_refresh_export = gr.Button(
                        t("btn_refresh_adapters", lang), size="sm", scale=0, elem_id="btn-refresh-export")
                _grid(field_specs(("export",)), lang, choices, export_comps, per_row=3)
                texts["btn_export"] = btn_export = gr.Button(t("btn_export", lang), variant="primary",
                                                             elem_id="btn-export")
                texts["export_log"] = export_log = gr.Textbox(label=t("export_log", lang), lines=10,
                                                              interactive=False, elem_id="export-log")

        # ------------------------------------------------------------------------------------------------- events
        names = list(comps)
        inputs = [comps[n] for n in names]

        def values_of(args) -> dict[str, Any]:
            return dict(zip(names, args))

        method_fields = [n for n in names if conditional(by_name[n])]  # shown for the methods/stages they apply to

        def on_method(method, stage):
            return ([gr.update(visible=actions.section_visible(sections[sec], method, stage)) for sec in method_boxes]
                    + [gr.update(visible=actions.field_visible(by_name[n], method, stage)) for n in method_fields])

        for chooser in ("finetuning_type", "stage"):
            comps[chooser].change(on_method, [comps["finetuning_type"], comps["stage"]],
                                  [*method_boxes.values(), *[comps[n] for n in method_fields]])

        def on_dataset_dir(dataset_dir, selected):
            return gr.update(choices=actions.choices(root, dataset_dir)["datasets"], value=selected)

        comps["dataset_dir"].change(on_dataset_dir, [comps["dataset_dir"], comps["dataset"]], comps["dataset"])

        def on_datasets(dataset_dir, selected, current_vars):
            return actions.suggest_vars(root, dataset_dir, selected, current_vars)

        comps["dataset"].change(on_datasets, [comps["dataset_dir"], comps["dataset"], comps["dataset_vars"]],
                                comps["dataset_vars"])

        def on_refresh_data(dataset_dir, selected):
            ch = actions.choices(root, dataset_dir)
            return (gr.update(choices=ch["datasets"], value=selected), gr.update(choices=ch["models"]),
                    gr.update(choices=ch["adapters"]))

        texts["btn_refresh_data"].click(on_refresh_data, [comps["dataset_dir"], comps["dataset"]],
                                        [comps["dataset"], comps["model_name_or_path"],
                                         comps["adapter_name_or_path"]])

        def show(result, lang_):
            """The message box's HTML and its language-free record (see actions.note)."""
            n = actions.note(result)
            return actions.note_html(n, lang_), n

        def on_preview_data(lang_, *args):
            try:
                return actions.preview_data(ctx, values_of(args), lang_), "", None
            except TuneforgeError as e:
                return "", *show(e, lang_)

        texts["btn_preview_data"].click(on_preview_data, [lang_radio, *inputs], [data_preview, message, shown])

        def on_preview_cmd(lang_, *args):
            try:
                cfg = actions.resolve(ctx, values_of(args))
                return actions.command(cfg), *show(actions.Msg("msg_command_ok"), lang_)
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
                return (job.output_dir, actions.command(cfg),
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
            return progress_html(st, lang_), loss_svg(st.loss, lang_, st.eval_loss), st.log_tail

        timer.tick(on_tick, [lang_radio, job_dir], [progress, loss, log_box], show_progress="hidden")

        def on_page_load(lang_):
            """A reloaded page finds the running (or last) job and shows its settings again."""
            job = mgr.current()
            if job is None:
                return [None, gr.update()] + [gr.update() for _ in names]
            values = actions.load_config_values(job.output_dir)
            cmd = actions.command(build_config(values)) if values else gr.update()
            return [str(job.output_dir), cmd] + [actions.widget_update(by_name[n], values.get(n)) if values else
                                                 gr.update() for n in names]

        demo.load(on_page_load, [lang_radio], [job_dir, command, *inputs])

        # Chat
        gen_names = list(chat_comps)
        engine_inputs = [chat_model, chat_adapters, chat_template, side_by_side]

        def on_refresh_adapters():
            ch = actions.choices(root, "data")
            return gr.update(choices=ch["adapters"]), gr.update(choices=ch["models"]), gr.update(
                choices=ch["adapters"])

        btn_refresh_ad.click(on_refresh_adapters, None, [chat_adapters, chat_model, export_adapters])
        btn_refresh_export.click(on_refresh_adapters, None, [chat_adapters, export_model, export_adapters])

        def on_load_model(lang_, model, adapters, template, sbs):
            try:
                return show(ctx.chat.load(ctx, model, adapters, template, sbs, lang_), lang_)
            except TuneforgeError as e:
                return show(e, lang_)

        btn_load_model.click(on_load_model, [lang_radio, *engine_inputs], [chat_status, chat_shown])

        def on_send(lang_, text, tuned_hist, base_hist, system, sbs, *gen_values):
            gen = dict(zip(gen_names, gen_values))
            try:
                for tuned, base, status, box in ctx.chat.reply(text, tuned_hist or [], base_hist or [], system, sbs,
                                                               gen, lang_):
                    yield tuned, base, *(show(status, lang_) if status is not None else ("", None)), box
            except TuneforgeError as e:
                yield tuned_hist, base_hist, *show(e, lang_), gr.update()

        send_inputs = [lang_radio, chat_input, tuned_bot, base_bot, chat_system, side_by_side,
                       *[chat_comps[n] for n in gen_names]]
        send_outputs = [tuned_bot, base_bot, chat_status, chat_shown, chat_input]
        btn_send.click(on_send, send_inputs, send_outputs)
        chat_input.submit(on_send, send_inputs, send_outputs)
        btn_clear.click(lambda: ([], []), None, [tuned_bot, base_bot])
        side_by_side.change(lambda v: gr.update(visible=v), side_by_side, base_bot)

        # Evaluate
        def on_eval(lang_, questions, qfile, name, ds_vars, system, *gen_values):
            gen = dict(zip(gen_names, gen_values))
            try:
                rows, summary = ctx.chat.evaluate(ctx, questions, qfile, name or actions.var_name(ds_vars), system,
                                                  gen, lang_)
                return gr.update(value=rows, headers=actions.eval_headers(lang_)), *show(summary, lang_)
            except TuneforgeError as e:
                return gr.update(), *show(e, lang_)

        btn_eval.click(on_eval, [lang_radio, eval_questions, eval_file, eval_name, comps["dataset_vars"],
                                 chat_system, *[chat_comps[n] for n in gen_names]],
                       [eval_table, eval_summary, eval_shown])

        # Export
        export_names = list(export_comps)

        def on_export(lang_, model, adapters, *values):
            try:
                yield from actions.run_export(ctx, model, adapters, dict(zip(export_names, values)), lang_)
            except TuneforgeError as e:
                yield t("msg_error", lang_, message=actions.error_text(e, lang_))

        btn_export.click(on_export, [lang_radio, export_model, export_adapters,
                                     *[export_comps[n] for n in export_names]], export_log)

        # Language switch: every label, help text, button and message.
        all_specs = {**{n: by_name[n] for n in names}, **specs_by_name(("generate", "export"))}
        field_comps = {**comps, **chat_comps, **export_comps}

        def on_lang(lang_, current, shown_, chat_shown_, eval_shown_):
            out = [actions.note_html(shown_, lang_), actions.note_html(chat_shown_, lang_),
                   actions.note_html(eval_shown_, lang_)]
            for key, comp in texts.items():
                out.append(actions.text_update(comp, t(key, lang_)))
            for n, comp in field_comps.items():
                out.append(gr.update(label=field_label(n, lang_), info=field_help(all_specs[n], lang_)))
            st = mgr.status(Path(current) if current else None)
            out += [progress_html(st, lang_), loss_svg(st.loss, lang_, st.eval_loss),
                    gr.update(headers=actions.eval_headers(lang_))]
            return out

        lang_radio.change(on_lang, [lang_radio, job_dir, shown, chat_shown, eval_shown],
                          [message, chat_status, eval_summary, *texts.values(), *field_comps.values(), progress, loss,
                           eval_table])
    demo.tf_context = ctx  # for tests and the CLI
    return demo


def launch(root: Path, host: str, port: int, share: bool, auth: list[tuple[str, str]], lang: str) -> None:
    os.chdir(root)  # relative paths in configs and commands are relative to the working folder
    demo = build_app(root, lang)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, share=share, auth=auth or None, css=CSS,
                show_error=False, quiet=False, footer_links=[])
