"""The multiple-choice scorer on a tiny hand-made benchmark whose answers a fixed tiny model's log-probabilities
determine: each question is scored alone here (no padding), the answers are set from those scores (some right,
some deliberately wrong), and the batched, left-padded scorer must reproduce exactly that accuracy."""

import json
import subprocess
import sys

import pytest

from tuneforge.errors import DataError
from tuneforge.eval import mc


def _write(folder, split, subject, rows):
    d = folder / split
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{subject}_{split}.csv").write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")


QUESTIONS = [("Pick the colour of grass", ["red", "green", "blue", "black"]),
             ("Which is a number", ["seven", "tree", "cloud", "sand"]),
             ("A very long question about something that goes on and on to make this prompt longer than the others",
              ["one", "two", "three", "four"]),
             ("Short", ["w", "x", "y", "z"]),
             ("Which animal barks", ["cat", "dog", "fish", "owl"])]


def test_scorer_reproduces_the_answers_the_log_probs_determine(tiny_model, tmp_path):
    import torch

    from tuneforge.infer.engine import ChatEngine

    engine = ChatEngine(str(tiny_model), template="chatml")
    dev = [["1 + 1", "2", "3", "4", "5", "A"]]
    subj = mc.Subject("toy", [mc.Question(q, c, "A") for q, c in QUESTIONS], [mc.Question(*r[:1], r[1:5], "A")
                                                                               for r in dev])
    ids = mc.letter_ids(engine.tokenizer, 4)
    assert len(set(ids)) == 4
    best = []
    for q in subj.test:  # one at a time, unpadded: the reference
        enc = engine.tokenizer(engine.prompt_text([{"role": "user", "content": mc.prompt(subj, q, 1, "en")}]),
                               return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            logp = torch.log_softmax(engine.model(**enc).logits[0, -1].float(), -1)
        best.append("ABCD"[int(torch.argmax(logp[ids]))])
    # answers: the model's pick for the first three, another letter for the last two → 3/5 exactly
    answers = best[:3] + ["ABCD"[("ABCD".index(b) + 1) % 4] for b in best[3:]]
    task = tmp_path / "tasks" / "toy_bench"
    _write(task, "dev", "toy", dev)
    _write(task, "test", "toy", [[q, *c, a] for (q, c), a in zip(QUESTIONS, answers)])
    _write(task, "test", "toy2", [[q, *c, b] for (q, c), b in zip(QUESTIONS[:2], best[:2])])
    _write(task, "dev", "toy2", dev)
    subjects = mc.load_task("toy_bench", str(tmp_path / "tasks"))
    assert [s.name for s in subjects] == ["toy", "toy2"] and subjects[0].dev[0].answer == "A"
    res = mc.evaluate(engine, subjects, n_shot=1, lang="en", batch_size=3)  # batches mix prompt lengths
    assert res.subjects["toy"] == {"correct": 3, "total": 5, "accuracy": 0.6}
    assert res.subjects["toy2"] == {"correct": 2, "total": 2, "accuracy": 1.0}
    assert (res.correct, res.total) == (5, 7)
    rows = mc.table({"base": res, "tuned": res})
    assert rows[-1] == ["overall", round(100 * 5 / 7, 1), round(100 * 5 / 7, 1), 0.0]


def test_layouts_mmlu_ceval_json_and_errors(tmp_path):
    t = tmp_path / "t" / "bench" / "test"
    t.mkdir(parents=True)
    (t / "a_test.csv").write_text("Q1,x,y,z,w,B\n", encoding="utf-8")  # MMLU: no header
    (t / "b_test.csv").write_text("id,question,A,B,C,D,answer\n0,Q2,x,y,z,w,D\n", encoding="utf-8")  # C-Eval
    (t / "c_test.json").write_text(json.dumps([{"question": "Q3", "choices": ["x", "y"], "answer": 1}]))
    subs = {s.name: s for s in mc.load_task("bench", str(tmp_path / "t"))}
    assert subs["a"].test[0].answer == "B" and subs["b"].test[0].answer == "D" and subs["c"].test[0].answer == "B"
    assert subs["c"].test[0].choices == ["x", "y"] and subs["a"].dev == []
    (t / "a_test.csv").write_text("Q1,x,y,z,w,E\n", encoding="utf-8")
    with pytest.raises(DataError, match="not one of A, B, C, D"):
        mc.load_task("bench", str(tmp_path / "t"))
    with pytest.raises(DataError, match="no task 'nope'") as e:
        mc.load_task("nope", str(tmp_path / "t"))
    assert "bench" in e.value.hint
    built_in = mc.load_task("sample_en")
    assert len(built_in) == 3 and all(len(s.dev) >= 3 and len(s.test) >= 5 for s in built_in)
    assert len(mc.load_task("sample_zh")) == 2


def test_eval_command_on_the_tiny_model(tiny_model, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tuneforge", "eval", "--task", "sample_en", "--model_name_or_path",
                        str(tiny_model), "--template", "chatml", "--n_shot", "1", "--save_dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "overall" in r.stdout and "elementary_math" in r.stdout
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["results"]["model"]["total"] == 18 and out["n_shot"] == 1
    r = subprocess.run([sys.executable, "-m", "tuneforge", "eval", "--task", "sample_en", "--model_name_or_path",
                        str(tiny_model), "--compare_base", "True"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--adapter_name_or_path" in r.stderr and "Traceback" not in r.stderr


def test_web_ui_benchmark_shows_the_cli_table(tiny_model, tmp_path):
    """The Evaluate tab's benchmark runs eval/mc.py on the loaded models and shows the table `tuneforge eval`
    prints (base, tuned, difference); a benchmark folder outside the web UI's root is refused."""
    from tuneforge.errors import TuneforgeError
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.webui import actions
    from tuneforge.webui.runner import RunManager

    ctx = actions.Context(tmp_path, RunManager(tmp_path))
    ctx.chat.tuned = ChatEngine(str(tiny_model), template="chatml")
    ctx.chat.base = ChatEngine(str(tiny_model), template="chatml")
    headers, rows, msg = ctx.chat.benchmark(ctx, "sample_en", "", 1, "en")
    subjects = mc.load_task("sample_en")
    ref = mc.evaluate(ctx.chat.tuned, subjects, 1, "en")
    assert headers == ["subject", "base %", "tuned %", "tuned − base"]
    assert rows == mc.table({"base": ref, "tuned": ref}) and rows[-1][0] == "overall"
    assert f"{ref.correct}/{ref.total}" in str(msg)
    with pytest.raises(TuneforgeError):
        ctx.chat.benchmark(ctx, "sample_en", "/etc", 1, "en")


def test_harness_lm_eval(tiny_model, tmp_path):
    """--harness lm_eval: without the package a clean error that says how to install it; with it, a real run."""
    import importlib.util

    args = [sys.executable, "-m", "tuneforge", "eval", "--harness", "lm_eval", "--tasks", "arc_easy", "--limit", "4",
            "--model_name_or_path", str(tiny_model), "--template", "chatml", "--save_dir", str(tmp_path)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if importlib.util.find_spec("lm_eval") is None:
        assert r.returncode == 2 and 'pip install "lm_eval[hf]"' in r.stderr and "Traceback" not in r.stderr
        pytest.skip("lm-evaluation-harness is not installed: only its absence is checked")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "arc_easy" in json.loads((tmp_path / "lm_eval_results.json").read_text())["results"]
