import json

import pytest

from tuneforge.config import build_config
from tuneforge.data import templates
from tuneforge.data.build import build_data
from tuneforge.data.catalog import check_datasets, load_catalog
from tuneforge.data.encode import IGNORE, EncodeStats, encode_conversation
from tuneforge.data.schema import Conversation, Message
from tuneforge.errors import DataError


def build(tok, **kw):
    cfg = build_config(kw)
    fmt = templates.install(tok, cfg.data.template)
    return build_data(cfg.data, "sft", tok, fmt, seed=0)


def write_info(d, name, file_name, **extra):
    (d / "dataset_info.json").write_text(json.dumps({name: {"file_name": file_name, **extra}}))


def test_builtin_identity_found_without_dataset_dir_and_alias(tiny_tokenizer, tmp_path):
    assert check_datasets("identity,self_cognition,general", str(tmp_path / "missing")) == []
    b = build(tiny_tokenizer, dataset="self_cognition", dataset_dir="nowhere",
              dataset_vars={"name": "Nimbus", "author": "Orchard Labs"})
    assert b.report["rows_read"] >= 80
    texts = [tiny_tokenizer.decode(s.input_ids) for s in b.train]
    assert all("{{" not in t for t in texts)
    assert sum("Nimbus" in t for t in texts) >= 80


def test_identity_builtin_has_english_and_chinese_with_placeholders():
    entry = load_catalog(None)["identity"]
    rows = json.loads(entry.path.read_text())
    assert len(rows) >= 80
    assert all("{{name}}" in r["output"] for r in rows)
    assert sum(any("\u4e00" <= c <= "\u9fff" for c in r["instruction"]) for r in rows) >= 20


def test_unknown_dataset_lists_known(tmp_path):
    problems = check_datasets("identty", str(tmp_path))
    assert len(problems) == 1 and "identity" in problems[0] and "general" in problems[0]


def test_invalid_json_names_line(tiny_tokenizer, tmp_path):
    (tmp_path / "bad.json").write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]')
    write_info(tmp_path, "bad", "bad.json")
    with pytest.raises(DataError, match=r"bad.json: invalid JSON on line 3"):
        build(tiny_tokenizer, dataset="bad", dataset_dir=str(tmp_path))
    (tmp_path / "bad.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    write_info(tmp_path, "bad", "bad.jsonl")
    with pytest.raises(DataError, match=r"bad.jsonl: invalid JSON on line 2"):
        build(tiny_tokenizer, dataset="bad", dataset_dir=str(tmp_path))


@pytest.mark.parametrize("rows, needle", [
    ([{"input": "", "output": "b"}], "no 'instruction'"),
    ([{"instruction": "a"}], "no 'output'"),
    ([{"instruction": "a", "output": "  "}], "assistant reply is empty"),
])
def test_bad_alpaca_rows_named_with_line(tiny_tokenizer, tmp_path, rows, needle):
    (tmp_path / "d.json").write_text(json.dumps(rows, indent=2))
    write_info(tmp_path, "d", "d.json")
    with pytest.raises(DataError) as e:
        build(tiny_tokenizer, dataset="d", dataset_dir=str(tmp_path))
    assert "d.json:2" in str(e.value) and needle in str(e.value)


def test_wrong_role_order(tiny_tokenizer, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                          {"role": "assistant", "content": "c"}]},
            {"messages": [{"role": "assistant", "content": "a"}]}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    write_info(tmp_path, "d", "d.jsonl", formatting="openai")
    with pytest.raises(DataError) as e:
        build(tiny_tokenizer, dataset="d", dataset_dir=str(tmp_path))
    msg = str(e.value)
    assert "2 bad row(s)" in msg and "d.jsonl:1" in msg and "d.jsonl:2" in msg and "alternate" in msg


def test_formats_and_tools_convert(tiny_tokenizer, data_dir):
    # chatml: the tiny model's own template ignores tools, which is refused for rows with tools (test_tool_data.py)
    b = build(tiny_tokenizer, dataset="alpaca_demo,sharegpt_demo,openai_demo", dataset_dir=str(data_dir),
              template="chatml")
    assert b.report["datasets"] == {"alpaca_demo": {"read": 12, "used": 12}, "sharegpt_demo": {"read": 1, "used": 1},
                                    "openai_demo": {"read": 1, "used": 1}}
    openai = b.train[-1]
    sup = tiny_tokenizer.decode([t for t in openai.labels if t != IGNORE])
    assert sup == "Hello.<|im_end|>Nimbus.<|im_end|>"


def test_csv_and_parquet(tiny_tokenizer, tmp_path):
    (tmp_path / "d.csv").write_text('instruction,input,output\n"Who are you?",,"I am Nimbus."\n')
    write_info(tmp_path, "d", "d.csv")
    assert len(build(tiny_tokenizer, dataset="d", dataset_dir=str(tmp_path)).train) == 1
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": ["a", "b"], "output": ["c", "d"]}), tmp_path / "d.parquet")
    write_info(tmp_path, "d", "d.parquet")
    assert len(build(tiny_tokenizer, dataset="d", dataset_dir=str(tmp_path)).train) == 2


def test_max_samples_and_val_size(tiny_tokenizer, data_dir):
    b = build(tiny_tokenizer, dataset="alpaca_demo", dataset_dir=str(data_dir), max_samples=10, val_size=0.2)
    assert len(b.train) == 8 and len(b.eval) == 2


def test_supervised_tokens_are_exactly_the_replies_and_match_apply_chat_template(tiny_tokenizer):
    fmt = templates.install(tiny_tokenizer, "auto")
    conv = Conversation([Message("user", "Hi"), Message("assistant", "Hello there."),
                         Message("user", "Who are you?"), Message("assistant", "I am Nimbus.")])
    s = encode_conversation(fmt, tiny_tokenizer, conv, 512, EncodeStats())
    ref = tiny_tokenizer.apply_chat_template(conv.to_hf(), tokenize=True)
    ref = ref["input_ids"] if hasattr(ref, "keys") else ref
    assert s.input_ids == list(ref)
    # The supervised tokens, in order, are each reply followed by its end-of-turn token, and nothing else.
    runs, cur = [], []
    for t, lab in zip(s.input_ids, s.labels):
        if lab != IGNORE:
            assert lab == t
            cur.append(t)
        elif cur:
            runs.append(tiny_tokenizer.decode(cur))
            cur = []
    assert runs == ["Hello there.<|im_end|>", "I am Nimbus.<|im_end|>"]


def test_mask_history_and_train_on_prompt(tiny_tokenizer):
    fmt = templates.install(tiny_tokenizer, "auto")
    conv = Conversation([Message("user", "Hi"), Message("assistant", "Hello."), Message("user", "Who?"),
                         Message("assistant", "Nimbus.")])
    last = encode_conversation(fmt, tiny_tokenizer, conv, 512, EncodeStats(), mask_history=True)
    assert tiny_tokenizer.decode([t for t in last.labels if t != IGNORE]) == "Nimbus.<|im_end|>"
    every = encode_conversation(fmt, tiny_tokenizer, conv, 512, EncodeStats(), train_on_prompt=True)
    assert every.labels == every.input_ids


def test_truncation_and_drops_are_counted(tiny_tokenizer):
    fmt = templates.install(tiny_tokenizer, "auto")
    long_reply = Conversation([Message("user", "Hi"), Message("assistant", "word " * 200)])
    long_prompt = Conversation([Message("user", "word " * 200), Message("assistant", "ok")])
    two_turns = Conversation([Message("user", "Hi"), Message("assistant", "Hello."), Message("user", "x " * 100),
                              Message("assistant", "y")])
    first = encode_conversation(fmt, tiny_tokenizer, Conversation(two_turns.messages[:2]), 512, EncodeStats())
    cut = len(first.input_ids) + 6  # the first exchange fits, the second does not
    stats = EncodeStats()
    a = encode_conversation(fmt, tiny_tokenizer, long_reply, cut, stats)
    b = encode_conversation(fmt, tiny_tokenizer, long_prompt, cut, stats)
    c = encode_conversation(fmt, tiny_tokenizer, two_turns, cut, stats)
    assert len(a.input_ids) == cut and b is None
    # The two-turn sample keeps its first complete reply and ends right after it.
    assert tiny_tokenizer.decode(c.input_ids).endswith("Hello.<|im_end|>")
    assert stats.truncated == 2 and sum(stats.dropped.values()) == 1
    assert "longer than cutoff_len" in next(iter(stats.dropped))


def test_named_template_and_placeholder_error(tiny_tokenizer, tmp_path):
    b = build(tiny_tokenizer, dataset="identity", template="chatml", dataset_vars={"name": "N", "author": "A"})
    assert "<|im_start|>system" not in tiny_tokenizer.decode(b.train[0].input_ids)  # chatml has no default system
    rows = [{"instruction": "Who?", "output": "I am {{name}} by {{team}}."}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    write_info(tmp_path, "d", "d.json", vars={"name": "X"})
    with pytest.raises(DataError, match=r"placeholders \['team'\] have no value"):
        build(tiny_tokenizer, dataset="d", dataset_dir=str(tmp_path))


def test_unknown_template_is_a_config_problem():
    assert "valid: auto" in templates.check_template("qwen3000")
