"""The message catalogue (config/messages.py): every configuration problem has an English and a Chinese text.

The sweep below builds configs from the schema (every field × a spread of values, on every finetuning method and
every stage) and collects every problem ``validate`` reports; it fails if a ``Msg`` built in validate.py or in a
method record's ``validate`` (adapters/<method>.py) is never produced (so a new check needs a way to reach it here)
or if any produced message lacks a Chinese rendering that carries its values. The same is done for parse.py's
errors.
"""

from __future__ import annotations

import ast
import json
import pickle
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from tuneforge.config import build_config, parse_args, validate
from tuneforge.config.messages import CATALOG, Msg, placeholders, tr
from tuneforge.config.parse import _type_of, load_yaml, split_argv
from tuneforge.config.registry import METHODS, STAGES
from tuneforge.config.schema import GROUPS, field_choices
from tuneforge.config.validate import parse_layer_spec
from tuneforge.errors import ConfigError, TuneforgeError

SRC = Path(__file__).resolve().parent.parent / "src" / "tuneforge"
CJK = re.compile(r"[\u4e00-\u9fff]")


def ids_used_in(path: Path) -> set[str]:
    """Message ids of every ``Msg("id", …)`` written in a source file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Msg" and node.args and \
                isinstance(node.args[0], ast.Constant):
            out.add(node.args[0].value)
    return out


def ids_in(msg) -> set[str]:
    """The id of ``msg`` and of every Msg nested in its params."""
    if not isinstance(msg, Msg):
        return set()
    return {msg.id}.union(*(ids_in(v) for v in msg.params.values()))


def check_rendering(msg) -> None:
    """English is the str itself; the Chinese text has Chinese in it and shows every value the English shows."""
    assert isinstance(msg, Msg), f"not catalogued (no Chinese): {msg!r}"
    zh = msg.render("zh")
    assert msg.render("en") == str(msg)
    assert CJK.search(zh), (msg.id, zh)
    for value in msg.params.values():
        if isinstance(value, Msg):
            assert value.render("zh") in zh, (msg.id, zh)
        elif value not in ("", None):
            assert str(value) in zh or repr(value) in zh, (msg.id, value, zh)


# ---- the catalogue itself -----------------------------------------------------------------------------------------

def test_every_catalogued_message_has_english_and_chinese_with_the_same_placeholders():
    import tuneforge.webui.i18n  # noqa: F401  (registers the web UI's texts into the same catalogue)

    assert len(CATALOG) > 150
    for key, entry in CATALOG.items():
        assert set(entry) == {"en", "zh"} and entry["en"].strip() and entry["zh"].strip(), key
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key
        words = re.sub(r"\{[^{}]*\}", "", entry["en"])
        if re.search(r"[A-Za-z]{3}", re.sub(r"`[^`]*`|--?\w+|\b\w*_\w*\b", "", words)):
            assert CJK.search(entry["zh"]), f"{key}: the Chinese text is not Chinese: {entry['zh']!r}"


def test_a_message_is_its_english_text_and_survives_pickling():
    m = Msg("gt0", key="learning_rate", got=-0.001)
    assert m == "learning_rate must be > 0, got -0.001" and isinstance(m, str)
    assert tr(m, "zh") == "learning_rate 必须 > 0，当前为 -0.001" and tr("plain text", "zh") == "plain text"
    back = pickle.loads(pickle.dumps(m))
    assert back.id == "gt0" and back.render("zh") == m.render("zh")
    assert str(ConfigError([m])).endswith("learning_rate must be > 0, got -0.001")  # what the CLI prints


# ---- validate.py: every problem, reached from the schema ----------------------------------------------------------

def candidates(f) -> list:
    """A spread of values for one schema field: boundaries, out-of-range values and every choice."""
    base, optional = _type_of(f)
    if field_choices(f):
        vals = list(field_choices(f))
    elif base is bool:
        vals = [True, False]
    elif base is int:
        vals = [-1, 0, 1, 3, 4]
    elif base is float:
        vals = [-1.0, 0.0, 0.3, 0.7, 1.0, 2.5]
    elif base is dict:
        vals = [{"name": "Aster"}]
    elif f.metadata.get("json_list"):
        vals = ["x", '["a", "b"]', '["unclosed"', '["", 3]']
    else:
        vals = ["", " ", "x", "0", "5-2", "2"]
    return vals + ([None] if optional else [])


# Problems that only two settings together raise (a single-field sweep cannot reach them).
COMBINATIONS = [
    {"bf16": True, "fp16": True},
    {"train_on_prompt": True, "mask_history": True},
    {"pissa_init": True, "adapter_name_or_path": "some/adapter"},
    {"stage": "dpo", "dpo_label_smoothing": 0.1, "pref_loss": "ipo"},
    {"finetuning_type": "oft", "oft_rank": 4, "oft_block_size": 16},
]


def sweep() -> list[Msg]:
    bases = [{"finetuning_type": m} for m in METHODS] + [{"stage": s} for s in STAGES]
    configs = [dict(c) for c in COMBINATIONS]
    for base in bases:
        configs.append(dict(base))
        for group in GROUPS.values():
            for f in fields(group):
                for value in candidates(f):
                    configs.append({**base, f.name: value})
    problems = []
    for values in configs:
        try:
            cfg = build_config(values)
        except ConfigError:
            continue  # not a value the schema accepts: parse.py's messages, tested below
        problems += validate(cfg)
    cfg = build_config({})  # a non-finite float set in code (parse refuses the text "inf" itself)
    cfg.train.learning_rate = float("inf")
    problems += validate(cfg)
    return problems


def message_sites(path: Path, function: str | None = None) -> dict[int, str]:
    """Line → source of every ``Msg(…)`` call inside a function of ``path`` (only the one named ``function`` if
    given): each is one error path."""
    out = {}
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, ast.FunctionDef) and function in (None, fn.name):
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Msg":
                    out[node.lineno] = ast.unparse(node)
    return out


def validation_modules() -> list:
    """validate.py and the module of every method record's ``validate`` (the checks that run before weights)."""
    mods = {sys.modules["tuneforge.config.validate"]}
    mods |= {sys.modules[m.validate.__module__] for m in METHODS.values() if m.validate.__name__ == "validate"}
    mods |= {sys.modules[s.validate.__module__] for s in STAGES.values() if s.validate.__name__.startswith("validate")}
    return sorted(mods, key=lambda m: m.__name__)


def validate_functions(mod) -> list:
    """The functions of ``mod`` whose messages are validation problems (None: all of validate.py)."""
    if mod.__name__ == "tuneforge.config.validate":
        return [None]
    return sorted({r.validate.__name__ for r in (*METHODS.values(), *STAGES.values())
                   if r.validate.__module__ == mod.__name__ and r.validate.__name__.startswith("validate")})


def validation_sites() -> dict[tuple[str, int], str]:
    out = {}
    for mod in validation_modules():
        for only in validate_functions(mod):
            out.update({(Path(mod.__file__).name, line): src
                        for line, src in message_sites(Path(mod.__file__), only).items()})
    return out


def test_every_validation_message_is_reached_from_the_schema_and_has_chinese(monkeypatch):
    def recording_msg(msg_id, /, **params):  # a Msg that knows the file and line that made it
        m = Msg(msg_id, **params)
        frame = sys._getframe(1)
        m.site = (Path(frame.f_code.co_filename).name, frame.f_lineno)
        return m

    def sites_of(m) -> set[int]:
        if not isinstance(m, Msg):
            return set()
        return {getattr(m, "site", None)}.union(*(sites_of(v) for v in m.params.values()))

    for mod in validation_modules():
        monkeypatch.setattr(mod, "Msg", recording_msg)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # report_to=tensorboard without the package
    problems = sweep()
    # lora_layers checked against a model's layer count (adapters/lora.py calls the same function)
    for spec in ("9", "0-7"):
        with pytest.raises(ValueError) as e:
            parse_layer_spec(spec, 4)
        problems.append(e.value.args[0])
    reached = set().union(*(sites_of(p) for p in problems))  # lines whose message was reported, not just built
    sites = validation_sites()
    assert len(sites) >= 50 and {f for f, _ in sites} >= {"validate.py", "lora.py", "oft.py", "prompt.py",
                                                          "stages.py"}
    missed = {site: src for site, src in sites.items() if site not in reached}
    assert not missed, f"validation error paths that no config reached: {missed}"
    for p in {(p.id, str(p)): p for p in problems}.values():
        check_rendering(p)


def test_validate_reports_only_catalogued_messages():
    """No plain or f-string problem in validate.py or a method's validate: each one goes through the catalogue (and
    so has 中文)."""
    trees = []
    for mod in validation_modules():
        tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
        names = validate_functions(mod)
        trees += [tree] if names == [None] else [n for n in ast.walk(tree)
                                                  if isinstance(n, ast.FunctionDef) and n.name in names]
    reported = []
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append" \
                and getattr(node.func.value, "id", None) == "p":
            reported.append(node.args[0])
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "need":
            reported.append(node.args[1])
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            reported.append(node.exc.args[0])
    assert len(reported) > 40
    is_msg = lambda a: isinstance(a, ast.Call) and getattr(a.func, "id", "") == "Msg"  # noqa: E731
    bad = [ast.unparse(a) for a in reported if not is_msg(a) and ast.unparse(a) != "msg"]  # need()'s own append
    assert not bad, f"uncatalogued validation messages: {bad}"


# ---- parse.py -----------------------------------------------------------------------------------------------------

def test_every_parse_message_has_chinese(tmp_path):
    problems: list = []
    junk = {"bool": "maybe", "int": "many", "float": "lots"}
    values: dict = {"lora_": 3, "seeed": 1, "kto_weight": 1, "zzzqqq": 1}  # 3, 1, 2 and no suggestions
    for group in GROUPS.values():
        for f in fields(group):
            base, optional = _type_of(f)
            if f.metadata.get("choices"):
                values[f.name] = "zigzag"
            elif base.__name__ in junk:
                values[f.name] = junk[base.__name__]
            if not optional and base is not str:
                values.setdefault(f.name, None)
    values["dataset_vars"] = "name=Aster,oops"
    values["use_kt"] = True  # an LLaMA-Factory name tuneforge refuses (config/lf_keys.py)
    with pytest.raises(ConfigError) as e:
        build_config(values)
    problems += e.value.problems
    with pytest.raises(ConfigError) as e:
        build_config({"template": None})
    problems += e.value.problems
    with pytest.raises(ConfigError) as e:
        split_argv(["a.yaml", "stray"])
    problems += e.value.problems
    for extra in ({"finetuning_type": "qlora"}, {"finetuning_type": "dora"}):  # a method that is a LoRA option
        with pytest.raises(ConfigError) as e:
            build_config(extra)
        problems += e.value.problems
    (tmp_path / "dup.yaml").write_text("a: 1\na: 2\n")
    (tmp_path / "latin1.yaml").write_bytes(b"a: caf\xe9\n")
    for path in (tmp_path / "dup.yaml", tmp_path / "latin1.yaml"):
        with pytest.raises(TuneforgeError) as e:
            load_yaml(path)
        problems += [e.value.message, e.value.hint]
    with pytest.raises(ConfigError) as e:  # NaN/Inf are not settings
        build_config({"learning_rate": "inf"})
    problems += e.value.problems
    with pytest.raises(ConfigError) as e:  # a bare --flag on a setting that is not True/False
        build_config(split_argv(["--learning_rate", "--lora_rank"])[1])
    problems += e.value.problems
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    (tmp_path / "list.yaml").write_text("- 1\n")
    for path in (tmp_path / "missing.yaml", tmp_path / "bad.yaml", tmp_path / "list.yaml"):
        with pytest.raises(TuneforgeError) as e:
            load_yaml(path)
        problems += [e.value.message, e.value.hint]
    produced = set().union(*(ids_in(p) for p in problems))
    wanted = ids_used_in(SRC / "config" / "parse.py") | {"did_you_mean", "one_name", "two_names", "three_names"}
    assert not wanted - produced, sorted(wanted - produced)
    for p in problems:
        check_rendering(p)
    zh = [tr(p, "zh") for p in problems]
    assert any("'zigzag' 不是可选值之一" in z for z in zh) and any("应为整数，实际为 'many'" in z for z in zh)


# ---- the preflight checks (model, template, adapters, reward model, datasets) --------------------------------------

def test_preflight_problems_have_chinese(tmp_path, monkeypatch):
    from tuneforge.adapters import check_adapter_dir
    from tuneforge.data.catalog import check_datasets
    from tuneforge.data.templates import check_template
    from tuneforge.models import quantization
    from tuneforge.models.load import check_model
    from tuneforge.train.value_head import check_value_head

    (tmp_path / "empty").mkdir()
    problems = [check_model("no/such/model"), check_model(str(tmp_path / "empty")), check_template("zigzag"),
                check_adapter_dir("no/adapter"), check_adapter_dir(str(tmp_path / "empty")),
                check_value_head("no/rm"), check_value_head(tmp_path / "empty")]
    problems += check_datasets("nope", str(tmp_path))
    problems += check_datasets("a", "REMOTE:org/repo")
    bad_catalogs = ['{"a": ', "[1]", '{"a": 1}', '{"a": {"script_url": "x"}}', '{"a": {"columns": {}}}',
                    '{"a": {"file_name": "a.json", "columns": {"images": "images"}}}',
                    '{"a": {"file_name": "a.json", "formatting": "zig"}}', '{"a": {"file_name": "gone.json"}}']
    for i, text in enumerate(bad_catalogs):
        d = tmp_path / f"cat{i}"
        d.mkdir()
        (d / "dataset_info.json").write_text(text)
        problems += check_datasets("a", str(d))
    monkeypatch.setattr(quantization.md, "version", lambda name: "0.1.0")
    problems.append(quantization.check_bitsandbytes())
    assert all(problems) and len(problems) == 18
    for p in problems:
        check_rendering(p)
    assert "目录不存在" in tr(check_adapter_dir("no/adapter"), "zh")


# ---- a real bad config, rendered in Chinese -----------------------------------------------------------------------

def test_a_bad_config_in_chinese_names_the_problem_and_the_value(tmp_path):
    cfg = parse_args(["--learning_rate", "-0.001", "--model_name_or_path", "m", "--output_dir", "o",
                      "--dataset", "identity"])
    (problem,) = validate(cfg)
    assert tr(problem, "zh") == "learning_rate 必须 > 0，当前为 -0.001"
    with pytest.raises(ConfigError) as e:
        parse_args(["--finetuning_type", "lorra"])
    zh = tr(e.value.problems[0], "zh")
    assert "'lorra'" in zh and "不是可选值之一" in zh and "lora" in zh
    assert str(e.value.problems[0]).startswith("finetuning_type: 'lorra' is not one of: full, freeze, lora")


# ---- the data modules: every bad file, row and dataset message, reached from real bad data ------------------------

DATA_MODULES = ("readers", "convert", "schema", "build", "encode")  # encode.py: the reasons a sample is dropped


def _data_problems(tmp_path: Path, tok, monkeypatch) -> list:
    """Every error the data modules can give, each produced by a bad file, row or dataset (and its hint)."""
    from tuneforge.data import templates
    from tuneforge.data.build import build_data
    from tuneforge.data.readers import read_rows
    from tuneforge.data.schema import Conversation, Message, check_order
    from tuneforge.errors import DataError

    out: list = []

    def catch(fn):
        with pytest.raises(DataError) as e:
            fn()
        out.extend([e.value.message, e.value.hint])

    def write(name: str, rows=None, text=None, **entry) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "rows.jsonl").write_text(text if text is not None else
                                      "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
        (d / "dataset_info.json").write_text(json.dumps({name: {"file_name": "rows.jsonl", **entry}}))
        return str(d)

    def build(name: str, stage: str, rows=None, entry=None, **args):
        cfg = build_config({"dataset": name, "dataset_dir": write(name, rows, **(entry or {})), **args})
        return build_data(cfg.data, stage, tok, templates.install(tok, "auto"), seed=0)

    user = lambda c: {"role": "user", "content": c}  # noqa: E731
    bot = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    human = lambda c: {"from": "human", "value": c}  # noqa: E731
    call = lambda c: {"from": "function_call", "value": c}  # noqa: E731
    sft_rows = [
        {"instruction": "{{author}} q", "output": "a"}, {"instruction": 5, "output": "a"},
        {"instruction": "q", "output": "a", "tools": "{bad"},
        {"instruction": "q", "output": "a", "tools": 5}, {"conversations": [human("q"), call("{bad")]},
        {"conversations": [human("q"), call("[1]")]},
        {"conversations": [human("q"), call('{"name": "f", "arguments": "{bad"}')]},
        {"instruction": "q"}, {"instruction": " ", "output": "a"}, {"instruction": "q", "output": "a", "history": [1]},
        {"conversations": []}, {"conversations": [{"value": "q"}]}, {"conversations": [{"from": "bot", "value": "q"}]},
        {"conversations": [human("q"), {"from": "system", "value": "s"}]}, {"messages": [user(5), bot("a")]},
        {"messages": [user("q"), user("q"), bot("a")]}, {"messages": [user("q"), {"role": "tool", "content": "r"}]},
        {"messages": [bot("a")]}, {"messages": [user("q"), bot("a"), bot("b")]}, {"messages": [user("q"), bot(" ")]},
    ] + [{"instruction": "q"}] * 3  # more than the 20 listed: "… and N more"
    catch(lambda: build("sft_bad", "sft", sft_rows, {"vars": {"name": "Aster"}}))
    catch(lambda: build("sft_bad2", "sft", [{"messages": [user("q"), bot("a")], "tools": [1]},
                                             {"conversations": [human("q"), {"from": "gpt"}]}]))
    catch(lambda: build("tool_bad", "sft", [  # tool rows (schema.check_tools)
        {"conversations": [human("q"), {"from": "gpt", "value": "a"}], "tools": '[{"description": "x"}]'},
        {"conversations": [human("q"), call('{"name": "g", "arguments": {}}'), {"from": "observation", "value": "r"},
                           {"from": "gpt", "value": "a"}],
         "tools": '[{"name": "f"}]'},
        {"conversations": [human("q"), call('{"name": "f", "arguments": [1]}'), {"from": "observation", "value": "r"},
                           {"from": "gpt", "value": "a"}],
         "tools": '[{"name": "f"}]'},
        {"conversations": [human("q"), call('{"name": "f", "arguments": {}}'), {"from": "observation", "value": "r"},
                           {"from": "observation", "value": "r"}, {"from": "gpt", "value": "a"}]},
        {"messages": [user("q"), {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c9", "content": "r"}, bot("a")]},
    ]))
    catch(lambda: build("pref_bad", "dpo", [
        {"instruction": "q", "chosen": "a"}, {"instruction": "q", "rejected": "a"},
        {"instruction": "q", "chosen": "a", "rejected": "a"}, {"instruction": "q", "chosen": " ", "rejected": "b"},
        {"conversations": [human("q"), {"from": "gpt", "value": "a"}], "chosen": {"from": "gpt", "value": "x"},
         "rejected": {"from": "gpt", "value": "y"}}], {"ranking": True}))
    catch(lambda: build("kto_bad", "kto", [{"instruction": "q", "output": "a"},
                                            {"instruction": "q", "output": "a", "kto_tag": "maybe"}]))
    catch(lambda: build("pt_bad", "pt", [{"text": ""}]))
    catch(lambda: build("is_pref", "sft", [{"instruction": "q", "chosen": "a", "rejected": "b"}], {"ranking": True}))
    catch(lambda: build("not_pref", "dpo", [{"instruction": "q", "output": "a"}]))
    catch(lambda: build("identity_x", "sft", [{"instruction": "q", "output": "a"}], dataset="nope"))
    catch(lambda: build("evals", "sft", [{"instruction": "q", "output": "a"}], eval_dataset="nope"))
    catch(lambda: build("val", "sft", [{"instruction": "q", "output": "a"}] * 2, val_size=5))
    catch(lambda: build("long", "sft", [{"instruction": "word " * 50, "output": "a"}], cutoff_len=8))
    # files
    for name, text in [("a.json", "[\n{\"a\": 1},\n{\"a\": }\n]"), ("b.json", '{"a": 1}'), ("c.json", '[{"a": 1}'),
                       ("d.json", "[1]"), ("e.jsonl", '{"a": 1}\n{bad\n'), ("f.jsonl", "[1]\n"), ("g.xml", "x"),
                       ("h.json", '[{"a": 1}]\n[{"a": 2}]'), ("i.json", "[" * 100000 + "]" * 100000),
                       ("j.csv", "a,b\n1,2,3\n"), ("k.csv", 'a,b\n1,"' + "x" * 200000 + '"\n'),
                       ("l.parquet", "not parquet"), ("m.arrow", "not arrow")]:
        (tmp_path / name).write_text(text)
        catch(lambda: list(read_rows(tmp_path / name)))
    (tmp_path / "n.json").write_bytes(b'[{"a": "\xff"}]')
    catch(lambda: list(read_rows(tmp_path / "n.json")))
    (tmp_path / "empty").mkdir()
    catch(lambda: list(read_rows(tmp_path / "empty")))
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "mixed" / "b.csv").write_text("text\nb\n")
    catch(lambda: list(read_rows(tmp_path / "mixed")))
    catch(lambda: list(read_rows(tmp_path / "nothing-*.jsonl")))
    catch(lambda: build("media", "sft", [{"instruction": "<image>What is this?", "output": "a cat"}]))
    from datasets import Dataset

    Dataset.from_list([{"text": "x"}]).save_to_disk(str(tmp_path / "arrow"))
    arrow = next((tmp_path / "arrow").glob("*.arrow"))
    (where, _), = read_rows(arrow)
    out.append(where)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    pq.write_table(pyarrow.table({"instruction": ["q"]}), tmp_path / "p.parquet")
    (where, _), = read_rows(tmp_path / "p.parquet")
    out.append(where)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    catch(lambda: list(read_rows(tmp_path / "p.parquet")))
    # turn orders the converters cannot produce (schema.check_order is also used on hand-built conversations)
    out += [check_order(Conversation([])), check_order(Conversation([Message("user", "q"), Message("system", "s")])),
            check_order(Conversation([Message("user", "q"), Message("robot", "x")])),
            check_order(Conversation([Message("user", "q")]))]
    return out


def test_every_data_message_is_reached_from_bad_data_and_has_chinese(tmp_path, tiny_tokenizer, monkeypatch):
    """Each ``Msg(…)`` written in data/readers.py, convert.py, schema.py, build.py and encode.py is produced by some
    bad file, row or dataset above, and renders in Chinese with its values (nested row problems included)."""
    from tuneforge.config.messages import Lines

    def recording_msg(msg_id, /, **params):
        m = Msg(msg_id, **params)
        frame = sys._getframe(1)
        m.site = (Path(frame.f_code.co_filename).stem, frame.f_lineno)
        return m

    import importlib

    for name in DATA_MODULES:
        monkeypatch.setattr(importlib.import_module(f"tuneforge.data.{name}"), "Msg", recording_msg)
    problems = _data_problems(tmp_path, tiny_tokenizer, monkeypatch)

    def nested(m) -> list:
        if isinstance(m, Lines):
            return [x for item in m for x in nested(item)]
        if not isinstance(m, Msg):
            return []
        return [m, *(x for v in m.params.values() for x in nested(v))]

    every = [x for p in problems for x in nested(p)]
    reached = {getattr(m, "site", None) for m in every}
    sites = {(name, line): src for name in DATA_MODULES if name != "encode"
             for line, src in message_sites(SRC / "data" / f"{name}.py").items()}
    assert len(sites) >= 60
    missed = {site: src for site, src in sites.items() if site not in reached}
    assert not missed, f"data error paths that no bad data reached: {missed}"
    for m in {(m.id, str(m)): m for m in every}.values():
        zh = m.render("zh")
        assert m.render("en") == str(m) and CJK.search(zh), (m.id, zh)
        for value in m.params.values():
            if isinstance(value, (Msg, Lines)):
                assert value.render("zh") in zh, (m.id, zh)
            elif value not in ("", None):
                assert str(value) in zh or repr(value) in zh, (m.id, value, zh)
    # the "N bad rows" summary lists each row's problem in Chinese, with its file and line
    summary = next(p for p in problems if isinstance(p, Msg) and p.id == "data_bad_rows" and "sft_bad" in str(p))
    zh = summary.render("zh")
    assert "23 行有问题" in zh and "rows.jsonl:8：该行没有 'output'（要学习的回复）" in zh, zh
    assert "……另有 3 行" in zh and "rows.jsonl:2: instruction must be text, got int" in str(summary)
    # encode.py's drop reasons (the sweep reaches one: a prompt longer than cutoff_len) are all catalogued
    assert "drop_prompt_too_long" in {m.id for m in every}
    assert ids_used_in(SRC / "data" / "encode.py") <= set(CATALOG)


def test_data_messages_are_catalogued():
    """No plain or f-string error text left in the data modules: each raise and each row problem is a Msg."""
    bad = []
    for name in DATA_MODULES:
        for node in ast.walk(ast.parse((SRC / "data" / f"{name}.py").read_text(encoding="utf-8"))):
            args = []
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("DataError", "RowError"):
                args = node.args
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "append" and getattr(node.func.value, "id", None) == "problems":
                args = node.args
            elif isinstance(node, ast.Return) and isinstance(node.value, (ast.Constant, ast.JoinedStr)) and \
                    isinstance(getattr(node.value, "value", ""), str) and name == "schema":
                args = [node.value]
            bad += [f"{name}.py:{node.lineno}" for a in args if isinstance(a, (ast.Constant, ast.JoinedStr))]
    assert not bad, bad
