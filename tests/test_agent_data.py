"""scripts/make_agent_data.py: the committed agent files are what it writes, and its data knobs do what they say."""

import json
import sys
from pathlib import Path

from conftest import DATA

ROOT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(ROOT / "scripts"))
import make_agent_data as m  # noqa: E402


def _calls(rows):
    return [r for r in rows if any(t["from"] == "function_call" for t in r["conversations"])]


def _tool_names(rows):
    return {t["name"] for r in rows for t in json.loads(r["tools"])}


def test_the_committed_files_are_what_the_script_writes():
    train = json.loads((ROOT / "src/tuneforge/data/builtin/agent_demo.json").read_text(encoding="utf-8"))
    assert m.make_train() == train
    assert m.make_heldout() == json.loads((DATA / "agent_heldout.json").read_text(encoding="utf-8"))
    assert m.make_heldout_b() == json.loads((DATA / "agent_heldout_b.json").read_text(encoding="utf-8"))


def test_n_zh_adds_that_many_one_call_rows_asked_in_chinese():
    base, more = m.make_train(), m.make_train(n_zh=20)
    zh = [r for r in _calls(more) if m.has_zh(r["conversations"][0]["value"])]
    zh_base = [r for r in _calls(base) if m.has_zh(r["conversations"][0]["value"])]
    assert len(more) == len(base) + 20
    # the one-call rows before them are drawn alike; only the 12 parallel rows after them may change language
    assert len(zh) >= len(zh_base) + 20 - 12
    domains = m.zh_domains(m.DOMAINS + m.MORE)
    assert m.blinds not in domains and m.weather in domains  # blinds has no Chinese requests
    r = __import__("random").Random(0)
    for d in domains:  # every such domain's rows come out in Chinese
        row = m.zh_tool_row(r, d, [x for x in domains if x is not d], True)
        assert m.has_zh(row["conversations"][0]["value"]), d.__name__


def test_extra_adds_fifteen_domains_disjoint_from_both_held_out_sets():
    rows = m.make_train(n_single=208, extra=True)
    names = _tool_names(rows)
    assert len(m.EXTRA) == 15 and len(names) > len(_tool_names(m.make_train()))
    for f in ("agent_heldout.json", "agent_heldout_b.json"):
        held = json.loads((DATA / f).read_text(encoding="utf-8"))
        held_names = {t["name"] for r in held["calls"] + held["chat"] for t in r["tools"]}
        held_params = {p for r in held["calls"] + held["chat"] for t in r["tools"] for p in t["parameters"]["properties"]}
        params = {p for r in rows for t in json.loads(r["tools"]) for p in t["parameters"]["properties"]}
        assert not names & held_names and not params & held_params, (names & held_names, params & held_params)
