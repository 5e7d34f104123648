"""The Chat tab: the tuned model (base + adapters) and, side by side, the base model, streamed replies; the decoding
settings come from the schema's generate group (the Evaluate tab uses them too)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tuneforge.errors import TuneforgeError
from tuneforge.webui.i18n import t
from tuneforge.webui.schema_form import field_specs
from tuneforge.webui.widgets import Page, field_grid, model_pickers, show


def build(page: Page) -> None:
    lang, texts, ctx, choices = page.lang, page.texts, page.ctx, page.choices
    gen: dict[str, Any] = {}  # decoding settings (generate group) -> widget
    with gr.Tab(t("tab_chat", lang), id="chat", elem_id="tab-chat") as tab:
        texts["tab_chat"] = tab
        with gr.Row():
            model, adapters = model_pickers(page, "chat")
            texts["chat_template"] = template = gr.Dropdown(
                choices=choices["templates"], value="auto", label=t("chat_template", lang), elem_id="chat-template")
            texts["btn_refresh_adapters"] = refresh = gr.Button(
                t("btn_refresh_adapters", lang), size="sm", scale=0, elem_id="btn-refresh-adapters")
        with gr.Row():
            texts["chat_system"] = system = gr.Textbox(label=t("chat_system", lang), elem_id="chat-system", scale=3)
            texts["side_by_side"] = side_by_side = gr.Checkbox(value=True, label=t("side_by_side", lang),
                                                               elem_id="chat-side-by-side")
            texts["btn_load_model"] = btn_load_model = gr.Button(t("btn_load_model", lang), variant="primary",
                                                                 elem_id="btn-load-model")
        with gr.Accordion(t("sec_generate", lang), open=False) as acc_gen:
            texts["sec_generate"] = acc_gen
            field_grid(page, field_specs(("generate",)), gen, per_row=3)
        with gr.Accordion(t("sec_tools", lang), open=False, elem_id="chat-tools-section") as acc_tools:
            texts["sec_tools"] = acc_tools
            texts["chat_tools"] = tools_box = gr.Code(language="json", label=t("chat_tools", lang), lines=6,
                                                      elem_id="chat-tools")
            with gr.Row():
                texts["chat_tool_result"] = tool_result = gr.Textbox(label=t("chat_tool_result", lang), scale=4,
                                                                     elem_id="chat-tool-result")
                texts["btn_send_result"] = btn_result = gr.Button(t("btn_send_result", lang), scale=0,
                                                                  elem_id="btn-send-result")
        status = gr.HTML(elem_id="chat-status")
        status_shown = gr.State(None)  # what `status` shows, in no language (re-rendered on a switch)
        with gr.Row():
            texts["chat_tuned"] = tuned_bot = gr.Chatbot(label=t("chat_tuned", lang), elem_id="chat-tuned",
                                                         height=360)
            texts["chat_base"] = base_bot = gr.Chatbot(label=t("chat_base", lang), elem_id="chat-base", height=360)
        with gr.Row():
            texts["chat_input"] = chat_input = gr.Textbox(label=t("chat_input", lang), scale=4, elem_id="chat-input")
            texts["btn_send"] = btn_send = gr.Button(t("btn_send", lang), variant="primary", elem_id="btn-send",
                                                     scale=0)
            texts["btn_clear"] = btn_clear = gr.Button(t("btn_clear", lang), scale=0)
    page.notes.append((status, status_shown))
    page.shared.update(gen=gen, chat_system=system, chat_model=model, chat_adapters=adapters,
                       chat_refresh=refresh)

    gen_names = list(gen)

    def on_load_model(lang_, model_, adapters_, template_, sbs):
        try:
            return show(ctx.chat.load(ctx, model_, adapters_, template_, sbs, lang_), lang_)
        except TuneforgeError as e:
            return show(e, lang_)

    btn_load_model.click(on_load_model, [page.lang_radio, model, adapters, template, side_by_side],
                         [status, status_shown])

    def on_send(lang_, text, tuned_hist, base_hist, system_, sbs, *rest):
        values = dict(zip(gen_names, rest))  # the generate settings, then the tools box
        tools_json = rest[len(gen_names)] if len(rest) > len(gen_names) else ""
        try:
            for tuned, base, st, box in ctx.chat.reply(text, tuned_hist or [], base_hist or [], system_, sbs, values,
                                                       lang_, tools_json):
                yield tuned, base, *(show(st, lang_) if st is not None else ("", None)), box
        except TuneforgeError as e:
            yield tuned_hist, base_hist, *show(e, lang_), gr.update()

    def on_result(lang_, result, tuned_hist, system_, tools_json, *gen_values):
        try:
            hist, st = ctx.chat.tool_result(result, tuned_hist or [], system_, dict(zip(gen_names, gen_values)),
                                            tools_json, lang_)
            return hist, *show(st, lang_), ""
        except TuneforgeError as e:
            return tuned_hist, *show(e, lang_), gr.update()

    btn_result.click(on_result, [page.lang_radio, tool_result, tuned_bot, system, tools_box,
                                 *[gen[n] for n in gen_names]], [tuned_bot, status, status_shown, tool_result])

    send_inputs = [page.lang_radio, chat_input, tuned_bot, base_bot, system, side_by_side,
                   *[gen[n] for n in gen_names], tools_box]
    send_outputs = [tuned_bot, base_bot, status, status_shown, chat_input]
    btn_send.click(on_send, send_inputs, send_outputs)
    chat_input.submit(on_send, send_inputs, send_outputs)
    btn_clear.click(lambda: ([], []), None, [tuned_bot, base_bot])
    side_by_side.change(lambda v: gr.update(visible=v), side_by_side, base_bot)
