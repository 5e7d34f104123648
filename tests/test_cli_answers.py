"""Clear answers to common mistakes: each says what is actually wrong and how to fix it, before anything loads."""

from __future__ import annotations

import pytest

from tuneforge.config import build_config, parse_args
from tuneforge.config.messages import tr
from tuneforge.errors import ConfigError
from tuneforge.recipes.preflight import preflight


def problems(fn, *args) -> list:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return list(e.value.problems) if hasattr(e.value, "problems") else [str(e.value)]


def text(fn, *args) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return str(e.value)


def test_bare_flag_takes_true_only_for_switches():
    msg = text(parse_args, ["--output_dir", "x", "--learning_rate"])
    assert "learning_rate: given with no value" in msg and "takes a number, e.g. --learning_rate 5e-05" in msg
    assert "'true'" not in msg  # not the old "expected a number, got 'true'"
    msg = text(parse_args, ["--learning_rate", "--plot_loss", "True"])  # the next token is a flag: no value
    assert "given with no value" in msg
    assert parse_args(["--plot_loss", "--output_dir", "x"]).train.plot_loss is True  # a bare switch is True


def test_method_names_that_are_options_of_lora():
    msg = text(parse_args, ["--finetuning_type", "qlora"])
    assert "'qlora' is not one of" in msg and "--finetuning_type lora --quantization_bit 4" in msg
    assert "--use_dora True" in text(parse_args, ["--finetuning_type", "dora"])
    assert "did you mean 'lora'?" in text(parse_args, ["--finetuning_type", "lroa"])
    assert "did you mean" not in text(parse_args, ["--finetuning_type", "xyz"])  # only where one fits


def test_output_dir_that_is_a_file_is_a_config_error(tmp_path, tiny_model, data_dir):
    f = tmp_path / "afile"
    f.write_text("x")
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir))
    msg = text(preflight, build_config({**base, "output_dir": str(f)}))
    assert f"output_dir '{f}' is a file, not a folder" in msg
    msg = text(preflight, build_config({**base, "output_dir": str(f / "run")}))
    assert "cannot be created" in msg and f"'{f}' is a file" in msg
    msg = text(preflight, build_config({**base, "export_dir": str(f)}), False)
    assert f"export_dir '{f}' is a file" in msg


def test_lora_target_typo_is_found_from_the_weights_headers(tiny_model, data_dir, tmp_path):
    cfg = build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                            output_dir=str(tmp_path / "o"), lora_target="q_proj,vproj"))
    msg = text(preflight, cfg)
    assert "lora_target names vproj" in msg and "did you mean 'v_proj'?" in msg
    assert "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj" in msg  # not the embedding or head
    preflight(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo",
                                dataset_dir=str(data_dir), output_dir=str(tmp_path / "o"),
                                lora_target="q_proj,v_proj")))


def test_new_messages_in_chinese():
    with pytest.raises(ConfigError) as e:
        parse_args(["--finetuning_type", "qlora", "--learning_rate"])
    zh = "\n".join(tr(p, "zh") for p in e.value.problems)
    assert "QLoRA 就是在量化底座上训练 LoRA" in zh and "没有给出值" in zh and "一个数字" in zh


def test_estimate_advice_leaves_out_what_is_already_on():
    from tuneforge.estimate.memory import Plan, advice

    on = advice(Plan(gradient_checkpointing=True, liger=True, optim="adamw_8bit", batch=4))
    assert "gradient_checkpointing" not in on and "enable_liger_kernel" not in on and "adamw_8bit" not in on
    assert "enable_activation_offloading" in on and "qlora4" in on
    off = advice(Plan())
    assert off.startswith("gradient_checkpointing") and "enable_liger_kernel" in off


# ---- help, version, pipes -------------------------------------------------------------------------------------------

def tf(*args, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, timeout=120,
                          **kw)


@pytest.mark.parametrize("command, needles", [
    ("chat", ["usage: tuneforge chat", "--prompts", "--temperature", "--adapter_name_or_path"]),
    ("export", ["usage: tuneforge export", "--export_dir", "--export_dtype", "Modelfile"]),
    ("estimate", ["usage: tuneforge estimate", "--gpu", "--gradient_checkpointing", "tuneforge train --help"]),
    ("score", ["usage: tuneforge score", "--pairs", "--adapter_name_or_path"]),
    ("train", ["usage: tuneforge train", "--learning_rate", "--lora_rank"]),
    ("webui", ["usage: tuneforge webui", "--auth-file"]),
    ("env", ["usage: tuneforge env"]),
    ("version", ["usage: tuneforge version"]),
])
def test_every_command_has_its_own_help(command, needles):
    r = tf(command, "--help")
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    for n in needles:
        assert n in r.stdout, (command, n)
    assert "usage:\n  tuneforge train" not in r.stdout  # not the global usage


def test_version():
    from tuneforge import __version__

    assert tf("version").stdout.strip() == f"tuneforge {__version__}"
    assert tf("--version").stdout.strip() == __version__


def test_help_into_a_closed_pipe_prints_no_traceback():
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "tuneforge", "train", "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.read(200)  # like `| head -3`: read a little, then go away
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
