"""LLaMA-Factory training settings implemented here: the other lr schedules (equal to transformers' step by step),
the other optimizers, save_only_model, disable_gradient_checkpointing, mix_strategy interleave_under/over, and LF's
generation defaults for chat from an LF-style config."""

from __future__ import annotations

import json

import pytest
import torch

from tuneforge.config import build_config, parse_args
from tuneforge.config.lf_keys import LF_GENERATION, apply_lf_generation_defaults
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.recipes import run
from tuneforge.recipes.preflight import preflight
from tuneforge.train.optim import Schedule, build_optimizer

SCHEDULES = [
    ("cosine_with_restarts", {"num_cycles": "2"}),
    ("polynomial", {"power": "2.0", "lr_end": "1e-5"}),
    ("inverse_sqrt", {}),
    ("cosine_with_min_lr", {"min_lr_rate": "0.1"}),
    ("cosine_with_min_lr", {"min_lr": "1e-4"}),
    ("cosine_warmup_with_min_lr", {"min_lr_rate": "0.05"}),
    ("warmup_stable_decay", {"num_decay_steps": "8", "decay_type": "linear", "min_lr_ratio": "0.1"}),
    ("warmup_stable_decay", {"num_decay_steps": "6"}),
]


@pytest.mark.parametrize("kind,kwargs", SCHEDULES)
def test_schedules_match_transformers_step_by_step(kind, kwargs):
    from transformers import get_scheduler

    total, warmup, lr = 30, 4, 1e-3
    ours_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    theirs_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    ours = Schedule(ours_opt, kind, warmup, total, kwargs)
    hf_kwargs = {k: (v if k.endswith("_type") else float(v)) for k, v in kwargs.items()}
    for k in ("num_decay_steps",):
        if k in hf_kwargs:
            hf_kwargs[k] = int(hf_kwargs[k])
    theirs = get_scheduler(kind, theirs_opt, num_warmup_steps=warmup, num_training_steps=total,
                           scheduler_specific_kwargs=hf_kwargs)
    for step in range(total + 1):
        assert ours.get_last_lr()[0] == pytest.approx(theirs.get_last_lr()[0], rel=1e-9, abs=1e-15), (kind, step)
        ours.step()
        theirs_opt.step()
        theirs.step()


def test_schedule_options_are_checked_before_training(tiny_model, data_dir, tmp_path):
    cfg = build_config({"model_name_or_path": str(tiny_model), "dataset": "alpaca_demo", "dataset_dir": str(data_dir),
                        "output_dir": str(tmp_path / "o"), "lr_scheduler_type": "cosine_with_min_lr",
                        "lr_scheduler_kwargs": "num_cycles=x,power=2"})
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    text = str(e.value)
    assert "needs exactly one of min_lr or min_lr_rate" in text and "'power' does not apply" in text
    assert "num_cycles='x': expected a number" in text


@pytest.mark.parametrize("optim,cls", [("adagrad", "Adagrad"), ("rmsprop", "RMSprop"), ("adafactor", "Adafactor")])
def test_other_optimizers_are_the_classes_trainer_uses_and_they_step(optim, cls):
    model = torch.nn.Linear(4, 4)
    cfg = build_config({"optim": optim, "learning_rate": 0.01, "weight_decay": 0.1})
    opt = build_optimizer(model, cfg.train, cfg)
    assert type(opt).__name__ == cls
    if optim == "adafactor":
        assert opt.defaults["relative_step"] is False and opt.defaults["scale_parameter"] is False
    before = model.weight.detach().clone()
    model(torch.ones(2, 4)).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


def test_save_only_model_checkpoints_hold_weights_only_and_refuse_resume(tiny_model, data_dir, tmp_path):
    out = tmp_path / "run"
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-2, max_steps=2, save_steps=1,
                save_only_model=True, logging_steps=1)
    run(build_config(base))
    ckpt = out / "checkpoint-1"
    files = {p.name for p in ckpt.iterdir()}
    assert "trainable.safetensors" in files and "optimizer.safetensors" not in files and "optimizer.json" not in files
    assert json.loads((ckpt / "trainer_state.json").read_text())["model_only"] is True
    with pytest.raises(TuneforgeError) as e:
        run(build_config({**base, "resume_from_checkpoint": str(ckpt), "max_steps": 3}))
    assert "save_only_model" in e.value.message and "overwrite_output_dir" in e.value.hint


def test_disable_gradient_checkpointing_wins():
    cfg = build_config({"gradient_checkpointing": True, "disable_gradient_checkpointing": True})
    assert cfg.train.gradient_checkpointing is False
    assert build_config({"gradient_checkpointing": True}).train.gradient_checkpointing is True


def test_mix_strategies():
    from tuneforge.data.build import _mix

    a, b = [1, 2, 3, 4], ["x", "y"]
    assert _mix([a, b], "concat") == [1, 2, 3, 4, "x", "y"]
    assert _mix([a, b], "interleave") == [1, "x", 2, "y", 3, 4]
    assert _mix([a, b], "interleave_under") == [1, "x", 2, "y"]
    assert _mix([a, b], "interleave_over") == [1, "x", 2, "y", 3, "x", 4, "y"]


def test_lf_style_chat_takes_lf_generation_defaults(tmp_path):
    lf = tmp_path / "infer.yaml"
    lf.write_text("model_name_or_path: m\ntemplate: qwen\ninfer_backend: huggingface\ntemperature: 0.3\n")
    cfg = parse_args([str(lf)], command="chat")
    apply_lf_generation_defaults(cfg)
    g = cfg.generate
    assert (g.do_sample, g.top_p, g.top_k, g.max_new_tokens) == (True, LF_GENERATION["top_p"], 50, 1024)
    assert g.temperature == 0.3  # what the file sets wins
    own = build_config({"model_name_or_path": "m"}, command="chat")
    apply_lf_generation_defaults(own)
    assert own.generate.do_sample is None and own.generate.max_new_tokens == 256  # tuneforge's greedy default


def test_generation_keys_reach_generate(tiny_model):
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine

    engine = ChatEngine(str(tiny_model), dtype="float32")
    kw = engine.gen_kwargs(GenerateArgs(num_beams=3, length_penalty=0.5, max_length=64, max_new_tokens=4))
    assert kw["num_beams"] == 3 and kw["length_penalty"] == 0.5 and kw["max_length"] == 64
    (beam,) = engine.generate([[{"role": "user", "content": "Who are you?"}]],
                              GenerateArgs(num_beams=2, max_new_tokens=4))
    assert isinstance(beam, str)


def _four_layer_model(tmp_path):
    from conftest import build_tiny_model

    return build_tiny_model(tmp_path / "m4", layers=4)


@pytest.mark.parametrize("method", ["freeze", "lora"])
def test_llama_pro_layers(tmp_path, method):
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import apply_method
    from tuneforge.adapters.llama_pro import expanded_layers

    assert expanded_layers(8, 2) == [3, 7] and expanded_layers(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ConfigError) as e:
        expanded_layers(6, 4)
    assert "must split into freeze_trainable_layers=4 equal blocks" in str(e.value)
    cfg = build_config({"finetuning_type": method, "use_llama_pro": True, "freeze_trainable_layers": 2})
    from tuneforge.config import validate

    assert not [p for p in validate(cfg, for_training=False) if "freeze_trainable_layers" in p]
    model = apply_method(AutoModelForCausalLM.from_pretrained(str(_four_layer_model(tmp_path))), cfg, [])
    trained = {int(n.split("layers.")[1].split(".")[0]) for n, p in model.named_parameters()
               if p.requires_grad and "layers." in n}
    assert trained == {1, 3}


def test_pure_bf16_trains_in_bfloat16(tiny_model, data_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    res = run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                                output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-2, max_steps=2,
                                save_steps=0, pure_bf16=True, logging_steps=1)))
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights and all(t.dtype == torch.bfloat16 for t in weights.values())
    assert res.summary["final_loss"] == res.summary["final_loss"]  # not NaN


def test_use_muon_steps_and_its_state_round_trips(tiny_model, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from tuneforge.train.optimizers import MuonWithAdamW

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    cfg = build_config({"finetuning_type": "full", "use_muon": True, "learning_rate": 0.02, "weight_decay": 0.01})
    opt = build_optimizer(model, cfg.train, cfg)
    assert isinstance(opt, MuonWithAdamW) and opt.muon.param_groups and opt.adamw.param_groups
    w = dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"]
    before = w.detach().clone()
    ids = torch.tensor([[1, 5, 9, 11, 3]])
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    assert not torch.equal(before, w)
    again = MuonWithAdamW([{"params": opt.muon.param_groups[0]["params"]}],
                          [{"params": g["params"]} for g in opt.adamw.param_groups], cfg.train)
    again.load_state_dict(opt.state_dict())
    a, b = opt.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and len(a["state"]) == len(b["state"]) > 0
    # a whole run, with a resumable checkpoint written by the loop
    out = tmp_path / "run"
    res = run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                                output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-3, max_steps=2,
                                save_steps=1, finetuning_type="full", use_muon=True, logging_steps=1)))
    assert res.summary["completed"] and (out / "checkpoint-1" / "optimizer.json").is_file()
    res = run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                                output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-3, max_steps=3,
                                save_steps=1, finetuning_type="full", use_muon=True, logging_steps=1,
                                resume_from_checkpoint=str(out / "checkpoint-1"))))
    assert res.summary["resumed_from"] and res.summary["steps"] == 3


def test_report_to_wandb_logs_the_run_offline(tiny_model, data_dir, tmp_path, monkeypatch):
    """report_to wandb through W&B's own client, offline: the run's records land in its .wandb file."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                          output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-2, max_steps=2,
                          save_steps=0, report_to="wandb", logging_steps=1)))
    (log_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    data = log_file.read_bytes()
    assert b"train/loss" in data and b"train/grad_norm" in data and b"train/tokens_per_s" in data


@pytest.mark.parametrize("kind", ["galore", "apollo"])
def test_galore_and_apollo_train_and_resume_with_their_projectors(tiny_model, data_dir, tmp_path, kind):
    """use_galore / use_apollo through pytorch-optimizer: the projected weights change, and a checkpoint (the
    projector state stored as tensors + plain values) resumes into the same optimizer state."""
    pytest.importorskip("pytorch_optimizer")
    from tuneforge.train.optimizers import projector_load_state, projector_state_dict

    out = tmp_path / "run"
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-3, max_steps=2, save_steps=1,
                finetuning_type="full", logging_steps=1, **{f"use_{kind}": True, f"{kind}_rank": 4,
                                                            f"{kind}_update_interval": 1, f"{kind}_target": "mlp"})
    res = run(build_config(base))
    assert res.summary["completed"] and res.summary["final_loss"] == res.summary["final_loss"]
    meta = json.loads((out / "checkpoint-1" / "optimizer.json").read_text())
    assert any("projector_rank" in entry for entry in meta["state"].values())
    res = run(build_config({**base, "max_steps": 3, "resume_from_checkpoint": str(out / "checkpoint-1")}))
    assert res.summary["resumed_from"] and res.summary["steps"] == 3
    # the round trip itself: a projector survives state_dict → load
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    cfg = build_config({"finetuning_type": "full", f"use_{kind}": True, f"{kind}_rank": 4, f"{kind}_target": "mlp"})
    opt = build_optimizer(model, cfg.train, cfg)
    ids = torch.tensor([[1, 5, 9, 11, 3]])
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sd = opt.state_dict()
    again = projector_load_state(projector_state_dict(sd) if any("projector" in e for e in sd["state"].values())
                                 else sd)
    proj = [e["projector"] for e in again["state"].values() if "projector" in e]
    assert proj and all(p.rank == 4 for p in proj)


def test_galore_needs_a_full_weight_method():
    from tuneforge.recipes.lf_checks import lf_problems

    problems = lf_problems(build_config({"use_galore": True, "finetuning_type": "lora"}))
    assert any("use --finetuning_type full" in p for p in problems)
    problems = lf_problems(build_config({"use_galore": True, "use_muon": True, "finetuning_type": "full"}))
    assert any("alternative optimizers" in p for p in problems)


def test_adam_mini_trains_and_resumes(tiny_model, data_dir, tmp_path):
    pytest.importorskip("pytorch_optimizer")
    out = tmp_path / "run"
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-3, max_steps=2, save_steps=1,
                finetuning_type="full", logging_steps=1, use_adam_mini=True)
    res = run(build_config(base))
    assert res.summary["completed"] and res.summary["final_loss"] == res.summary["final_loss"]
    res = run(build_config({**base, "max_steps": 3, "resume_from_checkpoint": str(out / "checkpoint-1")}))
    assert res.summary["resumed_from"] and res.summary["steps"] == 3
