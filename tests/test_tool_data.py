"""Tool data end to end: LLaMA-Factory sharegpt (function_call / observation / tools) and OpenAI messages load,
render the way each family's own chat template renders them (apply_chat_template(..., tools=...)), train exactly
the assistant turns (tool-call text included, observations never), and bad tool rows are refused with file, line
and fix before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import DATA
from tuneforge.config import build_config
from tuneforge.data import templates
from tuneforge.data.build import build_data
from tuneforge.data.encode import IGNORE, EncodeStats, encode_conversation
from tuneforge.errors import DataError
from tuneforge.infer.tools import detect_format, parse_tool_calls

TOOLS_DIR = DATA / "tools"
OFFICIAL = DATA / "chat_templates"


def build(tok, **kw):
    cfg = build_config(kw)
    fmt = templates.install(tok, cfg.data.template)
    return build_data(cfg.data, "sft", tok, fmt, seed=0), fmt


def convs(tok, dataset, template="chatml", d=TOOLS_DIR):
    """The converted conversations of a fixture dataset (rows in file order)."""
    from tuneforge.data.catalog import load_catalog
    from tuneforge.data.convert import to_conversation
    from tuneforge.data.readers import read_rows

    entry = load_catalog(str(d))[dataset]
    return [to_conversation(entry, row) for _, row in read_rows(entry.path)]


@pytest.fixture()
def tok(tiny_model):
    """A tokenizer of its own, as saved on disk: the session's shared one may carry a template an earlier test
    installed (templates.install sets chat_template), and with template=auto that template would be used."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def test_lf_glaive_demo_files_load_unchanged(tok):
    en = convs(tok, "glaive_toolcall_en_demo")
    assert [m.role for m in en[1].messages] == ["user", "assistant", "tool", "assistant"] * 2
    call = en[1].messages[1].tool_calls[0]
    assert (call.name, call.arguments) == ("calculate_area", {"shape": "rectangle", "dimensions": [5, 3]})
    assert [t["function"]["name"] for t in en[1].tools] == ["calculate_area", "calculate_tip"]
    assert en[0].tools == [] and en[1].messages[2].name == "calculate_area"  # result linked to the call it answers
    zh = convs(tok, "glaive_toolcall_zh_demo")
    assert zh[0].messages[1].tool_calls[0].arguments == {"bill": 80, "percent": 15}
    b, _ = build(tok, dataset="glaive_toolcall_en_demo,glaive_toolcall_zh_demo", dataset_dir=str(TOOLS_DIR),
                 template="chatml")
    assert b.report["rows_read"] == 5 and len(b.train) == 5


def test_openai_messages_parallel_calls_ids_and_multi_turn(tok):
    rows = convs(tok, "openai_tools")
    calls = rows[0].messages[1].tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("a1b2c3d4e", "get_weather", {"city": "Oslo"}), ("f5g6h7i8j", "get_time", {"tz": "Asia/Tokyo"})]
    results = rows[0].messages[2:4]
    assert [(m.tool_call_id, m.name) for m in results] == [("a1b2c3d4e", "get_weather"), ("f5g6h7i8j", "get_time")]
    assert rows[0].system == "You are a concise assistant."


def _supervised(tok, sample) -> str:
    """The trained text of a sample: trained token runs joined with '|'."""
    runs, cur = [], []
    for t, lab in zip(sample.input_ids, sample.labels):
        if lab != IGNORE:
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return "|".join(runs)


def _check_against_own_template(tok, conv, fmt):
    """Our render of ``conv`` is the tokenizer's own apply_chat_template(..., tools=...); the trained text is exactly
    the assistant turns (every call's name and arguments in it), and no observation is trained."""
    msgs = conv.to_hf()
    own = tok.apply_chat_template(msgs, tools=conv.tools or None, tokenize=False)
    sample = encode_conversation(fmt, tok, conv, 4096, EncodeStats())
    assert tok.decode(sample.input_ids) == own
    assert sample.input_ids == tok(own, add_special_tokens=False)["input_ids"]
    trained = _supervised(tok, sample)
    for m in conv.messages:
        if m.role == "assistant":
            assert m.content.strip() in trained
            for c in m.tool_calls:
                assert c.name in trained and all(json.dumps(v) in trained or str(v) in trained
                                                  for v in c.arguments.values())
        elif m.role == "tool":
            assert m.content not in trained
        elif m.role == "user":
            assert m.content not in trained
    return own, trained


@pytest.mark.parametrize("official, parser", [
    ("qwen2.5-instruct.jinja", "hermes"),
    ("hermes-2-pro-tool-use.jinja", "hermes"),
    ("llama-3.1-instruct-tools.jinja", "llama3"),
    ("mistral-7b-instruct-v0.3-tools.jinja", "mistral"),
])
def test_tool_rows_render_as_the_family_template_and_train_only_assistant_turns(tok, official, parser):
    tok.chat_template = (OFFICIAL / official).read_text()
    fmt = templates.install(tok, "auto")
    assert detect_format(tok.chat_template) == parser
    rows = convs(tok, "glaive_toolcall_en_demo")[1:2] + convs(tok, "glaive_toolcall_zh_demo")[:1]
    if parser != "llama3":  # Llama 3.1's template supports one call per turn only
        rows += convs(tok, "openai_tools")[:1]
    for conv in rows:
        if parser == "mistral" and (conv.system or sum(m.role == "user" for m in conv.messages) > 1):
            continue  # Mistral's own template puts tools and system text in the LAST user turn: not prefix-stable
        own, trained = _check_against_own_template(tok, conv, fmt)
        # what was trained, read back by the family's parser, is the row's calls
        first_call = next(m for m in conv.messages if m.tool_calls)
        prompt = fmt.render(tok, conv.to_hf(conv.messages.index(first_call)), conv.tools, add_generation_prompt=True)
        reply = own[len(prompt):]
        parsed = parse_tool_calls(reply.split(tok.eos_token)[0] if parser == "mistral" else reply, parser)
        assert [(c.name, c.arguments) for c in parsed.calls][:1] == [(c.name, c.arguments)
                                                                      for c in first_call.tool_calls][:1]


@pytest.mark.parametrize("name", ["chatml", "qwen", "llama3", "mistral", "glm4", "smollm2", "default"])
def test_named_templates_render_tools_and_train_calls(tok, name):
    fmt = templates.install(tok, name)
    for conv in convs(tok, "glaive_toolcall_en_demo")[1:2] + convs(tok, "openai_tools")[:1]:
        sample = encode_conversation(fmt, tok, conv, 4096, EncodeStats())
        text, trained = tok.decode(sample.input_ids), _supervised(tok, sample)
        assert "get_weather" in text or "calculate_area" in text
        for m in conv.messages:
            for c in m.tool_calls:
                assert c.name in trained
            if m.role == "tool":
                assert m.content not in trained


def test_template_without_tools_is_refused(tok, tmp_path):
    with pytest.raises(DataError, match="does not render tools") as e:
        build(tok, dataset="glaive_toolcall_en_demo", dataset_dir=str(TOOLS_DIR), template="auto")
    assert "--template chatml" in e.value.hint and "glaive_toolcall_en_demo.json:" in str(e.value)


def _bad(tmp_path, rows, fmt="sharegpt"):
    shutil.copy(TOOLS_DIR / "dataset_info.json", tmp_path / "dataset_info.json")
    name = "glaive_toolcall_en_demo" if fmt == "sharegpt" else "openai_tools"
    (tmp_path / f"{name}.json").write_text(json.dumps(rows, indent=2))
    return name


CALC = json.dumps([{"name": "calculate_area", "parameters": {"type": "object", "properties": {}}}])


@pytest.mark.parametrize("turns, needle", [
    ([{"from": "human", "value": "x"}, {"from": "function_call", "value": '{"name": "calc_area", "arguments": {}}'},
      {"from": "observation", "value": "1"}, {"from": "gpt", "value": "y"}],
     "calls tool 'calc_area', which is not in this row's tools (calculate_area)"),
    ([{"from": "human", "value": "x"}, {"from": "function_call",
                                         "value": '{"name": "calculate_area", "arguments": "{shape: 1}"}'},
      {"from": "observation", "value": "1"}, {"from": "gpt", "value": "y"}],
     "arguments of tool call 'calculate_area' are not valid JSON"),
    ([{"from": "human", "value": "x"}, {"from": "function_call", "value": "{'name': 'calculate_area'}"},
      {"from": "gpt", "value": "y"}], "function_call content is not valid JSON"),
    ([{"from": "human", "value": "x"}, {"from": "observation", "value": "1"}, {"from": "gpt", "value": "y"}],
     "tool result (observation) without a preceding assistant tool call"),
    ([{"from": "human", "value": "x"}, {"from": "function_call", "value": '{"name": "calculate_area", "arguments": {}}'},
      {"from": "observation", "value": "1"}, {"from": "observation", "value": "2"}, {"from": "gpt", "value": "y"}],
     "no call left to answer"),
])
def test_bad_sharegpt_tool_rows_name_file_line_and_fix(tok, tmp_path, turns, needle):
    name = _bad(tmp_path, [{"conversations": [{"from": "human", "value": "ok"}, {"from": "gpt", "value": "ok"}],
                            "tools": "[]"}, {"conversations": turns, "tools": CALC}])
    with pytest.raises(DataError) as e:
        build(tok, dataset=name, dataset_dir=str(tmp_path), template="chatml")
    msg = str(e.value)
    assert needle in msg, msg
    assert f"{name}.json:" in msg and "nothing was trained" in e.value.hint


def test_bad_openai_tool_call_id_names_file_line_and_fix(tok, tmp_path):
    rows = json.loads((TOOLS_DIR / "openai_tools.json").read_text())
    rows[0]["messages"][4]["tool_call_id"] = "zzzzzzzzz"
    name = _bad(tmp_path, rows, fmt="openai")
    with pytest.raises(DataError) as e:
        build(tok, dataset=name, dataset_dir=str(tmp_path), template="chatml")
    msg = str(e.value)
    assert "tool_call_id 'zzzzzzzzz' matches no call" in msg and "a1b2c3d4e, f5g6h7i8j" in msg
    assert "openai_tools.json:" in msg
