"""The forgetting guard's pieces: the probes and their rule, retention, the base answers' cache, the warning, and the
replay pool (disjoint from the probes). The end-to-end numbers on the identity demo are in test_e2e_identity.py."""

import json
import re

import pytest

from tuneforge.errors import DataError
from tuneforge.eval import guard, probes, replay


def test_answer_rule_matches_whole_words_and_chinese_anywhere():
    assert probes.contains("2 + 2 = 4.", "4") and not probes.contains("It is 14.", "4")
    assert probes.contains("The Earth orbits the Sun.", "sun") and not probes.contains("on Sunday", "Sun")
    assert probes.contains("答案是巴黎。", "巴黎") and probes.contains("twenty-six letters", "twenty-six")
    p = probes.Probe("Write 'cat' in capitals.", ("CAT",), case=True)
    assert p.ok("CAT") and not p.ok("cat")


def test_builtin_probes_cover_english_chinese_facts_arithmetic_instructions():
    ps = probes.load()
    assert ps.source == "built-in" and len(ps.probes) >= 40
    assert {p.lang for p in ps.probes} == {"en", "zh"}
    assert {p.kind for p in ps.probes} == {"fact", "arithmetic", "instruction"}
    assert len(set(ps.questions)) == len(ps.questions)


def _norm(q: str) -> str:
    return re.sub(r"\W+", " ", q.lower()).strip()


def test_replay_pool_and_probes_do_not_overlap():
    pool = {_norm(p) for p in replay.builtin_pool()}
    assert len(pool) >= 50
    assert not [q for q in probes.load().questions if _norm(q) in pool]
    # nor the same fact asked in other words (the pairs removed from the probes when the pool was checked)
    text = " ".join(replay.builtin_pool()).lower()
    for topic in ("boiling point of water in celsius", "hardest natural substance", "英国的首都", "日本的首都"):
        assert topic not in text


def test_user_probe_file_jsonl_and_its_errors(tmp_path):
    f = tmp_path / "probes.jsonl"
    f.write_text('{"question": "What is 2 + 2?", "answers": ["4"]}\n\n{"question": "Capital of Peru?", '
                 '"answer": "Lima"}\n', encoding="utf-8")
    ps = probes.load(f)
    assert ps.questions == ["What is 2 + 2?", "Capital of Peru?"] and ps.probes[1].answers == ("Lima",)
    assert ps.digest != probes.load().digest
    f.write_text('{"question": "What is 2 + 2?"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="no accepted answers") as e:
        probes.load(f)
    assert "answers" in e.value.hint
    f.write_text('{"question": "x", "answers": ["y"]}\nnot json\n', encoding="utf-8")
    assert "line 2" in probes.check(str(f))
    assert "no file" in probes.check(str(tmp_path / "missing.jsonl"))


def test_retention_counts_only_what_the_base_got_right():
    ps = probes.ProbeSet([probes.Probe("a", ("x",)), probes.Probe("b", ("y",)), probes.Probe("c", ("z",)),
                          probes.Probe("d", ("w",))], "t")
    r = probes.retention(ps, ["x", "y", "nope", "w"], ["x", "lost", "z", "w"])
    assert (r.base_correct, r.kept, r.gained, r.total) == (3, 2, 1, 4)
    assert r.retention == pytest.approx(2 / 3) and r.lost == [{"question": "b", "base": "y", "tuned": "lost"}]


def test_warning_below_threshold_names_the_settings():
    ps = probes.ProbeSet([probes.Probe("a", ("x",)), probes.Probe("b", ("y",))], "t")
    base = guard.BaseAnswers(ps, ["x", "y"], True, 0.0, "k")
    low = guard.report(probes.retention(ps, ["x", "y"], ["x", "no"]), base, 1.0, 0.9, 20, 1e-2, 0.0)
    assert low["below_threshold"] and low["retention"] == 0.5 and low["lost"][0]["question"] == "b"
    for word in ("num_train_epochs (now 20)", "learning_rate (now 0.01)", "replay_ratio", "forgetting_guard False"):
        assert word in low["warning"]
    ok = guard.report(probes.retention(ps, ["x", "y"], ["x", "y"]), base, 1.0, 0.9, 2, 1e-3, 0.5)
    assert not ok["below_threshold"] and ok["warning"] is None and ok["retention"] == 1.0


def test_base_answers_cached_per_model_and_template(tiny_model, monkeypatch, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.data import templates

    monkeypatch.setattr(guard, "cache_dir", lambda: tmp_path / "cache")
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    fmt = templates.install(tok, "chatml")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    calls = []
    real_ask = guard.ask
    monkeypatch.setattr(guard, "ask", lambda *a, **k: calls.append(1) or real_ask(*a, **k))
    first = guard.base_answers(model, tok, fmt, tiny_model, None, {"dtype": "float32"})
    again = guard.base_answers(model, tok, fmt, tiny_model, None, {"dtype": "float32"})
    assert not first.cached and again.cached and again.replies == first.replies and len(calls) == 1
    assert len(first.replies) == len(probes.load().probes)
    other = guard.base_answers(model, tok, templates.install(tok, "llama3"), tiny_model, None, {"dtype": "float32"})
    assert not other.cached and other.key != first.key and len(calls) == 2  # another template: asked again
    cached = json.loads((tmp_path / "cache" / f"{first.key}.json").read_text())
    assert cached["questions"] == probes.load().questions
    # another model file (same names, a changed weight) gets another key
    (tiny_model / "config.json").write_text((tiny_model / "config.json").read_text() + " ")
    try:
        assert guard.model_key(tiny_model, "t", {}) != first.key
    finally:
        (tiny_model / "config.json").write_text((tiny_model / "config.json").read_text()[:-1])


def test_replay_trim_and_pool_file(tmp_path):
    assert replay.trim("Paris is the capital. It has") == "Paris is the capital."
    assert replay.trim("no sentence end") == "" and replay.trim("Done!") == "Done!"
    f = tmp_path / "pool.jsonl"
    f.write_text('{"instruction": "Say hi"}\n"Name a fruit."\n', encoding="utf-8")
    assert replay.load_pool(str(f)) == ["Say hi", "Name a fruit."]
    f.write_text('[{"nope": 1}]', encoding="utf-8")
    with pytest.raises(DataError, match="not a prompt"):
        replay.load_pool(str(f))


def _tiny_cfg(tiny_model, data_dir, out, **kw):
    from tuneforge.config import build_config

    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=2, learning_rate=1e-2, max_steps=1,
                save_steps=0, template="chatml", seed=7)
    return build_config({**base, **kw})


def test_guard_runs_by_default_and_turns_off(tiny_model, data_dir, tmp_path, monkeypatch):
    from tuneforge.recipes import run

    monkeypatch.setattr(guard, "cache_dir", lambda: tmp_path / "cache")
    on = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "on")).summary
    f = on["forgetting_guard"]
    assert f["probes"] == len(probes.load().probes) and f["probe_set"] == "built-in" and not f["base_cached"]
    saved = json.loads((tmp_path / "on" / "run_summary.json").read_text())
    assert saved["forgetting_guard"]["probes"] == f["probes"]
    again = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "again")).summary["forgetting_guard"]
    assert again["base_cached"]  # the second run on this base pays only for the tuned side
    off = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "off", forgetting_guard=False)).summary
    assert "forgetting_guard" not in off
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"question": "Say a", "answers": ["a"]}\n', encoding="utf-8")
    own = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "own", forgetting_probes=str(mine))).summary
    assert own["forgetting_guard"]["probes"] == 1 and own["forgetting_guard"]["probe_set"] == str(mine)


def test_a_model_that_cannot_generate_trains_anyway_with_the_guard_skipped(tiny_model, data_dir, tmp_path,
                                                                         monkeypatch):
    """The guard watches the run; it never fails it (bitsandbytes' CPU 4-bit generation cannot run a tiny random
    model's 16-wide layers, while its training can): a warning, the model trained and saved, no retention claimed."""
    from tuneforge.recipes import run

    monkeypatch.setattr(guard, "cache_dir", lambda: tmp_path / "cache")

    def broken(*a, **k):
        raise RuntimeError("shape '[32, 0]' is invalid for input of size 16")

    monkeypatch.setattr(guard, "ask", broken)
    warned = []
    monkeypatch.setattr(guard.log, "warn", warned.append)
    res = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "o"))
    assert res.summary["completed"] and "forgetting_guard" not in res.summary
    assert (tmp_path / "o" / "adapter_model.safetensors").is_file()
    assert [w for w in warned if "forgetting guard skipped: the base model could not answer its probes "
                                 "(RuntimeError: shape" in w]


def test_bad_guard_settings_fail_before_loading(tiny_model, data_dir, tmp_path):
    from tuneforge.errors import ConfigError
    from tuneforge.recipes import run

    with pytest.raises(ConfigError) as e:
        run(_tiny_cfg(tiny_model, data_dir, tmp_path / "x", forgetting_threshold=1.5, replay_ratio=-1,
                      forgetting_probes=str(tmp_path / "none.jsonl")))
    text = str(e.value)
    assert "forgetting_threshold must be a share in [0, 1]" in text and "replay_ratio must be ≥ 0" in text
    assert "forgetting_probes: no file" in text
    with pytest.raises(ConfigError, match="stage sft only"):
        run(_tiny_cfg(tiny_model, data_dir, tmp_path / "y", stage="pt", replay_ratio=0.5))


def test_replay_mixes_the_base_models_own_answers(tiny_model, data_dir, tmp_path, monkeypatch):
    from tuneforge.recipes import run

    monkeypatch.setattr(guard, "cache_dir", lambda: tmp_path / "cache")
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([f"Question number {i}?" for i in range(30)]), encoding="utf-8")
    monkeypatch.setattr(replay, "trim", lambda r: r.strip() or "x.")  # a random tiny model ends no sentence
    plain = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "plain", forgetting_guard=False)).summary
    res = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "r", replay_ratio=0.5, replay_prompts=str(pool),
                        forgetting_guard=False)).summary
    rep = res["data"]["replay"]
    rows = plain["data"]["train"]["samples"]
    assert rep["wanted"] == round(0.5 * rows) and rep["mixed"] == rep["wanted"] and not rep["cached"]
    assert res["data"]["train"]["samples"] == rows  # the report's train counts stay the task data's
    again = run(_tiny_cfg(tiny_model, data_dir, tmp_path / "r2", replay_ratio=0.5, replay_prompts=str(pool),
                          forgetting_guard=False)).summary["data"]["replay"]
    assert again["cached"] and again["mixed"] == rep["mixed"]
    cached = json.loads(next((tmp_path / "cache").glob("replay-*.json")).read_text())
    assert cached["prompts"] == [f"Question number {i}?" for i in range(30)]


def test_web_ui_progress_shows_retention_and_the_warning():
    from tuneforge.webui.render import progress_html
    from tuneforge.webui.runner import Status

    f = {"retention": 0.5, "kept": 1, "base_correct": 2, "below_threshold": True, "warning": "try fewer epochs",
         "lost": [{"question": "What is 2 + 2?", "base": "4", "tuned": "Nimbus"}]}
    html = progress_html(Status("finished", step=3, total=3, forgetting=f), "en")
    assert "general answers kept 1/2 (50.0%)" in html and "try fewer epochs" in html and "What is 2 + 2?" in html
    assert "通用问题保持 1/2（50.0%）" in progress_html(Status("finished", forgetting=f), "zh")
    ok = progress_html(Status("finished", forgetting={**f, "below_threshold": False, "retention": 1.0, "kept": 2}),
                       "en")
    assert "2/2 (100.0%)" in ok and "tf-forgetting-warning" not in ok
