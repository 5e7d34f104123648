"""The web UI's pure parts, without a browser: the form built from the schema, the reproducing command, path
confinement, launch/auth rules, the English/Chinese text tables, and the RunManager's process handling."""

from __future__ import annotations

import ast
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from tuneforge.config import GROUPS, parse_args
from tuneforge.config.parse import Config, build_config
from tuneforge.config.schema import opt
from tuneforge.errors import ConfigError, TuneforgeError, error_text
from tuneforge.webui import schema_form as sf
from tuneforge.webui.i18n import STRINGS, field_help, field_label, field_zh, t
from tuneforge.webui.launch import check_launch, is_loopback, parse_auth
from tuneforge.webui.paths import confine, relative
from tuneforge.webui.render import loss_svg, preview_sample_html, progress_html
from tuneforge.webui.runner import RunManager, Status, _alive

WEBUI_SRC = Path(__file__).resolve().parent.parent / "src" / "tuneforge" / "webui"


# ---- form from the schema -----------------------------------------------------------------------------------------

def test_every_training_field_becomes_a_form_field_with_schema_default_and_help():
    specs = sf.specs_by_name()
    expected = {f.name for g in sf.TRAIN_GROUPS for f in fields(GROUPS[g])}
    assert set(specs) == expected and "generate" not in sf.TRAIN_GROUPS and "export" not in sf.TRAIN_GROUPS
    assert specs["learning_rate"].kind == "float" and specs["learning_rate"].default == 5e-5
    assert specs["learning_rate"].help == GROUPS["train"].__dataclass_fields__["learning_rate"].metadata["help"]
    assert specs["lora_rank"].kind == "int" and specs["lora_rank"].section == "method:lora"
    assert specs["freeze_trainable_layers"].section == "method:freeze"
    assert specs["num_virtual_tokens"].section == "method:prompt"
    assert specs["finetuning_type"].kind == "choice" and set(specs["finetuning_type"].choices) == {
        "full", "freeze", "lora", "prefix", "ptuning", "ptuning_v2", "prompt", "oft"}
    assert specs["oft_block_size"].section == "method:oft" and specs["additional_target"].methods == ("lora", "oft")
    assert specs["packing"].kind == "tribool" and specs["plot_loss"].kind == "bool"
    assert specs["dataset_vars"].kind == "mapping" and specs["lora_alpha"].optional
    assert specs["quantization_bit"].section == "quantization"
    assert {n for n, s in specs.items() if s.is_path} >= {"model_name_or_path", "adapter_name_or_path",
                                                          "dataset_dir", "output_dir", "resume_from_checkpoint"}


def test_a_new_schema_field_and_group_appear_without_touching_the_ui(monkeypatch):
    @dataclass
    class RlhfArgs:
        """Preference training."""
        pref_beta: float = opt(0.1, "DPO beta.")
        ref_model: str | None = opt(None, "Reference model.", path=True)
        reward_model: str | None = opt(None, "Reward model run folder.")

    monkeypatch.setitem(GROUPS, "rlhf", RlhfArgs)
    groups = tuple(g for g in GROUPS if g not in ("generate", "export"))
    specs = sf.specs_by_name(groups)
    assert specs["pref_beta"].kind == "float" and specs["pref_beta"].help == "DPO beta."
    assert specs["ref_model"].is_path and specs["ref_model"].section == "rlhf"
    assert specs["reward_model"].is_path  # confined like every other path setting


def test_form_values_to_config_and_back():
    specs = sf.specs_by_name()
    form = {n: sf.to_widget(s, s.default) for n, s in specs.items()}
    assert sf.config_from_form(form).to_flat() == Config().to_flat()  # untouched form = the defaults
    form.update(model_name_or_path="smollm2-135m-instruct", dataset=["identity", "general"],
                dataset_vars="name=Aster,author=Blue Fern Labs", learning_rate=-1.0, lora_alpha="",
                max_samples="50", packing="true", finetuning_type="lora", lora_rank=4)
    cfg = sf.config_from_form(form)
    assert cfg.data.dataset == "identity,general" and cfg.data.dataset_vars == {"name": "Aster",
                                                                                "author": "Blue Fern Labs"}
    assert cfg.train.learning_rate == -1.0 and cfg.lora.lora_alpha is None and cfg.data.max_samples == 50
    assert cfg.data.packing is True and cfg.lora.lora_rank == 4
    form.update(adapter_name_or_path=[], dataset=[])  # empty multi-selects are unset, not ""
    cfg = sf.config_from_form(form)
    assert cfg.model.adapter_name_or_path is None and cfg.data.dataset is None
    assert "adapter_name_or_path" not in sf.preview_command(cfg)


def test_options_of_other_methods_are_left_out():
    form = {"finetuning_type": "freeze", "lora_rank": 64, "freeze_trainable_layers": 3}
    cfg = sf.config_from_form(form)
    assert cfg.lora.lora_rank == 8 and cfg.freeze.freeze_trainable_layers == 3
    assert "lora_rank" not in cfg.explicit
    # the same for the stages' own options (read from the stage records)
    cfg = sf.config_from_form({"stage": "sft", "pref_beta": 0.5, "ppo_epochs": 2, "reward_model": "rm"})
    assert not {"pref_beta", "ppo_epochs", "reward_model"} & cfg.explicit
    cfg = sf.config_from_form({"stage": "kto", "pref_beta": 0.5, "pref_loss": "ipo", "kto_chosen_weight": 2.0})
    assert cfg.preference.pref_beta == 0.5 and cfg.preference.kto_chosen_weight == 2.0
    assert "pref_loss" not in cfg.explicit  # dpo's own
    specs = sf.specs_by_name()
    assert specs["pref_loss"].section == "preference" and specs["pref_loss"].stages == ("dpo",)
    assert specs["ppo_epochs"].section == "ppo" and not sf.applies(specs["ppo_epochs"], "lora", "dpo")


def test_bad_widget_values_are_reported_together():
    with pytest.raises(ConfigError) as e:
        sf.config_from_form({"cutoff_len": "many", "template": None, "lr_scheduler_type": "zigzag"})
    assert len(e.value.problems) == 2 and "cutoff_len" in str(e.value) and "zigzag" in str(e.value)


# ---- the reproducing command --------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    {},
    {"model_name_or_path": "smollm2-135m-instruct", "dataset": "identity", "output_dir": "saves/my run",
     "dataset_vars": {"name": "Aster", "author": "Blue Fern Labs"}, "learning_rate": 0.005, "max_steps": 15,
     "lora_target": "q_proj,v_proj", "default_system": "You're \"helpful\"; be brief.", "packing": False,
     "warmup_ratio": 0.1, "adam_epsilon": 1e-9, "quantization_bit": 4},
    {"finetuning_type": "prefix", "num_virtual_tokens": 8, "prefix_projection": True, "template": "chatml",
     "num_train_epochs": 0.5, "save_total_limit": 2, "dataset_vars": {"name": "小云", "author": "果园"}},
    # the GPU count (nproc_per_node) and the engine: the spawned `tuneforge train` starts the processes itself
    {"nproc_per_node": 2, "fsdp": "full_shard auto_wrap", "fsdp_config": {"activation_checkpointing": True},
     "ddp_timeout": 600},
])
def test_preview_command_parses_back_to_the_same_config(tmp_path, values):
    cfg = build_config(values)
    cmd = sf.preview_command(cfg)
    argv = shlex.split(cmd)
    assert argv[:2] == ["tuneforge", "train"]
    assert parse_args(argv[2:]).to_flat() == cfg.to_flat()
    # …and equals the config.yaml a run saves (what `tuneforge train <out>/config.yaml` reads).
    saved = tmp_path / "config.yaml"
    saved.write_text(cfg.to_yaml(), encoding="utf-8")
    assert parse_args(argv[2:]).to_flat() == parse_args([str(saved)]).to_flat()
    assert len(argv) == 2 + 2 * len([k for k, v in cfg.to_flat().items() if v != Config().to_flat()[k]])


def test_dataset_vars_that_a_command_line_cannot_carry_are_refused():
    assert sf.check_mapping_text("name=Aster,author=Blue Fern") is None
    assert "key=value" in sf.check_mapping_text("name=Aster,Blue Fern")


# ---- paths --------------------------------------------------------------------------------------------------------

def test_paths_are_confined_to_the_root(tmp_path):
    root = tmp_path / "work"
    (root / "saves").mkdir(parents=True)
    assert confine("saves/run", root) == (root / "saves/run").resolve()
    assert confine(str(root / "saves"), root) == (root / "saves").resolve()
    assert relative(confine("./saves/../saves/run", root), root) == "saves/run"
    for bad in ("../outside", "/etc/passwd", "saves/../../x", "~/x"):
        with pytest.raises(TuneforgeError) as e:
            confine(bad, root, "output_dir")
        assert "outside the working folder" in e.value.message and "--root" in e.value.hint
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "link")
    with pytest.raises(TuneforgeError):
        confine("link/file", root)  # a symlink out of the root is refused too
    with pytest.raises(TuneforgeError):
        confine("  ", root)


def test_ui_config_paths_are_confined_and_written_relative(tmp_path):
    from tuneforge.webui import actions

    ctx = actions.Context(tmp_path, RunManager(tmp_path))
    cfg = build_config({"output_dir": str(tmp_path / "saves" / "a"), "dataset_dir": "data"})
    actions._confine_paths(cfg, tmp_path)
    assert cfg.train.output_dir == "saves/a" and cfg.data.dataset_dir == "data"
    bad = build_config({"output_dir": "../escape", "adapter_name_or_path": "ok,/tmp/elsewhere",
                        "model_name_or_path": "smollm2-135m-instruct"})
    with pytest.raises(ConfigError) as e:
        actions._confine_paths(bad, ctx.root)
    assert len(e.value.problems) == 2  # output_dir and the second adapter; the alias is not a path


# ---- launch rules -------------------------------------------------------------------------------------------------

def test_loopback_by_default_other_addresses_and_share_need_auth(tmp_path):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"):
        assert is_loopback(host)
        check_launch(host, False, [])
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(TuneforgeError) as e:
            check_launch(host, False, [])
        assert "--auth" in e.value.hint
        check_launch(host, False, [("u", "p")])
    with pytest.raises(TuneforgeError, match="--share"):
        check_launch("127.0.0.1", True, [])
    check_launch("127.0.0.1", True, [("u", "p")])


def test_auth_from_flag_and_file(tmp_path):
    f = tmp_path / "users.txt"
    f.write_text("# users\nalice:s3cret:with:colons\n\nbob:pw\n")
    assert parse_auth("admin:pw", str(f)) == [("admin", "pw"), ("alice", "s3cret:with:colons"), ("bob", "pw")]
    for bad in ("nopassword", ":pw", "user:"):
        with pytest.raises(TuneforgeError, match="user:password"):
            parse_auth(bad, None)
    with pytest.raises(TuneforgeError, match="no such file"):
        parse_auth(None, str(tmp_path / "missing"))


def test_cli_refuses_a_public_address_without_auth(capsys):
    from tuneforge.cli import main

    assert main(["webui", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "needs a login" in err and "--auth user:password" in err
    assert main(["webui", "--share"]) == 2
    assert main(["webui", "--prot", "80"]) == 2
    err = capsys.readouterr().err
    assert "webui does not take --prot" in err and "'--port'" in err and "'80'" not in err
    assert main(["webui", "--port", "x", "--root", "r"]) == 2
    err = capsys.readouterr().err
    assert "--port must be a whole number" in err
    assert main(["webui", "--port", "8080", "--lang", "fr"]) == 2  # --lang is the CLI's global flag
    assert "--lang must be en or zh, got 'fr'" in capsys.readouterr().err


# ---- English / 中文 ------------------------------------------------------------------------------------------------

def test_every_ui_string_has_both_languages():
    for key, entry in STRINGS.items():
        assert set(entry) == {"en", "zh"}, key
        assert entry["en"].strip() and entry["zh"].strip(), key
        # the same placeholders in both languages
        import string

        names = [{f for _, f, _, _ in string.Formatter().parse(entry[lang]) if f} for lang in ("en", "zh")]
        assert names[0] == names[1], key


def test_every_key_the_code_uses_exists():
    from tuneforge.config.messages import CATALOG

    used, msgs = set(), set()
    for py in WEBUI_SRC.glob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("t", "Msg") and node.args and \
                    isinstance(node.args[0], ast.Constant):
                (used if node.func.id == "t" else msgs).add(node.args[0].value)
    assert used and not sorted(used - set(STRINGS))
    assert msgs and not sorted(msgs - set(CATALOG))  # the UI's own Msgs, or the config checks' shared shapes
    # keys built at run time: sections and states
    for spec in sf.field_specs():
        assert "sec_" + spec.section.replace(":", "_") in CATALOG, spec.section  # STRINGS, or a group's own
    for state in ("idle", "running", "finished", "failed", "aborted"):
        assert f"state_{state}" in STRINGS


def test_every_schema_field_in_the_ui_has_a_chinese_label_and_help():
    shown = sf.field_specs(tuple(GROUPS))
    missing = [s.name for s in shown if field_zh(s.name) is None]
    assert not missing, f"add Chinese label/help to webui/i18n.py FIELD_ZH (or the group's zh) for: {missing}"
    assert field_label("oft_rank", "zh") == "OFT 块数 · oft_rank"  # a method's own group carries its Chinese
    spec = sf.specs_by_name()["learning_rate"]
    assert field_label("learning_rate", "zh") == "学习率 · learning_rate" and field_label("learning_rate", "en") == \
        "Learning rate · learning_rate"  # friendly labels in English too, with the setting's name
    assert field_label("model_name_or_path", "en") == "Base model · model_name_or_path"
    assert field_label("lora_rank", "en") == "LoRA rank · lora_rank" and field_label("bf16", "en") == "bf16"
    assert field_help(spec, "en") == spec.help and field_help(spec, "zh") == "峰值学习率。"
    assert t("progress_steps", "zh", step=3, total=9) == "第 3/9 步"


def test_errors_the_ui_raises_are_catalogued():
    """No plain or f-string message in a TuneforgeError the page can show (launch.py's go to the terminal)."""
    errors = {"TuneforgeError", "ConfigError", "DataError", "ModelError"}
    bad = []
    for py in sorted(WEBUI_SRC.glob("*.py")):
        if py.name == "launch.py":
            continue
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in errors:
                args = [a for arg in node.args for a in (arg.elts if isinstance(arg, ast.List) else [arg])]
                bad += [f"{py.name}:{node.lineno}" for a in args if isinstance(a, (ast.Constant, ast.JoinedStr))]
    assert not bad, bad


def test_messages_in_the_page_follow_the_language(tmp_path):
    """A real bad config through the UI's own path, shown in 中文 and in English."""
    from tuneforge.webui import actions

    ctx = actions.Context(tmp_path, RunManager(tmp_path))
    values = {"model_name_or_path": "smollm2-135m-instruct", "dataset": ["identity"], "output_dir": "saves/x",
              "learning_rate": -0.001, "lora_rank": 0}
    with pytest.raises(ConfigError) as e:
        actions.resolve(ctx, values)
    zh, en = error_text(e.value, "zh"), error_text(e.value, "en")
    assert "learning_rate 必须 > 0，当前为 -0.001" in zh and "lora_rank 必须 ≥ 1，当前为 0" in zh
    assert "learning_rate must be > 0, got -0.001" in en and "配置" not in en
    assert "learning_rate 必须 &gt; 0，当前为 -0.001" in actions.error_html(e.value, "zh")
    # the message box keeps a language-free record (a gr.State, deep-copied per session) to re-render on a switch
    import copy

    shown = copy.deepcopy(actions.note(e.value))
    assert actions.note_html(shown, "zh") == actions.error_html(e.value, "zh")
    assert actions.note_html(shown, "en") == actions.error_html(e.value, "en")
    ok = copy.deepcopy(actions.note(actions.Msg("msg_saved", path="a.yaml")))
    assert "参数已保存到 a.yaml" in actions.note_html(ok, "zh") and "saved to a.yaml" in actions.note_html(ok, "en")
    with pytest.raises(ConfigError) as e:
        actions.resolve(ctx, {**values, "learning_rate": 1e-4, "lora_rank": 8, "finetuning_type": "lorra"})
    zh = error_text(e.value, "zh")
    assert "finetuning_type：'lorra' 不是可选值之一：full, freeze, lora" in zh, zh
    # the UI's own errors: a path outside the working folder, with its fix
    with pytest.raises(TuneforgeError) as e:
        actions.save_args(ctx, values, "../elsewhere.yaml")
    zh = error_text(e.value, "zh")
    assert "参数文件 '../elsewhere.yaml' 位于工作目录" in zh and "提示" in zh and "--root" in zh
    assert "arguments file '../elsewhere.yaml' is outside the working folder" in error_text(e.value, "en")


# ---- rendering ----------------------------------------------------------------------------------------------------

def test_loss_curve_progress_and_preview_html():
    svg = loss_svg([(1, 2.0), (2, 1.5), (3, 0.7)], "en", [(3, 1.0)])
    assert 'data-points="3"' in svg and svg.count("<circle") == 4 and "evaluation loss" in svg
    assert 'data-points="0"' in loss_svg([], "zh") and "损失曲线" in loss_svg([], "zh")
    st = Status("running", step=5, total=20, tokens_per_s=141.2, eta_s=75, checkpoints=["checkpoint-4"])
    html = progress_html(st, "en")
    assert 'data-state="running"' in html and "width:25.0%" in html and "step 5/20" in html
    assert "141 tokens/s" in html and "ETA 1m15s" in html and "checkpoint-4" in html
    zh = progress_html(st, "zh")
    assert "训练中" in zh and "第 5/20 步" in zh and "141 token/秒" in zh and "预计剩余 1 分 15 秒" in zh
    assert "最新检查点 checkpoint-4" in zh
    text = "user: hi <b>\nassistant: I am Aster"
    offs = [(0, 4), (4, 5), (5, 8), (8, 12), (12, 13), (13, 23), (23, 25), (25, 27), (27, 30), (30, 36)]
    sup = [False] * 7 + [True] * 3
    out = preview_sample_html(text, offs, sup, cutoff=9, source="identity.json:1", lang="en")
    assert 'data-supervised="2"' in out and "&lt;b&gt;" in out and '<del class="tf-cut">' in out
    assert out.count('<mark class="tf-sup">') == 2


# ---- RunManager ---------------------------------------------------------------------------------------------------

FAKE_TRAINER = """#!/bin/sh
# stands in for `python -m tuneforge --lang en train CONFIG`: a child process that would outlive a plain kill of its
# parent; CONFIG is the last argument
for a; do last=$a; done
sleep 300 &
echo "child $!" > "$(dirname "$last")/child.pid"
echo "step 3/10 · loss 1.0"
sleep 300
"""


def test_run_manager_spawns_refuses_a_second_job_and_aborts_the_whole_tree(tmp_path):
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_TRAINER)
    fake.chmod(0o755)
    mgr = RunManager(tmp_path, python=str(fake))
    cfg = build_config({"output_dir": "saves/x", "model_name_or_path": "m", "dataset": "identity"})
    job = mgr.start(cfg)
    out = tmp_path / "saves/x"
    assert (out / "config.yaml").is_file() and (out / ".webui-job.json").is_file()
    assert parse_args([str(out / "config.yaml")]).to_flat() == cfg.to_flat()
    deadline = time.time() + 10
    while not (out / "child.pid").is_file() and time.time() < deadline:
        time.sleep(0.05)
    child = int((out / "child.pid").read_text().split()[1])
    with pytest.raises(TuneforgeError, match="already writing to") as e:
        mgr.start(cfg)

    assert f"已有训练任务（进程 {job.pid}）正在写入" in error_text(e.value, "zh")
    # A second manager (another UI process, or a restarted one) sees the job through the lock file.
    other = RunManager(tmp_path, python=str(fake))
    assert other.current() is not None and other.current().pid == job.pid
    with pytest.raises(TuneforgeError, match="already writing to"):
        other.start(cfg)
    time.sleep(0.3)
    st = mgr.status(out)
    assert st.state == "running" and (st.step, st.total) == (3, 10)
    assert mgr.abort(out, grace_s=5)
    time.sleep(0.2)
    for pid in (job.pid, child):  # the whole process group is gone, not just the leader (a zombie counts as gone)
        assert not _alive(pid), pid
    assert mgr.status(out).state == "aborted" and not (out / ".webui-job.json").exists()
    assert "aborted; last complete checkpoint: none" in (out / "train.log").read_text()
    assert not mgr.abort(out)


def test_status_reads_metrics_and_summary(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 1, "loss": 2.0, "tokens_per_s": 100.0, "elapsed": 2.0},
        {"step": 2, "loss": 1.0, "tokens_per_s": 120.0, "elapsed": 4.0}]) + '{"step": 3, "lo')
    (out / "train.log").write_text("step 2/8 · loss 1.0\n")
    st = RunManager(tmp_path).status(out)
    assert st.loss == [(1, 2.0), (2, 1.0)] and st.tokens_per_s == 120.0 and st.total == 8
    assert st.eta_s == pytest.approx(12.0) and st.state == "idle"  # no job here, no summary yet
    (out / "run_summary.json").write_text(json.dumps({"completed": True, "steps": 8, "tokens_per_s": 130.0}))
    st = RunManager(tmp_path).status(out)
    assert st.state == "finished" and st.step == 8 and st.tokens_per_s == 130.0


def test_questions_file_lines_and_jsonl(tmp_path):
    from tuneforge.webui.actions import read_questions

    f = tmp_path / "q.txt"
    f.write_text('Who are you?\n\n{"question": "你是谁？"}\n'
                 '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, '
                 '{"role": "user", "content": "What is your name?"}]}\n')
    assert read_questions(f) == ["Who are you?", "你是谁？", "What is your name?"]
    f.write_text('{"messages": []}\n')
    with pytest.raises(TuneforgeError, match="q.txt:1: no question"):
        read_questions(f)


# ---- 中文 beyond the Train form: data rows, model loading, chat/eval status, the CLI subprocesses ------------------

def test_a_bad_dataset_row_in_the_data_preview_is_shown_in_chinese(tmp_path, tiny_model, monkeypatch):
    """The Train tab's data preview on a real dataset with bad rows: the page's message is Chinese, row by row."""
    import shutil

    from tuneforge.webui import actions

    shutil.copytree(tiny_model, tmp_path / "model")
    monkeypatch.chdir(tmp_path)  # the UI runs in its working folder
    (tmp_path / "data").mkdir()
    rows = [{"instruction": "Hi", "output": "Hello"}, {"instruction": "Who are you?"},
            {"messages": [{"role": "assistant", "content": "first"}]}]
    (tmp_path / "data" / "mine.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.jsonl"}}))
    ctx = actions.Context(tmp_path, RunManager(tmp_path))
    values = {"model_name_or_path": "model", "dataset_dir": "data", "dataset": ["mine"], "output_dir": "saves/x"}
    with pytest.raises(TuneforgeError) as e:
        actions.preview_data(ctx, values, "zh")
    shown = actions.note(e.value)  # what on_preview_data keeps for a language switch
    zh, en = actions.note_html(shown, "zh"), actions.note_html(shown, "en")
    assert "数据集 &#x27;mine&#x27;：2 行有问题" in zh, zh
    assert "mine.jsonl:2：该行没有 &#x27;output&#x27;（要学习的回复）" in zh
    assert "mine.jsonl:3：第 1 条消息是位于开头的助手轮次" in zh and "请修正这些行（尚未进行任何训练）" in zh
    assert "2 bad row(s)" in en and "row has no &#x27;output&#x27; (the reply to learn)" in en and "行" not in en
    # the same dataset without the bad rows previews fine (the error came from the rows, not the setup)
    (tmp_path / "data" / "mine.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert "tf-preview" in actions.preview_data(ctx, values, "zh")


def test_chat_and_eval_messages_are_language_free_and_render_in_both(tmp_path, monkeypatch):
    """Load/reply/evaluate report Msgs (kept in a gr.State and re-rendered on a language switch), and a model that
    cannot be loaded is explained in 中文."""
    from tuneforge.models.load import resolve_model_path
    from tuneforge.webui import actions

    monkeypatch.chdir(tmp_path)
    ctx = actions.Context(tmp_path, RunManager(tmp_path))
    with pytest.raises(TuneforgeError) as e:
        next(ctx.chat.reply("hi", [], [], None, False, {}, "zh"))
    shown = actions.note(e.value)
    assert "尚未加载模型" in actions.note_html(shown, "zh") and "No model loaded" in actions.note_html(shown, "en")
    with pytest.raises(TuneforgeError) as e:
        ctx.chat.evaluate(ctx, "", None, "", None, {}, "en")
    assert "尚未加载模型" in actions.note_html(actions.note(e.value), "zh")
    (tmp_path / "no-adapter").mkdir()
    with pytest.raises(ConfigError) as e:
        ctx.chat.load(ctx, "smollm2-135m-instruct", ["no-adapter"], "auto", False, "zh")
    zh = actions.note_html(actions.note(e.value), "zh")
    assert "no-adapter" in zh and "adapter_config.json" in zh and "适配器" in zh, zh
    with pytest.raises(TuneforgeError) as e:
        resolve_model_path(str(tmp_path / "no-adapter"))  # what ChatEngine raises for a folder that is no model
    zh = error_text(e.value, "zh")
    assert "中没有 config.json" in zh and "请检查 model_name_or_path" in zh, zh
    ok = actions.note(actions.Msg("msg_model_loaded", model="m", adapters=actions.Msg("none")))
    assert "已加载 m，适配器：" in actions.note_html(ok, "zh") and "Loaded m with adapters:" in actions.note_html(ok, "en")


def test_the_cli_speaks_the_language_the_ui_runs_it_in(monkeypatch, capsys, tmp_path):
    """Training and export run as CLI subprocesses with the global flag --lang set to the page's language (shown in
    the command the page previews); their errors (the log tail, the export log) come out in it. Without it the CLI
    is English, byte for byte as before. No environment variable is read."""
    from tuneforge.cli import main
    from tuneforge.webui import actions

    argv = ["train", "--model_name_or_path", "smollm2-135m-instruct", "--dataset", "identity", "--output_dir", "o",
            "--learning_rate", "-0.001"]
    assert main(argv) == 2
    en = capsys.readouterr().err
    assert en == "error: 1 configuration problem:\n  - learning_rate must be > 0, got -0.001\n"
    monkeypatch.setenv("TUNEFORGE_LANG", "zh")  # gone: settings come from flags
    assert main(argv) == 2 and capsys.readouterr().err == en
    for where in (["--lang", "zh", *argv], [*argv, "--lang=zh"]):
        assert main(where) == 2
        zh = capsys.readouterr().err
        assert zh.startswith("错误：") and "learning_rate 必须 > 0，当前为 -0.001" in zh, zh
    cfg = build_config({"model_name_or_path": "smollm2-135m-instruct", "dataset": "identity", "output_dir": "o"})
    assert actions.command(cfg, "zh").startswith("tuneforge --lang zh train ")
    assert actions.command(cfg, "en").startswith("tuneforge train ")
    started = []

    class Child:  # what RunManager.start spawns, recorded instead of run
        pid = 1

        def __init__(self, argv, **kw):
            started.append((argv, kw["env"]))

        def wait(self):
            return 0

    monkeypatch.setattr("subprocess.Popen", Child)
    monkeypatch.delenv("TUNEFORGE_LANG")
    RunManager(tmp_path, python=sys.executable).start(build_config({"output_dir": str(tmp_path / "run")}), "zh")
    (argv, env), = started
    assert argv[1:6] == ["-m", "tuneforge", "--lang", "zh", "train"] and "TUNEFORGE_LANG" not in env
    assert "-m tuneforge --lang zh train" in (tmp_path / "run" / "train.log").read_text()


def test_chat_and_eval_status_boxes_re_render_on_a_language_switch(tmp_path, monkeypatch):
    """The app's own handlers: the Chat and Evaluate status boxes keep a language-free record that the language
    switch renders again (like the Train tab's message box)."""
    pytest.importorskip("gradio")  # installed by the README's test command (.[test,webui])
    from tuneforge.webui.app import build_app

    monkeypatch.chdir(tmp_path)
    demo = build_app(tmp_path, "zh")
    fn = {f.fn.__name__: f for f in demo.fns.values() if getattr(f.fn, "__name__", None)}
    lang_switch = fn["on_lang"]
    assert [b.elem_id for b in lang_switch.outputs[:3]] == ["tf-message", "chat-status", "eval-summary"]
    html_zh, chat_note = fn["on_load_model"].fn("zh", "no/such/model", [], "auto", False)
    assert "目录不存在" in html_zh
    (*_, status_zh, send_note, _), = list(fn["on_send"].fn("zh", "hi", [], [], None, False))
    assert "尚未加载模型" in status_zh
    _, eval_zh, eval_note = fn["on_eval"].fn("zh", "Who are you?", "", None, "", "", None)
    assert "尚未加载模型" in eval_zh
    out = lang_switch.fn("en", None, None, chat_note, eval_note)
    assert "no such folder" in out[1] and "No model loaded" in out[2], out[:3]
    out = lang_switch.fn("zh", None, None, send_note, eval_note)
    assert "尚未加载模型" in out[1] and "尚未加载模型" in out[2]


def test_only_tabs_sit_directly_under_the_tab_bar(tmp_path):
    """Gradio 6 numbers a Tabs' children in order: anything else there (a State, a Timer) takes a tab's place, and
    selecting the next tab then shows it twice (the browser saw 'Train, Chat, Chat, Export' after a click on Chat)."""
    import gradio as gr

    from tuneforge.webui.app import build_app

    demo = build_app(tmp_path, "en")
    bars = [b for b in demo.blocks.values() if isinstance(b, gr.Tabs)]
    assert bars
    for bar in bars:
        assert bar.children and all(isinstance(c, gr.Tab) for c in bar.children), \
            [type(c).__name__ for c in bar.children]


def test_evaluate_scores_identity_and_general_questions_apart(tmp_path):
    """Identity questions: the name in the reply (tuned and base). General questions: of those the base answers
    right, kept / lost by the tuned model — each list scored on its own, both in one summary, in both languages."""
    from tuneforge.webui import actions

    class Replies:  # a loaded engine that answers from a table (what the models said is the test's input)
        def __init__(self, table):
            self.table = table

        def generate(self, convs, gen, system=None):
            return [self.table[c[-1]["content"]] for c in convs]

    ctx = actions.Context(tmp_path, RunManager(tmp_path))
    ctx.chat.tuned = Replies({"Who are you?": "I am Aster.", "Your name?": "Aster, by Blue Fern Labs.",
                              "Capital of France?": "Paris.", "Days in a week?": "Aster!", "2+2?": "4"})
    ctx.chat.base = Replies({"Who are you?": "I am an AI assistant.", "Your name?": "SmolLM.",
                             "Capital of France?": "It is Paris.", "Days in a week?": "Seven days.", "2+2?": "5"})
    general = "Capital of France? | Paris\nDays in a week? | 7; seven\n2+2? | 4"
    rows, summary = ctx.chat.evaluate(ctx, "Who are you?\nYour name?", None, "Aster", None, {}, "en", general)
    assert [r[3] for r in rows] == ["✔", "✔", "kept ✔", "lost ✘", "base wrong ✔"]
    en = summary.render("en")
    assert "“Aster”: 2/2 (100%) tuned; base: 0/2" in en
    assert "keeps 1 of the 2 the base answered right (of 3); lost: Days in a week?" in en
    assert "基座答对的 2 个（共 3 个）中，微调后仍答对 1 个；丢失：Days in a week?" in summary.render("zh")
    rows, summary = ctx.chat.evaluate(ctx, "", None, "", None, {}, "en", general)  # general questions alone
    assert len(rows) == 3 and summary.id == "msg_general_kept"
    with pytest.raises(TuneforgeError) as e:
        ctx.chat.evaluate(ctx, "", None, "", None, {}, "en", "Capital of France?")
    assert "question | accepted answer" in str(e.value)
