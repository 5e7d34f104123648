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
