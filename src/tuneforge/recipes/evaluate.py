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


def _predict_names(cfg: Config, after_training: bool) -> str:
    names = cfg.data.eval_dataset or (None if after_training else cfg.data.dataset)
    if not names:
        raise ConfigError(["do_predict generates for eval_dataset: give --eval_dataset NAME (rows ending with the "
                           "reference reply)" + ("" if after_training else ", or --dataset NAME")])
    return names


def predict_only(cfg: Config):
    """``do_train False, do_predict True`` (LLaMA-Factory's predict config): the model and its adapters generate
    for eval_dataset; the files go into output_dir."""
    from tuneforge.eval.predict import predict
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.recipes.common import RunResult
    from tuneforge.recipes.preflight import preflight

    preflight(cfg, for_training=False)
    names = _predict_names(cfg, False)
    if not cfg.train.output_dir:
        raise ConfigError(["do_predict writes generated_predictions.jsonl into output_dir: give --output_dir DIR"])
    result = predict(ChatEngine.from_config(cfg), cfg, cfg.train.output_dir, names,
                     cfg.train.per_device_eval_batch_size)
    return RunResult(Path(cfg.train.output_dir), result)


def predict_trained(cfg: Config, run, accelerator, model, res):
    """``do_train True, do_predict True``: the tuned model, still in memory, generates for eval_dataset; the scores
    join the run summary."""
    from tuneforge.eval.predict import predict
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.train import run_dir

    if not accelerator.is_main_process:
        return res
    engine = ChatEngine.from_loaded(accelerator.unwrap_model(model), run.tokenizer, run.fmt)
    res.summary["predict"] = predict(engine, cfg, run.out, _predict_names(cfg, True),
                                     cfg.train.per_device_eval_batch_size)
    run_dir.write_summary(run.out, res.summary)
    return res


def run_predict(cfg: Config, extra: dict, lang: str) -> dict:
    """`tuneforge eval --do_predict True --dataset D`: generation evaluation of the model (and its adapters)."""
    from tuneforge.eval.predict import predict
    from tuneforge.infer.engine import ChatEngine

    names = cfg.data.eval_dataset or cfg.data.dataset
    if not names:
        raise ConfigError(["eval --do_predict needs --dataset NAME (rows ending with the reference reply)"])
    out = Path(str(extra.get("save_dir", ".")))
    result = predict(ChatEngine.from_config(cfg), cfg, out, names, _int(extra, "batch_size", 8))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, ensure_ascii=False), flush=True)
    return result


def run_harness(cfg: Config, extra: dict, lang: str) -> dict:
    """`tuneforge eval --harness lm_eval --tasks T1,T2`: EleutherAI's lm-evaluation-harness (an optional extra,
    `pip install "lm_eval[hf]"`) on the model with its adapters merged in memory (the ChatEngine's load)."""
    if str(extra.get("harness")) != "lm_eval":
        raise ConfigError([f"--harness {extra.get('harness')!r}: the one harness wired in is lm_eval "
                           "(EleutherAI's lm-evaluation-harness)"])
    if not extra.get("tasks"):
        raise ConfigError(["--harness lm_eval needs --tasks T1,T2 (lm-eval's task names, e.g. arc_easy,hellaswag)"])
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.utils import make_table
    except ImportError as e:
        from tuneforge.errors import TuneforgeError

        raise TuneforgeError(f"--harness lm_eval needs lm-evaluation-harness ({e.name} is not installed)",
                             'pip install "lm_eval[hf]" (or use the built-in benchmarks: tuneforge eval --task '
                             'sample_en)') from None
    from tuneforge.infer.engine import ChatEngine

    engine = ChatEngine.from_config(cfg)  # adapters merged into the weights in memory; the files stay untouched
    lm = HFLM(pretrained=engine.model, tokenizer=engine.tokenizer, batch_size=_int(extra, "batch_size", 8))
    kw = {"num_fewshot": _int(extra, "n_shot", 0)} if "n_shot" in extra else {}
    if "limit" in extra:
        kw["limit"] = float(extra["limit"])
    results = lm_eval.simple_evaluate(model=lm, tasks=[t for t in str(extra["tasks"]).split(",") if t.strip()],
                                      **kw)
    print(make_table(results), flush=True)
    out = {"harness": "lm_eval", "tasks": extra["tasks"], "results": results.get("results", {})}
    if extra.get("save_dir"):
        d = Path(str(extra["save_dir"]))
        d.mkdir(parents=True, exist_ok=True)
        (d / "lm_eval_results.json").write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    return out
