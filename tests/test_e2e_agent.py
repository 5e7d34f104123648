"""End to end on the embedded real model (SmolLM2-135M-Instruct): examples/agent_lora.yaml teaches tool calling that
carries over to tools the training set never showed, chit-chat stays a plain answer, general answers survive."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, needs_embedded

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.e2e, needs_embedded]


@pytest.fixture(scope="session")
def agent_run(tmp_path_factory, embedded_path):
    """examples/agent_lora.yaml trained once, shared by the assertions below."""
    out = tmp_path_factory.mktemp("agent") / "run"
    r = subprocess.run([sys.executable, "-m", "tuneforge", "train", str(ROOT / "examples" / "agent_lora.yaml"),
                        f"output_dir={out}", "forgetting_guard=False"],  # retention is scored below
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.fixture(scope="session")
def held():
    from tuneforge.eval.agent import AgentHeldOut

    return AgentHeldOut.load(DATA / "agent_heldout.json")


def _names_and_params(tools):
    names, params = set(), set()
    for t in tools:
        f = t.get("function", t)
        names.add(f["name"])
        params |= set(f.get("parameters", {}).get("properties", {}))
    return names, params


@pytest.mark.parametrize("which", ["agent_heldout.json", "agent_heldout_b.json"])
def test_heldout_tools_are_new(which):
    """The held-out requests (both sets) offer tool names and parameter names that appear nowhere in the training
    set, nor in the other held-out set."""
    from tuneforge.eval.agent import AgentHeldOut

    held = AgentHeldOut.load(DATA / which)
    other = AgentHeldOut.load(DATA / ({"agent_heldout.json": "agent_heldout_b.json"}.get(which, "agent_heldout.json")))
    rows = json.loads((ROOT / "src/tuneforge/data/builtin/agent_demo.json").read_text(encoding="utf-8"))
    train_names, train_params = set(), set()
    for row in rows:
        n, p = _names_and_params(json.loads(row["tools"]))
        train_names |= n
        train_params |= p
    held_names, held_params = _names_and_params([t for r in held.calls + held.chat for t in r["tools"]])
    assert len(train_names) >= 30 and not held_names & train_names
    assert not held_params & train_params, held_params & train_params
    other_names, _ = _names_and_params([t for r in other.calls + other.chat for t in r["tools"]])
    assert not held_names & other_names
    train_qs = {c["value"] for row in rows for c in row["conversations"] if c["from"] == "human"}
    assert not [r for r in held.calls + held.chat if r["question"] in train_qs]
    assert {r["lang"] for r in held.calls} == {"en", "zh"} and any(len(r["expect"]) > 1 for r in held.calls)


@pytest.fixture(scope="session")
def agent_eval(agent_run, held):
    """The tuned run and the base model asked once: the held-out tool requests, the chit-chat, the general
    questions (no tools) — shared by the assertions below."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.eval import agent
    from tuneforge.eval.identity import correct
    from tuneforge.infer.engine import ChatEngine

    summary = json.loads((agent_run / "run_summary.json").read_text())
    assert summary["completed"]
    tuned = ChatEngine("smollm2-135m-instruct", str(agent_run))
    assert tuned.fmt.name == "smollm2"  # the template trained with is saved and used again
    report = agent.evaluate(tuned, held)
    print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
    report_b = agent.evaluate(tuned, agent.AgentHeldOut.load(DATA / "agent_heldout_b.json"))
    print(json.dumps(report_b.to_dict(), indent=1, ensure_ascii=False))
    general = json.loads((DATA / "general_heldout.json").read_text(encoding="utf-8"))
    qs = [[{"role": "user", "content": g["question"]}] for g in general]
    gen = GenerateArgs(max_new_tokens=40)
    tuned_ok = [correct(a, g["answers"]) for a, g in zip(tuned.generate(qs, gen, batch_size=25), general)]
    del tuned
    base = ChatEngine("smollm2-135m-instruct", template="smollm2")
    base_ok = [correct(a, g["answers"]) for a, g in zip(base.generate(qs, gen, batch_size=25), general)]
    kept = sum(1 for b, t in zip(base_ok, tuned_ok) if b and t)
    return report, kept, sum(base_ok), report_b


def test_agent_demo_calls_new_tools_skips_chit_chat_and_keeps_general_answers(agent_eval):
    """What the recipe reaches today, calls schema-guided as chat and the API decode them (docs/benchmarks.md: 19/28
    calls, 28/31 chit-chat, 38/41 general answers kept; base model: 0 of 28 calls): a regression guard with
    some slack (other data and training seeds of the same recipe measured 18–21/28, 16–29/31, 36–38/41)."""
    report, kept, base_correct, _ = agent_eval
    assert report.call_accuracy >= 0.6, report.wrong_calls
    assert report.no_call_rate >= 0.85, report.chat_with_calls
    assert base_correct >= 30
    assert kept >= 0.87 * base_correct, (kept, base_correct)


def test_agent_demo_calls_the_second_held_out_set(agent_eval):
    """Set B (tests/data/agent_heldout_b.json: 12 more unseen tools, written after the recipe had been chosen on
    set A) is the fairer figure for tools never seen: 14/24 (58%) with this recipe, alike on this CPU and on the H200
    in float32 (docs/benchmarks.md, sweep 4); a regression guard with slack (other variants measured 9–17/24)."""
    report_b = agent_eval[3]
    assert report_b.calls_asked == 24
    assert report_b.call_accuracy >= 0.45, report_b.wrong_calls


@pytest.mark.xfail(strict=True, reason="issue #14's call target not reached yet: measured 19/28 (68%) held-out calls "
                                       "right (14/24 on set B), below 80% (chit-chat 28/31 and retention meet "
                                       "theirs; docs/benchmarks.md); strict, so it fails loudly once a better "
                                       "recipe meets it")
def test_agent_demo_meets_the_issue_targets(agent_eval):
    """The issue's targets, on both held-out call sets (each asks for tools training never showed)."""
    report, kept, base_correct, report_b = agent_eval
    assert report.call_accuracy >= 0.8 and report_b.call_accuracy >= 0.8
    assert report.no_call_rate >= 0.9 and kept >= 0.9 * base_correct
