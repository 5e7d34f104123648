"""What the web UI's buttons do, kept apart from the layout (``app.py``) so that each piece is testable."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from tuneforge.config import Config
from tuneforge.config.parse import build_config, load_yaml
from tuneforge.errors import ConfigError, TuneforgeError, problems_heading
from tuneforge.models.load import ALIASES, DEFAULT_MODEL
from tuneforge.train.run_dir import CONFIG, SUMMARY
from tuneforge.webui.i18n import Msg, t, tr
from tuneforge.webui.paths import confine, confine_dataset, relative
from tuneforge.webui.runner import RunManager
from tuneforge.webui.schema_form import (
    FieldSpec, applies, check_mapping_text, config_from_form, preview_command, specs_by_name, to_widget,
)

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".cache"}
PREVIEW_ROWS = 3


@dataclass
class Context:
    root: Path
    manager: RunManager
    chat: "ChatSession" = field(default_factory=lambda: ChatSession())


# ---- choices found on disk ----------------------------------------------------------------------------------------

def _walk(root: Path, depth: int = 3):
    stack = [(root, 0)]
    while stack:
        d, lvl = stack.pop()
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for e in entries:
            if e.is_dir() and not e.name.startswith(".") and e.name not in SKIP_DIRS:
                yield e
                if lvl + 1 < depth:
                    stack.append((e, lvl + 1))


def choices(root: Path, dataset_dir: str | None) -> dict[str, list[str]]:
    from tuneforge.data.catalog import BUILTIN_ALIASES, load_catalog
    from tuneforge.data.templates import template_names

    models, adapters = list(ALIASES), []
    for d in _walk(root):
        if (d / "adapter_config.json").is_file():
            adapters.append(relative(d, root))
        elif (d / "config.json").is_file() and any(d.glob("*.safetensors")):
            models.append(relative(d, root))
    try:
        ds_dir = confine(dataset_dir, root, "dataset_dir") if dataset_dir else None
        datasets = sorted(load_catalog(ds_dir)) + sorted(BUILTIN_ALIASES)
    except TuneforgeError:
        datasets = sorted(load_catalog(None)) + sorted(BUILTIN_ALIASES)
    return {"models": models, "adapters": sorted(adapters), "datasets": datasets,
            "templates": ["auto", *template_names()]}


def section_visible(specs: list[FieldSpec], method: str, stage: str) -> bool:
    """A section of method or stage options is shown when the chosen method and stage take any of its fields."""
    return any(applies(spec, method, stage) for spec in specs)


def field_visible(spec: FieldSpec, method: str, stage: str) -> bool:
    return applies(spec, method, stage)


def suggest_vars(root: Path, dataset_dir: str | None, selected: list[str] | None, current: str | None):
    """Offer the placeholders of the chosen datasets (their declared defaults) when the field is still empty."""
    import gradio as gr

    from tuneforge.data.catalog import load_catalog, lookup

    if current and current.strip():
        return gr.update()
    try:
        cat = load_catalog(confine(dataset_dir, root, "dataset_dir") if dataset_dir else None)
    except TuneforgeError:
        return gr.update()
    merged: dict[str, str] = {}
    for name in selected or []:
        entry = lookup(cat, name)
        if entry is not None:
            merged.update(entry.vars)
    return gr.update(value=",".join(f"{k}={v}" for k, v in merged.items())) if merged else gr.update()


# ---- config from the form -----------------------------------------------------------------------------------------

def _confine_paths(cfg: Config, root: Path) -> None:
    """Every path-valued setting must lie inside the root; it is written relative to it."""
    specs = specs_by_name()
    problems = []
    for name, spec in specs.items():
        if not spec.is_path:
            continue
        obj = getattr(cfg, spec.group)
        value = getattr(obj, name)
        if not value:
            continue
        if name == "model_name_or_path" and str(value).lower() in ALIASES:
            continue
        try:
            parts = [relative(confine(p, root, name), root) for p in str(value).split(",") if p.strip()]
            setattr(obj, name, ",".join(parts))
        except TuneforgeError as e:
            problems.append(Msg("with_fix", message=e.message, hint=e.hint))
    if problems:
        raise ConfigError(problems)


def _catalog(cfg: Config, root: Path):
    """The dataset catalog of ``cfg`` (its dataset_dir relative to the root, as the spawned run reads it)."""
    from tuneforge.data.catalog import load_catalog

    d = cfg.data.dataset_dir
    return load_catalog((root / d) if d and not Path(d).is_absolute() and d != "ONLINE" else d)


def _confine_datasets(cfg: Config, root: Path) -> None:
    """Every file the chosen datasets name in dataset_info.json — and every symlink target — must lie inside the
    root: Preview would show it and Start would train on it."""
    from tuneforge.data.catalog import lookup, split_names

    catalog, problems = _catalog(cfg, root), []
    for name in split_names(cfg.data.dataset) + split_names(cfg.data.eval_dataset):
        entry = lookup(catalog, name)
        if entry is None:
            continue  # preflight names the unknown dataset
        try:
            confine_dataset(entry, root)
        except TuneforgeError as e:
            problems.append(Msg("with_fix", message=e.message, hint=e.hint))
    if problems:
        raise ConfigError(problems)


def resolve(ctx: Context, values: dict[str, Any], for_start: bool = False) -> Config:
    """Form values → a validated Config (every problem at once), with paths confined to the root."""
    from tuneforge.recipes.preflight import preflight

    problem = check_mapping_text(values.get("dataset_vars") or "")
    if problem:
        raise ConfigError([problem])
    cfg = config_from_form(values)
    _confine_paths(cfg, ctx.root)
    _confine_datasets(cfg, ctx.root)
    preflight(cfg)
    if for_start:
        out = ctx.root / cfg.train.output_dir
        summary = out / SUMMARY
        if summary.is_file() and not cfg.train.overwrite_output_dir:
            try:
                done = json.loads(summary.read_text()).get("completed")
            except json.JSONDecodeError:
                done = False
            if done:
                raise TuneforgeError(Msg("msg_run_finished_exists", out=cfg.train.output_dir),
                                     Msg("msg_run_finished_exists_fix"))
    return cfg


def command(cfg: Config, lang: str = "en") -> str:
    """The command the page shows for ``cfg``: what Start runs, in the page's language (``--lang``)."""
    return preview_command(cfg, lang_flag(lang))


def lang_flag(lang: str) -> list[str]:
    """``--lang zh`` for a page in Chinese (English is the CLI's default and needs no flag)."""
    return [] if lang == "en" else ["--lang", lang]


def save_args(ctx: Context, values: dict[str, Any], path: str) -> str:
    cfg = config_from_form(values)
    target = confine(path, ctx.root, Msg("what_args_file"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(cfg.to_yaml(), encoding="utf-8")
    return relative(target, ctx.root)


def load_args(ctx: Context, path: str) -> dict[str, Any]:
    target = confine(path, ctx.root, Msg("what_args_file"))
    return build_config(load_yaml(target)).to_flat()


def load_config_values(output_dir: Path) -> dict[str, Any] | None:
    try:
        return build_config(load_yaml(Path(output_dir) / CONFIG)).to_flat()
    except TuneforgeError:
        return None


def widget_update(spec: FieldSpec, value: Any):
    import gradio as gr

    if spec.name in ("adapter_name_or_path", "dataset"):
        return gr.update(value=[v.strip() for v in (value or "").split(",") if v.strip()])
    return gr.update(value=to_widget(spec, value))


def text_update(comp, text: str):
    import gradio as gr

    if isinstance(comp, (gr.Button, gr.Markdown)):
        return gr.update(value=text)
    if isinstance(comp, (gr.Tab, gr.Accordion)):
        return gr.update(label=text)
    return gr.update(label=text)


def error_html(e: TuneforgeError, lang: str) -> str:
    """``e`` as HTML in ``lang``: errors.py's text (``error_text``), with the problems as a list."""
    if isinstance(e, ConfigError):
        items = "".join(f"<li>{html.escape(tr(p, lang))}</li>" for p in e.problems)
        return (f'<div class="tf-msg-error" id="tf-error" lang="{lang}"><b>'
                f'{html.escape(tr(problems_heading(len(e.problems)), lang))}</b><ul>{items}</ul></div>')
    hint = f"<br>{html.escape(tr(Msg('error_hint', hint=e.hint), lang))}" if e.hint else ""
    return f'<div class="tf-msg-error" id="tf-error" lang="{lang}">{html.escape(tr(e.message, lang))}{hint}</div>'


def ok_html(text: str, lang: str | None = None) -> str:
    attr = f' lang="{lang}"' if lang else ""
    return f'<div class="tf-msg-ok" id="tf-ok"{attr}>{html.escape(text)}</div>'


def note(result: TuneforgeError | Msg) -> tuple:
    """What the Train tab's message box shows, kept without a language so a language switch can render it again."""
    if isinstance(result, ConfigError):
        return ("problems", list(result.problems))
    if isinstance(result, TuneforgeError):
        return ("error", result.message, result.hint)
    return ("ok", result)


def note_html(shown: tuple | None, lang: str) -> str:
    if not shown:
        return ""
    if shown[0] == "problems":
        return error_html(ConfigError(shown[1]), lang)
    if shown[0] == "error":
        return error_html(TuneforgeError(shown[1], shown[2]), lang)
    return ok_html(tr(shown[1], lang), lang)


def var_name(dataset_vars: str | None) -> str:
    for part in (dataset_vars or "").split(","):
        k, _, v = part.partition("=")
        if k.strip() == "name":
            return v.strip()
    return ""


# ---- data preview -------------------------------------------------------------------------------------------------

def preview_data(ctx: Context, values: dict[str, Any], lang: str) -> str:
    """The first rows of each chosen dataset, rendered through the chosen template, supervised tokens marked."""
    from tuneforge.data import templates
    from tuneforge.data.build import read_dataset
    from tuneforge.data.catalog import lookup, split_names
    from tuneforge.data.encode import _label, supervised_spans
    from tuneforge.models import load_tokenizer, resolve_model_path
    from tuneforge.models.load import check_model
    from tuneforge.webui.render import preview_sample_html

    problem = check_mapping_text(values.get("dataset_vars") or "")
    if problem:
        raise ConfigError([problem])
    cfg = config_from_form(values)
    _confine_paths(cfg, ctx.root)
    _confine_datasets(cfg, ctx.root)
    d = cfg.data
    problems = [p for p in (check_model(cfg.model.model_name_or_path),) if p]
    if not cfg.model.model_name_or_path:
        problems.append(Msg("msg_need_model"))
    if not d.dataset:
        problems.append(Msg("msg_need_dataset"))
    if problems:
        raise ConfigError(problems)
    tokenizer = load_tokenizer(resolve_model_path(cfg.model.model_name_or_path), cfg.model.trust_remote_code)
    fmt = templates.install(tokenizer, d.template)
    catalog = _catalog(cfg, ctx.root)
    args = dataclasses.replace(d, max_samples=PREVIEW_ROWS)
    parts = [f'<div class="tf-preview-head">{html.escape(t("preview_head", lang, template=fmt.name))}</div>']
    for name in split_names(d.dataset):
        entry = lookup(catalog, name)
        if entry is None:
            raise ConfigError([Msg("msg_preview_unknown_dataset", name=name, known=", ".join(sorted(catalog)))])
        items, _ = read_dataset(entry, args, cfg.finetune.stage)
        for conv in items:
            if isinstance(conv, str):  # pt: plain text, every token trained
                enc = tokenizer(conv, add_special_tokens=False, return_offsets_mapping=True)
                offs = list(enc["offset_mapping"])
                parts.append(preview_sample_html(conv, offs, [True] * len(offs), d.cutoff_len, name, lang))
                continue
            if conv.system is None and d.default_system is not None:
                conv.system = d.default_system
            text, spans = supervised_spans(fmt, tokenizer, conv, d.train_on_prompt, d.mask_history)
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offs = list(enc["offset_mapping"])
            parts.append(preview_sample_html(text, offs, _label(offs, spans), d.cutoff_len,
                                             conv.source or name, lang))
    return f'<div id="tf-preview">{"".join(parts)}</div>'


# ---- chat and evaluation ------------------------------------------------------------------------------------------

def eval_headers(lang: str) -> list[str]:
    return [t("col_question", lang), t("col_base", lang), t("col_tuned", lang), t("col_hit", lang)]


def _gen_args(values: dict[str, Any]):
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.webui.schema_form import from_widget

    specs = specs_by_name(("generate",))
    raw = {k: from_widget(specs[k], v) for k, v in values.items() if k in specs}
    return build_config(raw).generate if raw else GenerateArgs()


def message_text(content: Any) -> str:
    """Gradio hands chat messages back as a list of parts ({type: text, text: …}); the engine wants plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "".join(message_text(c) for c in content)
    return ""


def general_questions(text: str | None) -> list[tuple[str, list[str]]]:
    """``question | accepted answer; another`` per line → (question, answers); a line without answers is refused."""
    out = []
    for i, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        q, sep, answers = line.partition("|")
        accepted = [a.strip() for a in answers.split(";") if a.strip()]
        if not sep or not q.strip() or not accepted:
            raise TuneforgeError(Msg("msg_general_bad", line=i, got=line.strip()))
        out.append((q.strip(), accepted))
    return out


def read_questions(path: Path) -> list[str]:
    """One question per line, or JSONL rows with ``messages`` (the last user turn is asked) or ``question``."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            out.append(line.strip())
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TuneforgeError(Msg("msg_questions_bad_json", file=path.name, line=i, error=e.msg),
                                 Msg("msg_questions_bad_json_fix")) from None
        users = [m.get("content") for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
        q = users[-1] if users else row.get("question") or row.get("prompt")
        if not isinstance(q, str) or not q.strip():
            raise TuneforgeError(Msg("msg_questions_no_question", file=path.name, line=i),
                                 Msg("msg_questions_no_question_fix"))
        out.append(q.strip())
    return out


class ChatSession:
    """The loaded tuned model (base + adapters) and, for side-by-side, the plain base model."""

    def __init__(self):
        self.tuned = None
        self.base = None
        self.key = None
        self.lock = threading.Lock()

    def load(self, ctx: Context, model: str, adapters: list[str] | str | None, template: str, side_by_side: bool,
             lang: str) -> Msg:
        """Load (or keep) the engines; the status message, in no language yet (the page renders it)."""
        from tuneforge.infer.engine import ChatEngine
        from tuneforge.models.load import check_model

        model = (model or DEFAULT_MODEL).strip()
        if model.lower() not in ALIASES:
            model = relative(confine(model, ctx.root, Msg("what_model")), ctx.root)
        problem = check_model(model)
        if problem:
            raise TuneforgeError(problem)
        ads = adapters if isinstance(adapters, list) else [a for a in (adapters or "").split(",")]
        ads = [relative(confine(a, ctx.root, Msg("what_adapter")), ctx.root) for a in ads if a and a.strip()]
        from tuneforge.adapters import check_adapter_dir

        bad = [p for p in (check_adapter_dir(a) for a in ads) if p]
        if bad:
            raise ConfigError(bad)
        key = (model, tuple(ads), template, bool(side_by_side))
        with self.lock:
            if key != self.key:
                self.tuned = ChatEngine(model, ",".join(ads) or None, template or "auto")
                self.base = ChatEngine(model, None, template or "auto") if (side_by_side and ads) else None
                self.key = key
        return Msg("msg_model_loaded", model=model, adapters=", ".join(ads) if ads else Msg("none"))

    def _require(self, lang: str) -> None:
        if self.tuned is None:
            raise TuneforgeError(Msg("msg_load_first"), Msg("msg_load_first_hint"))

    def _stream(self, engine, history: list[dict], system: str | None, gen):
        """Yield the growing reply text; the last value is the engine's cleaned reply."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        result: dict[str, Any] = {}

        def work():
            try:
                result["text"] = engine.generate([history], gen, system or None, batch_size=1, streamer=streamer)[0]
            except Exception as e:  # surfaced below, after the streamer ends
                result["error"] = e
                streamer.end()

        th = threading.Thread(target=work, daemon=True)
        th.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        th.join()
        if "error" in result:
            raise TuneforgeError(Msg("msg_generation_failed", error=result["error"]))
        yield result["text"]

    def reply(self, text: str, tuned_hist: list, base_hist: list, system: str | None, side_by_side: bool,
              gen_values: dict[str, Any], lang: str, tools_json: str = ""):
        """Stream the tuned reply, then (side by side) the base model's reply to the same message. With tools
        (a JSON list in ``tools_json``) only the tuned model answers, its calls shown (webui/chat_tools.py).

        Yields (tuned history, base history, status, input box): the status is None while streaming, then a Msg."""
        self._require(lang)
        text = (text or "").strip()
        if not text:
            yield tuned_hist, base_hist, None, ""
            return
        gen = _gen_args(gen_values)
        if (tools_json or "").strip():
            from tuneforge.webui import chat_tools

            with self.lock:
                hist, status = chat_tools.turn(self.tuned, list(tuned_hist) + [{"role": "user", "content": text}],
                                               system, gen, tools_json)
            yield hist, base_hist, status, ""
            return
        import time

        t0 = time.time()
        with self.lock:
            pairs = [(self.tuned, tuned_hist)]
            if side_by_side and self.base is not None:
                pairs.append((self.base, base_hist))
            elif side_by_side and self.key[1]:
                raise TuneforgeError(Msg("msg_reload_for_base"))
            elif side_by_side:
                pairs.append((self.tuned, base_hist))  # no adapter loaded: the loaded model is the base
            hists = [list(h) for _, h in pairs]
            for h in hists:
                h.append({"role": "user", "content": text})
                h.append({"role": "assistant", "content": ""})
            for i, (engine, _) in enumerate(pairs):
                convo = [{"role": m["role"], "content": message_text(m["content"])} for m in hists[i][:-1]]
                for partial in self._stream(engine, convo, system, gen):
                    hists[i][-1]["content"] = partial
                    yield hists[0], (hists[1] if len(hists) > 1 else base_hist), None, ""
        yield (hists[0], (hists[1] if len(hists) > 1 else base_hist),
               Msg("msg_replied", seconds=f"{time.time() - t0:.1f}"), "")

    def tool_result(self, result: str, tuned_hist: list, system: str | None, gen_values: dict[str, Any],
                    tools_json: str, lang: str) -> tuple[list, Msg | None]:
        """The typed result of the waiting call; once every call of the turn has one, the model continues."""
        from tuneforge.webui import chat_tools

        self._require(lang)
        hist, complete = chat_tools.add_result(list(tuned_hist or []), result or "")
        if not complete:
            return hist, Msg("msg_tool_called", names=chat_tools.pending_calls(hist)[0][0])
        with self.lock:
            return chat_tools.turn(self.tuned, hist, system, _gen_args(gen_values), tools_json)

    def evaluate(self, ctx: Context, questions: str, qfile: str | None, name: str, system: str | None,
                 gen_values: dict[str, Any], lang: str, general: str = "") -> tuple[list[list[Any]], Msg]:
        """Two lists, scored apart: identity questions by the expected name in the reply (hit rate, tuned and
        base); general questions (``question | accepted answer; another``) by their answers — of those the base
        model gets right, the ones the tuned model keeps and loses (eval.identity.correct, the identity demo's
        rule)."""
        from tuneforge.eval.identity import correct, identity_hits

        self._require(lang)
        qs = [q.strip() for q in (questions or "").splitlines() if q.strip()]
        if qfile and qfile.strip():
            path = confine(qfile, ctx.root, Msg("what_questions_file"))
            if not path.is_file():
                raise TuneforgeError(Msg("msg_questions_missing", path=qfile), Msg("msg_questions_missing_fix"))
            qs += read_questions(path)
        gq = general_questions(general)
        if not qs and not gq:
            raise TuneforgeError(Msg("msg_no_questions"))
        gen = _gen_args(gen_values)
        asked = qs + [q for q, _ in gq]
        convs = [[{"role": "user", "content": q}] for q in asked]
        with self.lock:
            tuned = self.tuned.generate(convs, gen, system or None)
            base = self.base.generate(convs, gen, system or None) if self.base is not None else ["" for _ in asked]
        rows, parts = [], []
        for q, b, tu in zip(qs, base, tuned):
            hit = (name.lower() in tu.lower()) if name else None
            rows.append([q, b, tu, "" if hit is None else ("✔" if hit else "✘")])
        if qs and name:
            hits, _ = identity_hits(tuned[:len(qs)], name)
            base_hits, _ = identity_hits(base[:len(qs)], name) if self.base is not None else (0, [])
            parts.append(Msg("msg_hit_rate", name=name, hits=hits, n=len(qs), rate=f"{hits / len(qs):.0%}",
                             base_hits=base_hits))
        elif qs:
            parts.append(Msg("msg_eval_done", n=len(qs)))
        if gq:
            lost, kept, base_right = [], 0, 0
            for (q, answers), b, tu in zip(gq, base[len(qs):], tuned[len(qs):]):
                b_ok, t_ok = correct(b, answers), correct(tu, answers)
                base_right += b_ok
                kept += b_ok and t_ok
                if b_ok and not t_ok:
                    lost.append(q)
                verdict = ("col_kept" if t_ok else "col_lost") if b_ok else "col_base_wrong"
                rows.append([q, b, tu, t(verdict, lang) + (" ✔" if t_ok else " ✘")])
            parts.append(Msg("msg_general_kept", kept=kept, base_right=base_right, m=len(gq),
                             lost=Msg("msg_general_lost", questions="; ".join(lost)) if lost else ""))
        summary = parts[0] if len(parts) == 1 else Msg("msg_eval_both", identity=parts[0], general=parts[1])
        return rows, summary

    def benchmark(self, ctx: Context, task: str, task_dir: str | None, n_shot: int, lang: str):
        """`tuneforge eval`'s multiple-choice benchmark on the loaded models (Chat tab): the tuned one, and the base
        where it is loaded beside it. Returns (headers, rows, message) — the table the CLI prints."""
        from tuneforge.eval import mc

        self._require(lang)
        folder = None
        if task_dir and task_dir.strip():
            folder = confine(task_dir, ctx.root, Msg("what_task_dir"))
        subjects = mc.load_task((task or "sample_en").strip(), str(folder) if folder else None)
        bench_lang = "zh" if lang == "zh" else "en"
        with self.lock:
            results = {}
            if self.base is not None:
                results["base"] = mc.evaluate(self.base, subjects, int(n_shot), bench_lang)
            results["tuned" if self.base is not None else "model"] = mc.evaluate(self.tuned, subjects, int(n_shot),
                                                                                 bench_lang)
        last = list(results.values())[-1]
        return mc.headers(results), mc.table(results), Msg("msg_bench_done", task=task, correct=last.correct,
                                                            total=last.total, acc=f"{100 * last.accuracy:.1f}")


# ---- export -------------------------------------------------------------------------------------------------------

def export_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tuneforge.recipes.export") is not None


def export_command(args: list[str], lang: str = "en") -> str:
    """The export command the page shows, quoted for a shell (pasting it runs exactly this, nothing injected)."""
    return shlex.join(["tuneforge", *lang_flag(lang), "export", *args])


def run_export(ctx: Context, model: str, adapters: list[str] | None, values: dict[str, Any], lang: str):
    """Run `tuneforge export` as a subprocess (no shell) and stream its output."""
    from tuneforge.webui.schema_form import from_widget

    specs = specs_by_name(("export",))
    model = (model or DEFAULT_MODEL).strip()
    if model.lower() not in ALIASES:
        model = relative(confine(model, ctx.root, Msg("what_model")), ctx.root)
    ads = [relative(confine(a, ctx.root, Msg("what_adapter")), ctx.root) for a in (adapters or []) if a.strip()]
    if not ads:
        raise TuneforgeError(Msg("msg_export_need_adapter"))
    args = ["--model_name_or_path", model, "--adapter_name_or_path", ",".join(ads)]
    for k, v in values.items():
        v = from_widget(specs[k], v)
        if v is None or v == "":
            continue
        if specs[k].is_path:
            v = relative(confine(str(v), ctx.root, k), ctx.root)
        args += [f"--{k}", str(v)]
    cmd = [sys.executable, "-m", "tuneforge", "--lang", lang, "export", *args]  # the CLI's errors in the page's language
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    import tuneforge

    src = str(Path(tuneforge.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    shown = "$ " + export_command(args, lang) + "\n"
    yield shown
    proc = subprocess.Popen(cmd, cwd=ctx.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    out = shown
    for line in proc.stdout:
        out += line
        yield out
    rc = proc.wait()
    yield out + "\n" + (t("msg_export_ok", lang) if rc == 0 else t("msg_export_failed", lang, rc=rc))
