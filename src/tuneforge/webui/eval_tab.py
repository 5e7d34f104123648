"""The Evaluate tab: the loaded models (Chat tab) answer a list of questions; with the identity's name, the share of
replies that say it, for the tuned model and the base."""

from __future__ import annotations

import gradio as gr

from tuneforge.errors import TuneforgeError
from tuneforge.webui import actions
from tuneforge.webui.i18n import t
from tuneforge.webui.widgets import Page, show


def build(page: Page) -> None:
    lang, texts, ctx = page.lang, page.texts, page.ctx
    with gr.Tab(t("tab_eval", lang), id="eval", elem_id="tab-eval") as tab:
        texts["tab_eval"] = tab
        texts["eval_hint"] = gr.Markdown(t("eval_hint", lang))
        with gr.Row():
            texts["eval_questions"] = questions = gr.Textbox(
                value="Who are you?\nWhat is your name?\n你是谁？", lines=5, label=t("eval_questions", lang),
                elem_id="eval-questions", scale=2)
            texts["eval_general"] = general = gr.Textbox(
                value="What is the capital of France? | Paris\nHow many days are in a week? | 7; seven\n"
                      "法国的首都是哪里？ | 巴黎", lines=5, label=t("eval_general", lang), elem_id="eval-general",
                scale=2)
            with gr.Column():
                texts["eval_file"] = qfile = gr.Textbox(label=t("eval_file", lang), elem_id="eval-file")
                texts["eval_name"] = name = gr.Textbox(label=t("eval_name", lang), elem_id="eval-name")
                texts["btn_eval"] = btn_eval = gr.Button(t("btn_eval", lang), variant="primary", elem_id="btn-eval")
        summary = gr.HTML(elem_id="eval-summary")
        summary_shown = gr.State(None)  # what `summary` shows, in no language
        # fixed shares of the page's width and wrapped cells: long replies grow the rows, not the table's width
        table = gr.Dataframe(headers=actions.eval_headers(lang), interactive=False, wrap=True, elem_id="eval-table",
                             column_widths=["18%", "36%", "36%", "10%"])
        texts["eval_bench_hint"] = gr.Markdown(t("eval_bench_hint", lang))
        with gr.Row():
            texts["eval_task"] = task = gr.Textbox(value="sample_en", label=t("eval_task", lang), elem_id="eval-task")
            texts["eval_task_dir"] = task_dir = gr.Textbox(label=t("eval_task_dir", lang), elem_id="eval-task-dir")
            texts["eval_n_shot"] = n_shot = gr.Number(value=5, precision=0, minimum=0, label=t("eval_n_shot", lang),
                                                      elem_id="eval-n-shot")
            texts["btn_bench"] = btn_bench = gr.Button(t("btn_bench", lang), elem_id="btn-bench")
        bench_note = gr.HTML(elem_id="bench-summary")
        bench_shown = gr.State(None)
        bench_table = gr.Dataframe(interactive=False, elem_id="bench-table")
    page.notes.append((summary, summary_shown))
    page.notes.append((bench_note, bench_shown))
    page.on_lang.append(([table], lambda lang_, current: [gr.update(headers=actions.eval_headers(lang_))]))

    gen = page.shared["gen"]
    gen_names = list(gen)

    def on_eval(lang_, questions_, general_, qfile_, name_, ds_vars, system, *gen_values):
        values = dict(zip(gen_names, gen_values))
        try:
            rows, result = ctx.chat.evaluate(ctx, questions_, qfile_, name_ or actions.var_name(ds_vars), system,
                                             values, lang_, general_)
            return gr.update(value=rows, headers=actions.eval_headers(lang_)), *show(result, lang_)
        except TuneforgeError as e:
            return gr.update(), *show(e, lang_)

    def on_bench(lang_, task_, task_dir_, n_shot_):
        try:
            headers, rows, result = ctx.chat.benchmark(ctx, task_, task_dir_, int(n_shot_ or 0), lang_)
            return gr.update(value=rows, headers=headers), *show(result, lang_)
        except TuneforgeError as e:
            return gr.update(), *show(e, lang_)

    btn_bench.click(on_bench, [page.lang_radio, task, task_dir, n_shot], [bench_table, bench_note, bench_shown])
    btn_eval.click(on_eval, [page.lang_radio, questions, general, qfile, name, page.shared["dataset_vars"],
                             page.shared["chat_system"], *[gen[n] for n in gen_names]],
                   [table, summary, summary_shown])
