"""`tuneforge eval`: multiple-choice benchmarks (MMLU / CMMLU / C-Eval layout, eval/mc.py) on a model and its
adapters; with ``compare_base`` the base model too, and the difference per subject."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tuneforge.config import Config
from tuneforge.errors import ConfigError
from tuneforge.eval import mc
from tuneforge.utils import log

from tuneforge.recipes.evaluate_options import OPTIONS  # noqa: F401  (the CLI reads them torch-free)


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def _int(extra: dict, key: str, default: int) -> int:
    try:
        return int(extra.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError([f"--{key} must be a whole number, got {extra[key]!r}"]) from None


def run_mc(cfg: Config, extra: dict, lang: str) -> dict:
    from tuneforge.infer.engine import ChatEngine

    if "task" not in extra:
        raise ConfigError(["eval needs --task NAME: a built-in sample (sample_en, sample_zh) or a folder under "
                           "--task_dir in the MMLU/CMMLU/C-Eval layout"])
    lang = lang if lang in mc.HEAD else "en"
    n_shot, batch = _int(extra, "n_shot", 5), _int(extra, "batch_size", 8)
    compare = _bool(extra.get("compare_base", False))
    if compare and not cfg.model.adapter_name_or_path:
        raise ConfigError(["--compare_base True compares the tuned model with its base: give the tuned model with "
                           "--adapter_name_or_path RUN_DIR"])
    subjects = mc.load_task(str(extra["task"]), extra.get("task_dir"), str(extra.get("split", "test")),
                            [s for s in str(extra.get("subjects", "")).split(",") if s.strip()] or None)
    results: dict[str, mc.Result] = {}
    runs = [("base", None), ("tuned", cfg.model.adapter_name_or_path)] if compare else \
        [("tuned" if cfg.model.adapter_name_or_path else "model", cfg.model.adapter_name_or_path)]
    for label, adapters in runs:
        t0 = time.time()
        cfg.model.adapter_name_or_path = adapters
        engine = ChatEngine.from_config(cfg)
        results[label] = mc.evaluate(engine, subjects, n_shot, lang, batch)
        log.info(f"eval {label}: {results[label].correct}/{results[label].total} correct "
                 f"({time.time() - t0:.1f} s)")
        del engine
    out = {"task": extra["task"], "task_dir": extra.get("task_dir"), "split": extra.get("split", "test"),
           "n_shot": n_shot, "lang": lang, "model": cfg.model.model_name_or_path,
           "adapter": runs[-1][1], "results": {k: v.to_dict() for k, v in results.items()},
           "headers": mc.headers(results), "table": mc.table(results)}
    print(mc.render(results), flush=True)
    if extra.get("save_dir"):
        d = Path(str(extra["save_dir"]))
        d.mkdir(parents=True, exist_ok=True)
        (d / "results.json").write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
        log.info(f"eval: results written to {d / 'results.json'}")
    return out
