"""The shared identity scorer (tuneforge.eval.identity): hit rate and retention from any answerer."""

from conftest import DATA

from tuneforge.eval.identity import HeldOut, evaluate


def test_evaluate_scores_hits_and_retention_from_any_answerer():
    held = HeldOut(identity=[{"question": "Who are you?", "lang": "en"}, {"question": "你是谁？", "lang": "zh"}],
                   general=[{"question": "Capital of France?", "answers": ["Paris"]},
                            {"question": "2+2?", "answers": ["4", "four"]},
                            {"question": "Largest ocean?", "answers": ["Pacific"]}])
    base = ["It is Paris.", "Four.", "The Atlantic."]  # the base gets the first two right
    replies = {"Who are you?": "I am nimbus.", "你是谁？": "我是一个助手。", "Capital of France?": "Paris!",
               "2+2?": "5", "Largest ocean?": "Pacific"}
    asked = []

    def answer(qs):
        asked.extend(qs)
        return [replies[q] for q in qs]

    rep = evaluate(answer, "Nimbus", held, base)
    assert (rep.hits, rep.asked, rep.hit_rate) == (1, 2, 0.5)
    assert rep.misses == [{"question": "你是谁？", "reply": "我是一个助手。"}]
    assert (rep.kept, rep.base_correct, rep.retention) == (1, 2, 0.5)  # the third was never right: not counted
    assert [f["question"] for f in rep.forgotten] == ["2+2?"]
    assert "hit 1/2 (50.0%), retention 1/2 (50.0%)" == rep.line()
    # Without the base replies only identity questions are asked.
    asked.clear()
    rep = evaluate(answer, "Nimbus", held)
    assert rep.retention is None and asked == ["Who are you?", "你是谁？"]


def test_heldout_sets_load():
    held = HeldOut.load(DATA)
    assert len(held.identity) == 45 and len(held.general) == 50
    assert all(g["answers"] for g in held.general)
