"""Generation evaluation (LLaMA-Factory's ``do_predict`` / ``predict_with_generate``): each row's conversation up to
its last reply is the prompt, that reply the reference; the model generates (the run's generation settings, greedy
by default, batched), and ``generated_predictions.jsonl`` ({prompt, predict, label} per row, LF's names) and
``predict_results.json`` (BLEU-4, ROUGE-1/2/L, eval/metrics.py) are written."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tuneforge.errors import DataError
from tuneforge.eval import metrics
from tuneforge.utils import log


def prompts_and_references(cfg, names: str) -> tuple[list[list[dict]], list[str], dict]:
    """(prompt conversations, references, counts) of the datasets ``names``; rows whose last turn is not an
    assistant reply have no reference and are counted as skipped."""
    from tuneforge.data.build import read_dataset
    from tuneforge.data.catalog import load_catalog, lookup, split_names
    from tuneforge.utils.hub import HubOptions

    catalog = load_catalog(cfg.data.dataset_dir)
    convs, refs, counts = [], [], {"read": 0, "used": 0, "no_reference": 0}
    for name in split_names(names):
        entry = lookup(catalog, name, cfg.data.dataset_dir)
        if entry is None:
            raise DataError(f"do_predict: no dataset {name!r}", f"known: {', '.join(sorted(catalog))}")
        items, c = read_dataset(entry, cfg.data, "sft", HubOptions.from_model_args(cfg.model))
        counts["read"] += c["read"]
        for conv in items:
            msgs = conv.to_hf()
            if not msgs or msgs[-1]["role"] != "assistant":
                counts["no_reference"] += 1
                continue
            convs.append(msgs[:-1])
            refs.append(msgs[-1]["content"])
    counts["used"] = len(convs)
    if counts["no_reference"]:
        log.warn(f"do_predict: {counts['no_reference']} row(s) end without an assistant reply (no reference): "
                 "skipped")
    return convs, refs, counts


def predict(engine, cfg, out_dir: str | Path, names: str, batch_size: int = 8) -> dict:
    """Generate for every prompt of ``names``, write the predictions and the scores into ``out_dir``."""
    t0 = time.time()
    convs, refs, counts = prompts_and_references(cfg, names)
    if not convs:
        raise DataError(f"do_predict: the dataset(s) {names} hold no rows with a reference reply",
                        "give eval_dataset (or dataset) rows that end with the assistant's answer")
    preds = engine.generate(convs, cfg.generate, None, batch_size=batch_size)  # each row keeps its own system
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "generated_predictions.jsonl").open("w", encoding="utf-8") as f:
        for c, p, r in zip(convs, preds, refs):
            f.write(json.dumps({"prompt": engine.prompt_text(c), "predict": p, "label": r}, ensure_ascii=False)
                    + "\n")
    result = {**{f"predict_{k}": v for k, v in metrics.scores(preds, refs).items()},
              "predict_samples": len(preds), "predict_seconds": round(time.time() - t0, 2), "rows": counts,
              "segmentation": "jieba" if metrics._jieba() else "characters (Chinese), words (other text)"}
    (out / "predict_results.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    log.info("do_predict: " + " · ".join(f"{k[8:]} {v:.2f}" for k, v in result.items()
                                         if k.startswith("predict_") and k[8:] in ("bleu-4", "rouge-1", "rouge-2",
                                                                                  "rouge-l"))
             + f" on {len(preds)} rows; {out / 'generated_predictions.jsonl'}")
    return result
