"""Every byte of input accounted for: each way a file or a row can lose data is an error naming the file and line
(never a silent loss), and a property-based fuzz test (hypothesis) over every reader and format converter: for any
input, either a clean TuneforgeError or rows whose count equals what was read."""

import csv
import io
import json
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tuneforge.config import build_config
from tuneforge.config.parse import load_yaml
from tuneforge.data.build import read_dataset
from tuneforge.data.catalog import DatasetEntry, load_catalog, lookup
from tuneforge.data.convert import RowError, to_conversation, to_preference
from tuneforge.data.readers import read_rows
from tuneforge.errors import DataError, TuneforgeError

# derandomized: CI runs the same examples every time (run with more examples locally to search further)
FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def rows_of(path):
    return list(read_rows(Path(path)))


def read(tmp_path, name, content, **entry):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return read_dataset(DatasetEntry(name="d", path=p, **entry), build_config({}).data, "sft")


ALPACA = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(4)]


# ---- the holes, one by one ----------------------------------------------------------------------------------------

def test_two_json_arrays_in_one_file_are_an_error(tmp_path):
    text = json.dumps(ALPACA, indent=1) + "\n" + json.dumps(ALPACA, indent=1)
    with pytest.raises(DataError, match=r"a\.json:23: text after the end of the JSON array \(another JSON array\)"):
        read(tmp_path, "a.json", text)


def test_text_after_the_closing_bracket_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"text after the end of the JSON array \('oops'\)") as e:
        read(tmp_path, "a.json", json.dumps(ALPACA) + "\noops\n")
    assert "docs/data.md" in e.value.hint
    assert len(read(tmp_path, "b.json", json.dumps(ALPACA) + "\n \n")[0]) == 4  # whitespace is fine


def test_an_unquoted_comma_in_a_csv_reply_is_an_error_not_a_cut(tmp_path):
    text = "instruction,output\nCan you help?,Yes, of course.\n"
    with pytest.raises(DataError, match=r"a\.csv:2: 3 field\(s\), the header has 2 .*' of course\.' would be lost") as e:
        read(tmp_path, "a.csv", text)
    assert "quote" in e.value.hint and "docs/data.md" in e.value.hint
    with pytest.raises(DataError, match=r"a\.csv:2: 1 field\(s\), the header has 2"):
        read(tmp_path, "a.csv", "instruction,output\nonly one\n")
    convs = read(tmp_path, "b.csv", 'instruction,output\nCan you help?,"Yes, of course."\n')[0]
    assert convs[0].messages[-1].content == "Yes, of course."


def test_a_turn_without_a_value_is_an_error(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt"}]}]
    with pytest.raises(DataError, match=r"message 2 \(gpt\) has no 'value'"):
        read(tmp_path, "s.json", json.dumps(rows), formatting="sharegpt")
    rows = [{"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]}]
    with pytest.raises(DataError, match=r"message 1 \(user\) has no 'content'"):
        read(tmp_path, "o.json", json.dumps(rows), formatting="openai")
    call = [{"messages": [{"role": "user", "content": "w?"}, {"role": "assistant", "content": None, "tool_calls": [
        {"function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "content": "1"},
        {"role": "assistant", "content": "one"}]}]
    assert len(read(tmp_path, "c.json", json.dumps(call), formatting="openai")[0]) == 1  # null beside tool calls


def test_tools_that_are_not_objects_are_a_row_error(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": [1]}]
    with pytest.raises(DataError, match="tool 1 must be an object"):
        read(tmp_path, "t.json", json.dumps(rows), formatting="openai")


@pytest.mark.parametrize("name", ["a.json", "a.jsonl", "a.csv", "a.txt"])
def test_non_utf8_data_names_the_byte(tmp_path, name):
    body = {"a.json": b'[{"instruction": "q", "output": "caf\xe9"}]', "a.jsonl": b'{"instruction": "q"}\n{"x": "\xff"}\n',
            "a.csv": b"instruction,output\nq,caf\xe9\n", "a.txt": b"fine\n\xff\xfe\n"}[name]
    p = tmp_path / name
    p.write_bytes(body)
    with pytest.raises(DataError, match=r"not UTF-8 text at byte \d+ \(line \d\)") as e:
        rows_of(p)
    assert str(p) in str(e.value) and "iconv" in e.value.hint


@pytest.mark.parametrize("name", ["a.parquet", "a.arrow"])
def test_a_file_that_is_not_what_its_name_says(tmp_path, name):
    p = tmp_path / name
    p.write_text("instruction,output\nq,a\n")
    with pytest.raises(DataError, match=rf"not a readable {name.split('.')[1]} file"):
        rows_of(p)


def test_a_csv_field_over_the_csv_limit_is_a_message(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('instruction,output\nq,"' + "x" * (csv.field_size_limit() + 10) + '"\n')
    with pytest.raises(DataError, match=r"a\.csv:\d+: not readable as CSV: field larger than field limit"):
        rows_of(p)


def test_deeply_nested_json_is_a_message(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" + '{"a": ' * 100000 + "1" + "}" * 100000 + "]")
    with pytest.raises(DataError, match="nested too deeply"):
        rows_of(p)
    p = tmp_path / "deep.jsonl"
    p.write_text("[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(DataError, match="nested too deeply"):
        rows_of(p)


def test_two_objects_on_one_jsonl_line_are_an_error(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"instruction": "q", "output": "a"} {"instruction": "q2", "output": "b"}\n')
    with pytest.raises(DataError, match=r"line 1.*text after the JSON object"):
        rows_of(p)


@pytest.mark.parametrize("spec,needle", [
    ({"file_name": "a.json", "columns": ["prompt"]}, "columns must be a mapping"),
    ({"file_name": "a.json", "vars": "name=x"}, "vars must be a mapping"),
    ({"file_name": "a.json", "tags": {"role_tag": ["from"]}}, "tags must be a mapping"),
    ({"file_name": "a.json", "num_samples": "100"}, "num_samples must be a whole number ≥ 1, got '100'"),
])
def test_bad_catalog_entries_are_messages(tmp_path, spec, needle):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": spec}))
    (tmp_path / "a.json").write_text(json.dumps(ALPACA))
    entry = lookup(load_catalog(tmp_path), "d", tmp_path)
    assert needle in str(entry.problem) and "dataset_info.json" in str(entry.problem)


def test_a_non_utf8_catalog_is_a_message(tmp_path):
    (tmp_path / "dataset_info.json").write_bytes(b'{"d": {"file_name": "\xff.json"}}')
    with pytest.raises(DataError, match="not UTF-8 text at byte 21"):
        load_catalog(tmp_path)


def test_yaml_duplicate_keys_and_non_utf8_yaml(tmp_path):
    (tmp_path / "d.yaml").write_text("learning_rate: 1e-4\nlora_rank: 8\nlearning_rate: 1e-3\n")
    with pytest.raises(TuneforgeError, match=r"'learning_rate' is set twice \(lines 1 and 3\)"):
        load_yaml(tmp_path / "d.yaml")
    (tmp_path / "b.yaml").write_bytes(b"template: qwen\ndefault_system: \xb2\xe2\n")
    with pytest.raises(TuneforgeError, match=r"not UTF-8 text at byte 31 \(line 2\)"):
        load_yaml(tmp_path / "b.yaml")
    (tmp_path / "m.yaml").write_text("base: &b {lora_rank: 8}\nother:\n  <<: *b\n  lora_alpha: 16\n")
    assert load_yaml(tmp_path / "m.yaml")["other"] == {"lora_rank": 8, "lora_alpha": 16}  # merges still work


# ---- property-based: every reader, every converter ----------------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                          lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
                          max_leaves=12)


@FUZZ
@given(data=st.binary(max_size=300), ext=st.sampled_from([".json", ".jsonl", ".csv", ".txt", ".parquet", ".arrow"]))
def test_any_bytes_give_rows_or_a_clean_error(data, ext):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{ext}"
        p.write_bytes(data)
        try:
            rows = rows_of(p)
        except TuneforgeError:
            return
        assert all(isinstance(r, dict) for _, r in rows)


alpaca_rows = st.lists(st.fixed_dictionaries({"instruction": text.filter(str.strip), "output": text}), min_size=1,
                       max_size=6)


def write_rows(path: Path, rows: list[dict], ext: str, junk: str) -> None:
    if ext == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + junk, encoding="utf-8")
    elif ext == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + junk, encoding="utf-8")
    elif ext == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["instruction", "output"])
        w.writeheader()
        w.writerows(rows)
        path.write_text(buf.getvalue() + junk, encoding="utf-8", newline="")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


@FUZZ
@given(rows=alpaca_rows, ext=st.sampled_from([".json", ".jsonl", ".csv", ".parquet"]),
       junk=st.sampled_from(["", "\n", "  \n", "x", "[]", '{"a": 1}', ",,,\n", "\n[{}]"]))
def test_rows_read_equal_rows_written_or_a_clean_error(rows, ext, junk):
    """Whatever follows the rows, a file never silently yields fewer (or cut) rows than it holds."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{ext}"
        write_rows(p, rows, ext, junk)
        trailing = bool(junk.strip()) and ext != ".parquet"  # (parquet is written whole, without the junk)
        try:
            convs, counts = read_dataset(DatasetEntry(name="d", path=p), build_config({}).data, "sft")
        except TuneforgeError:
            assert trailing or any(not r["output"].strip() for r in rows)
            return
        assert not trailing, f"{junk!r} after the rows was read without a word"
        assert len(convs) == len(rows) == counts["read"] == counts["used"]
        for conv, row in zip(convs, rows):  # nothing cut: every reply arrives whole
            assert conv.messages[-1].content == row["output"]


turn = st.fixed_dictionaries({}, optional={"from": st.sampled_from(["human", "gpt", "system", "observation",
                                                                      "function_call", "x"]) | json_value,
                                          "value": json_value, "role": st.sampled_from(["user", "assistant",
                                                                                           "tool", "system"]),
                                          "content": json_value, "tool_calls": json_value})
row = st.fixed_dictionaries({}, optional={"conversations": st.lists(turn, max_size=5) | json_value,
                                          "messages": st.lists(turn, max_size=5) | json_value,
                                          "instruction": json_value, "input": json_value, "output": json_value,
                                          "history": json_value, "system": json_value, "tools": json_value,
                                          "chosen": json_value, "rejected": json_value, "kto_tag": json_value})


@FUZZ
@given(row=row, formatting=st.sampled_from([None, "alpaca", "sharegpt", "openai"]), ranking=st.booleans(),
       stage=st.sampled_from(["sft", "dpo", "kto", "ppo"]))
def test_any_row_converts_or_is_a_row_error(row, formatting, ranking, stage):
    entry = DatasetEntry(name="d", path=Path("x"), formatting=formatting, ranking=ranking)
    try:
        out = to_conversation(entry, row) if stage == "sft" else to_preference(entry, row, stage)
    except RowError:
        return
    conv = out if stage == "sft" else out.with_reply(out.chosen)
    for m in conv.messages:  # every message is text the template can render, none silently emptied
        assert isinstance(m.content, str)
        assert m.content or m.tool_calls or m.role != "user"


@FUZZ
@given(rows=st.lists(row, min_size=1, max_size=4), ext=st.sampled_from([".json", ".jsonl"]))
def test_a_file_of_any_rows_is_read_whole_or_refused(rows, ext):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{ext}"
        p.write_text(json.dumps(rows) if ext == ".json" else "".join(json.dumps(r) + "\n" for r in rows))
        try:
            items, counts = read_dataset(DatasetEntry(name="d", path=p), build_config({}).data, "sft")
        except TuneforgeError:
            return
        assert counts["read"] == len(rows) == len(items) == counts["used"]


def test_the_data_guide_exists_for_every_hint_that_points_to_it():
    from tuneforge.config.messages import CATALOG

    root = Path(__file__).resolve().parents[1]
    pointing = [k for k, v in CATALOG.items() if "docs/data.md" in v["en"]]
    assert len(pointing) >= 5 and (root / "docs" / "data.md").is_file()
    guide = (root / "docs" / "data.md").read_text()
    for heading in ("## Formats", "## What stops a run", "## Encoding"):
        assert heading in guide
    assert set(string.ascii_letters) & set(guide)
