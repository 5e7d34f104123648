"""Generation evaluation: BLEU-4 / ROUGE against hand-computed values, and LLaMA-Factory's do_predict on a tiny
model (alone, and after training)."""

import json
import math
import subprocess
import sys

import pytest

from tuneforge.eval import metrics


def test_bleu4_and_rouge_match_hand_computed_values():
    h, r = metrics.tokenize("The cat sat on the mat."), metrics.tokenize("the cat is on the mat.")
    assert h == ["the", "cat", "sat", "on", "the", "mat", "."]
    h, r = h[:-1], r[:-1]
    # p1 5/6, p2 3/5, p3 1/4, p4 0/3 → method3 1/(2·3); equal lengths: no brevity penalty
    assert metrics.bleu4(h, r) == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    assert metrics.rouge_n(h, r, 1) == pytest.approx(5 / 6) and metrics.rouge_n(h, r, 2) == pytest.approx(0.6)
    assert metrics.rouge_l(h, r) == pytest.approx(5 / 6)  # LCS "the cat on the mat"
    short = ["the", "cat"]  # brevity penalty e^(1 − 6/2); p3, p4 have no n-grams: 1/2 and 1/4
    assert metrics.bleu4(short, r) == pytest.approx(math.exp(-2) * (1 * 1 * 0.5 * 0.25) ** 0.25)
    assert metrics.bleu4(h, h) == pytest.approx(1.0) and metrics.bleu4(["x"], r) == 0.0


def test_chinese_is_scored_by_characters_without_jieba():
    h, r = metrics.tokenize("我爱北京", use_jieba=False), metrics.tokenize("我爱上海", use_jieba=False)
    assert h == ["我", "爱", "北", "京"]
    assert metrics.rouge_n(h, r, 1) == pytest.approx(0.5) and metrics.rouge_n(h, r, 2) == pytest.approx(1 / 3)
    s = metrics.scores(["我爱北京", "same words here ok"], ["我爱上海", "same words here ok"], use_jieba=False)
    assert s["rouge-1"] == pytest.approx(100 * (0.5 + 1) / 2, abs=1e-3) and set(s) == {"bleu-4", "rouge-1",
                                                                                      "rouge-2", "rouge-l"}


def _check_outputs(out, n_rows):
    rows = [json.loads(x) for x in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == n_rows and all(set(r) == {"prompt", "predict", "label"} for r in rows)
    res = json.loads((out / "predict_results.json").read_text())
    again = metrics.scores([r["predict"] for r in rows], [r["label"] for r in rows])
    assert {k: res[f"predict_{k}"] for k in again} == again and res["predict_samples"] == n_rows
    return rows, res


def test_lf_predict_config_and_predict_after_training(tiny_model, data_dir, tmp_path):
    from tuneforge.config import build_config
    from tuneforge.recipes import run

    n = len(json.loads((data_dir / "alpaca.json").read_text()))
    base = dict(model_name_or_path=str(tiny_model), dataset_dir=str(data_dir), template="chatml",
                max_new_tokens=8, forgetting_guard=False)
    only = run(build_config({**base, "do_train": False, "do_predict": True, "predict_with_generate": True,
                             "eval_dataset": "alpaca_demo", "output_dir": str(tmp_path / "p")}))
    rows, _ = _check_outputs(tmp_path / "p", n)
    assert only.summary["rows"]["used"] == n and rows[0]["label"]
    trained = run(build_config({**base, "dataset": "alpaca_demo", "eval_dataset": "alpaca_demo", "do_predict": True,
                                "max_steps": 1, "save_steps": 0, "output_dir": str(tmp_path / "t")}))
    _check_outputs(tmp_path / "t", n)
    assert trained.summary["predict"]["predict_samples"] == n
    assert json.loads((tmp_path / "t" / "run_summary.json").read_text())["predict"]["predict_samples"] == n


def test_eval_command_do_predict(tiny_model, data_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tuneforge", "eval", "--do_predict", "True", "--model_name_or_path",
                        str(tiny_model), "--template", "chatml", "--dataset", "alpaca_demo", "--dataset_dir",
                        str(data_dir), "--max_new_tokens", "6", "--save_dir", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "predict_bleu-4" in r.stdout
    _check_outputs(tmp_path / "o", len(json.loads((data_dir / "alpaca.json").read_text())))
