"""The message catalogue (config/messages.py): every configuration problem has an English and a Chinese text.

The sweep below builds configs from the schema (every field × a spread of values, on every finetuning method and
every stage) and collects every problem ``validate`` reports; it fails if a message id used in validate.py is never
produced (so a new check needs a way to reach it here) or if any produced message lacks a Chinese rendering that
carries its values. The same is done for parse.py's errors.
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
from tuneforge.config.schema import FINETUNING_TYPES, GROUPS, STAGES
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
    if f.metadata.get("choices"):
        vals = list(f.metadata["choices"])
    elif base is bool:
        vals = [True, False]
    elif base is int:
        vals = [-1, 0, 1, 3, 4]
    elif base is float:
        vals = [-1.0, 0.0, 0.3, 0.7, 1.0, 2.5]
    elif base is dict:
        vals = [{"name": "Aster"}]
    else:
        vals = ["", " ", "x", "0", "5-2", "2"]
    return vals + ([None] if optional else [])


# Problems that only two settings together raise (a single-field sweep cannot reach them).
COMBINATIONS = [
    {"bf16": True, "fp16": True},
    {"train_on_prompt": True, "mask_history": True},
    {"pissa_init": True, "adapter_name_or_path": "some/adapter"},
    {"stage": "dpo", "dpo_label_smoothing": 0.1, "pref_loss": "ipo"},
]


def sweep() -> list[Msg]:
    bases = [{"finetuning_type": m} for m in FINETUNING_TYPES] + [{"stage": s} for s in STAGES]
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
    return problems


def message_sites(path: Path) -> dict[int, str]:
    """Line → source of every ``Msg(…)`` call inside a function of ``path``: each is one error path."""
    out = {}
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Msg":
                    out[node.lineno] = ast.unparse(node)
    return out


def test_every_validation_message_is_reached_from_the_schema_and_has_chinese(monkeypatch):
    validate_mod = sys.modules["tuneforge.config.validate"]  # the package re-exports the function under this name
    def recording_msg(msg_id, /, **params):  # a Msg that knows the line that made it
        m = Msg(msg_id, **params)
        m.site = sys._getframe(1).f_lineno
        return m

    def sites_of(m) -> set[int]:
        if not isinstance(m, Msg):
            return set()
        return {getattr(m, "site", None)}.union(*(sites_of(v) for v in m.params.values()))

    monkeypatch.setattr(validate_mod, "Msg", recording_msg)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # report_to=tensorboard without the package
    problems = sweep()
    # lora_layers checked against a model's layer count (adapters/lora.py calls the same function)
    for spec in ("9", "0-7"):
        with pytest.raises(ValueError) as e:
            parse_layer_spec(spec, 4)
        problems.append(e.value.args[0])
    reached = set().union(*(sites_of(p) for p in problems))  # lines whose message was reported, not just built
    sites = message_sites(SRC / "config" / "validate.py")
    assert len(sites) >= 50
    missed = {line: src for line, src in sites.items() if line not in reached}
    assert not missed, f"validate.py error paths that no config reached: {missed}"
    for p in {(p.id, str(p)): p for p in problems}.values():
        check_rendering(p)


def test_validate_reports_only_catalogued_messages():
    """No plain or f-string problem in validate.py: each one goes through the catalogue (and so has 中文)."""
    tree = ast.parse((SRC / "config" / "validate.py").read_text(encoding="utf-8"))
    reported = []
    for node in ast.walk(tree):
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
    assert not bad, f"uncatalogued messages in validate.py: {bad}"


# ---- parse.py -----------------------------------------------------------------------------------------------------

def test_every_parse_message_has_chinese(tmp_path):
    problems: list = []
    junk = {"bool": "maybe", "int": "many", "float": "lots"}
    values: dict = {"lora_rnk": 3, "seeed": 1, "ppo_lamb": 1, "zzzqqq": 1}  # 3, 1, 2 and no suggestions
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
    with pytest.raises(ConfigError) as e:
        build_config(values)
    problems += e.value.problems
    with pytest.raises(ConfigError) as e:
        build_config({"template": None})
    problems += e.value.problems
    with pytest.raises(ConfigError) as e:
        split_argv(["a.yaml", "stray"])
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
    from tuneforge.adapters.lora import check_adapter_dir
    from tuneforge.data.catalog import check_datasets
    from tuneforge.data.templates import check_template
    from tuneforge.models import quantization
    from tuneforge.models.load import check_model
    from tuneforge.train.preference import check_value_head

    (tmp_path / "empty").mkdir()
    problems = [check_model("no/such/model"), check_model(str(tmp_path / "empty")), check_template("zigzag"),
                check_adapter_dir("no/adapter"), check_adapter_dir(str(tmp_path / "empty")),
                check_value_head("no/rm"), check_value_head(tmp_path / "empty")]
    problems += check_datasets("nope", str(tmp_path))
    bad_catalogs = ['{"a": ', "[1]", '{"a": 1}', '{"a": {"hf_hub_url": "x"}}', '{"a": {"columns": {}}}',
                    '{"a": {"file_name": "a.json", "formatting": "zig"}}', '{"a": {"file_name": "gone.json"}}']
    for i, text in enumerate(bad_catalogs):
        d = tmp_path / f"cat{i}"
        d.mkdir()
        (d / "dataset_info.json").write_text(text)
        problems += check_datasets("a", str(d))
    monkeypatch.setattr(quantization.md, "version", lambda name: "0.1.0")
    problems.append(quantization.check_bitsandbytes())
    assert all(problems) and len(problems) == 16
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
