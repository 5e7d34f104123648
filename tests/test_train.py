"""Training loop, methods, checkpoints and artifacts on a tiny random Llama (seconds each)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.config import build_config
from tuneforge.recipes import run
from tuneforge.train.checkpoint import list_checkpoints


def cfg_for(tiny_model, data_dir, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), per_device_train_batch_size=2, learning_rate=1e-2, num_train_epochs=1,
                logging_steps=1, save_steps=0, lora_target="all", seed=7)
    base.update(kw)
    return build_config(base)


def trainable(out):
    return load_file(str(out / "adapter_model.safetensors"))


def test_lora_run_writes_native_artifacts_and_loss_falls(tiny_model, data_dir, tmp_path):
    out = tmp_path / "run"
    res = run(cfg_for(tiny_model, data_dir, out, num_train_epochs=6, plot_loss=True, report_to="tensorboard",
                      lora_rank=16))
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "chat_template.jinja",
              "config.yaml", "metrics.jsonl", "run_summary.json", "training_loss.png"):
        assert (out / f).is_file(), f
    assert any((out / "runs").iterdir())
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed"} <= set(rows[0])
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.25  # LoRA on a random 2-layer model learns slowly, but it must learn
    s = res.summary
    assert s["completed"] and s["data"]["rows_read"] == 12 and s["steps"] == 36 and s["tokens_per_s"] > 0
    # plain peft + transformers load the adapter
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(out))
    assert sum(p.numel() for n, p in m.named_parameters() if "lora_" in n) > 0


def test_gradient_accumulation_averages_over_all_tokens(tiny_model, data_dir, tmp_path):
    # One step of batch 4 == one step of 2 micro-batches of 2: same tokens, same average, same update.
    a = run(cfg_for(tiny_model, data_dir, tmp_path / "a", per_device_train_batch_size=4, max_steps=1,
                    lora_dropout=0.0))
    b = run(cfg_for(tiny_model, data_dir, tmp_path / "b", per_device_train_batch_size=2,
                    gradient_accumulation_steps=2, max_steps=1, lora_dropout=0.0))
    assert a.summary["final_loss"] == pytest.approx(b.summary["final_loss"], rel=1e-5)
    wa, wb = trainable(tmp_path / "a"), trainable(tmp_path / "b")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_resume_is_exact(tiny_model, data_dir, tmp_path):
    kw = dict(num_train_epochs=2, lora_dropout=0.1, save_steps=3)  # dropout: the RNG state must resume too
    full = run(cfg_for(tiny_model, data_dir, tmp_path / "full", **kw))
    # The same run, interrupted after step 6: copy its checkpoint into a fresh folder and resume there.
    import shutil

    ck = list_checkpoints(tmp_path / "full")
    assert [c.name for c in ck] == ["checkpoint-3", "checkpoint-6", "checkpoint-9"]
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(ck[1], resumed / "checkpoint-6")
    (resumed / ".tmp-checkpoint-9").mkdir()  # an incomplete checkpoint is ignored
    res = run(cfg_for(tiny_model, data_dir, resumed, **kw))
    assert res.summary["resumed_from"].endswith("checkpoint-6")
    assert res.summary["final_loss"] == pytest.approx(full.summary["final_loss"], rel=1e-5)
    wf, wr = trainable(tmp_path / "full"), trainable(resumed)
    for k in wf:
        torch.testing.assert_close(wf[k], wr[k], rtol=1e-5, atol=1e-7)
    steps = [json.loads(x)["step"] for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(7, 13))
    assert [c.name for c in list_checkpoints(resumed)] == ["checkpoint-6", "checkpoint-9"]


def test_save_total_limit_keeps_the_newest(tiny_model, data_dir, tmp_path):
    run(cfg_for(tiny_model, data_dir, tmp_path / "r", max_steps=5, save_steps=1, save_total_limit=2))
    assert [c.name for c in list_checkpoints(tmp_path / "r")] == ["checkpoint-3", "checkpoint-4"]


def test_finished_run_is_not_silently_redone(tiny_model, data_dir, tmp_path):
    from tuneforge.errors import TuneforgeError

    out = tmp_path / "r"
    run(cfg_for(tiny_model, data_dir, out, max_steps=1))
    with pytest.raises(TuneforgeError, match="already holds a finished run"):
        run(cfg_for(tiny_model, data_dir, out, max_steps=1))
    assert run(cfg_for(tiny_model, data_dir, out, max_steps=1, overwrite_output_dir=True)).summary["completed"]


def test_continue_training_an_adapter(tiny_model, data_dir, tmp_path):
    run(cfg_for(tiny_model, data_dir, tmp_path / "a", max_steps=2))
    first = trainable(tmp_path / "a")
    run(cfg_for(tiny_model, data_dir, tmp_path / "b", max_steps=2, adapter_name_or_path=str(tmp_path / "a")))
    second = trainable(tmp_path / "b")
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("extra", [
    {"use_rslora": True}, {"use_dora": True}, {"loraplus_lr_ratio": 16.0}, {"pissa_init": True, "pissa_iter": 2},
    {"additional_target": "embed_tokens", "lora_target": "q_proj,v_proj"},
])
def test_lora_variants_train(tiny_model, data_dir, tmp_path, extra):
    res = run(cfg_for(tiny_model, data_dir, tmp_path / "v", max_steps=2, **extra))
    assert res.summary["steps"] == 2 and res.summary["final_loss"] > 0
    cfg = json.loads((tmp_path / "v" / "adapter_config.json").read_text())
    if "use_dora" in extra:
        assert cfg["use_dora"]
    if "use_rslora" in extra:
        assert cfg["use_rslora"]
    if "pissa_init" in extra:  # saved converted to plain LoRA for the original base (rank 2r, same scaling)
        assert cfg["r"] == 16 and cfg["lora_alpha"] == 32 and cfg["init_lora_weights"] is True


def test_pissa_adapter_is_saved_for_the_original_base(tiny_model, tmp_path):
    """PiSSA trains on a residual base (W - s*B0*A0). The saved adapter must give the trained model's outputs on the
    original, unmodified base — what chat and export load. Saved as trained, peft re-derives the residual on load
    with a fresh randomized SVD (pissa_iter > 0, the default 16), which is not the one the adapter trained on."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import apply_method, save_trained
    from tuneforge.config import build_config

    torch.manual_seed(0)
    model = apply_method(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                         build_config({"pissa_init": True, "pissa_iter": 2, "lora_rank": 4}), [])
    with torch.no_grad():  # stands in for training: move every adapter weight
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    x = torch.randint(3, 100, (2, 12))
    want = model(input_ids=x).logits
    save_trained(model, tmp_path / "pissa")
    model.save_pretrained(str(tmp_path / "raw"))  # as saved before the fix

    def on_original(path):
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
        return PeftModel.from_pretrained(base, str(path)).eval()(input_ids=x).logits

    assert torch.allclose(on_original(tmp_path / "pissa"), want, atol=1e-4)
    assert not torch.allclose(on_original(tmp_path / "raw"), want, atol=1e-2)


def test_freeze_trains_only_chosen_layers(tiny_model, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "f"
    run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                          output_dir=str(out), finetuning_type="freeze", freeze_trainable_layers=1,
                          freeze_trainable_modules="mlp", learning_rate=1e-2, max_steps=3, save_steps=0)))
    before = AutoModelForCausalLM.from_pretrained(str(tiny_model)).state_dict()
    after = load_file(str(out / "model.safetensors"))
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.layers.1.mlp.") for k in changed)


def test_full_finetuning_learns_and_saves_a_model(tiny_model, data_dir, tmp_path):
    out = tmp_path / "full"
    res = run(build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                                output_dir=str(out), finetuning_type="full", learning_rate=3e-3, num_train_epochs=8,
                                per_device_train_batch_size=3, save_steps=0, val_size=0.25, eval_steps=2,
                                logging_steps=2)))
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("eval_loss" in r for r in rows)
    assert rows[-1]["eval_loss"] < rows[0]["eval_loss"] * 0.85 and res.summary["eval_loss"] == pytest.approx(rows[-1]["eval_loss"], abs=1e-5)


def test_bad_lora_target_lists_available(tiny_model, data_dir, tmp_path):
    from tuneforge.errors import ConfigError

    with pytest.raises(ConfigError, match="q_proj"):
        run(cfg_for(tiny_model, data_dir, tmp_path / "x", lora_target="query_key_value"))


def test_saved_config_reproduces_the_run(tiny_model, data_dir, tmp_path):
    from tuneforge.config import parse_args

    first = run(cfg_for(tiny_model, data_dir, tmp_path / "one", max_steps=3, lora_dropout=0.1))
    again = run(parse_args([str(tmp_path / "one" / "config.yaml"), f"output_dir={tmp_path / 'two'}"]))
    assert again.summary["final_loss"] == pytest.approx(first.summary["final_loss"], rel=1e-6)
    wa, wb = trainable(tmp_path / "one"), trainable(tmp_path / "two")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_sample_prompts_are_answered_by_the_tuned_model_at_the_end(tiny_model, data_dir, tmp_path, capsys):
    """The in-memory answers equal what `tuneforge chat` (a fresh load, adapter merged) answers afterwards."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine

    questions = ["Who are you?", "Name a colour, please."]
    res = run(cfg_for(tiny_model, data_dir, tmp_path / "run", max_steps=3, sample_prompts=questions,
                      max_new_tokens=6))
    replies = res.summary["sample_replies"]
    assert [r["prompt"] for r in replies] == questions
    saved = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert saved["sample_replies"] == replies
    assert f"Q: {questions[1]}" in capsys.readouterr().out
    fresh = ChatEngine(str(tiny_model), str(tmp_path / "run"))
    assert fresh.generate([[{"role": "user", "content": q}] for q in questions],
                          GenerateArgs(max_new_tokens=6)) == [r["response"] for r in replies]


def test_sample_prompts_accept_one_question_a_json_list_or_a_yaml_list(tiny_model, data_dir, tmp_path):
    from tuneforge.config.validate import prompt_list, validate

    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(tmp_path))
    one = build_config({**base, "sample_prompts": "Who are you, really?"})
    assert prompt_list(one.train.sample_prompts) == ["Who are you, really?"]  # a comma does not split it
    from_yaml = build_config({**base, "sample_prompts": ["Hi, there", "你是谁？"]})
    assert prompt_list(from_yaml.train.sample_prompts) == ["Hi, there", "你是谁？"]
    bad = build_config({**base, "sample_prompts": '["unclosed"'})
    assert any(p.startswith("sample_prompts: not one question or a JSON list") for p in validate(bad))
    assert any("non-empty string" in p for p in validate(build_config({**base, "sample_prompts": '["", 3]'})))
