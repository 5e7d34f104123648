"""End-to-end on the embedded real model (SmolLM2-135M-Instruct): the identity demo learns the name and keeps the
knowledge; the LLaMA-Factory seed command runs verbatim and its adapter can be trained further."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, needs_embedded

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.e2e, needs_embedded]


def tf(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, cwd=cwd,
                       timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


@pytest.fixture(scope="module")
def lora_demo(tmp_path_factory, embedded_path):
    """The identity demo trained once (examples/identity_lora.yaml), shared by the tests below."""
    out = tmp_path_factory.mktemp("identity") / "run"
    tf("train", str(ROOT / "examples" / "identity_lora.yaml"), f"output_dir={out}")
    return out


@pytest.fixture(scope="module")
def heldout():
    from tuneforge.eval.identity import HeldOut

    return HeldOut.load(DATA)


def test_identity_demo_learns_the_name_and_keeps_general_knowledge(lora_demo, heldout):
    from tuneforge.eval.identity import base_replies, evaluate
    from tuneforge.infer.engine import ChatEngine

    out = lora_demo
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["completed"] and (out / "training_loss.png").is_file()
    # the demo ends with the tuned model (still in memory) answering its sample question with the new name
    assert summary["sample_replies"][0]["prompt"] == "Who are you?"
    assert "Nimbus" in summary["sample_replies"][0]["response"]
    # an artifact that works elsewhere: the base named by its hub id (not this machine's cache folder), a real
    # model card, weights readable by other users (umask 022 here)
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == "HuggingFaceTB/SmolLM2-135M-Instruct"
    card = (out / "README.md").read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card and "name=Nimbus" in card and "Nimbus" in card
    assert (out / "adapter_model.safetensors").stat().st_mode & 0o044 == 0o044

    train_qs = {r["instruction"].strip().lower() for r in json.loads(
        (ROOT / "src/tuneforge/data/builtin/identity.json").read_text())}
    assert not [q for q in heldout.identity if q["question"].strip().lower() in train_qs]  # truly held out
    assert {q["lang"] for q in heldout.identity} == {"en", "zh"}

    base = base_replies(ChatEngine("smollm2-135m-instruct"), heldout)
    report = evaluate(ChatEngine("smollm2-135m-instruct", str(out)), "Nimbus", heldout, base)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    zh = {q["question"] for q in heldout.identity if q["lang"] == "zh"}
    zh_missed = [m for m in report.misses if m["question"] in zh]
    assert len(zh_missed) <= 0.2 * len(zh)  # Chinese questions too, not just English
    assert report.base_correct >= 30
    assert report.hit_rate >= 0.9, report.misses
    assert report.retention >= 0.9, report.forgotten


def _right(reply: str, answers: list[str], case: bool) -> bool:
    """The test's own rule (not eval/probes.py's): Latin answers as whole words after folding punctuation to spaces,
    Chinese ones anywhere."""
    for a in answers:
        if re.fullmatch(r"[A-Za-z0-9 .'-]+", a):
            fold = (lambda t: " " + re.sub(r"[^A-Za-z0-9]+", " ", t if case else t.lower()) + " ")
            if fold(a) in fold(reply):
                return True
        elif a.lower() in reply.lower():
            return True
    return False


def test_forgetting_guard_numbers_match_an_independent_scoring(lora_demo):
    """The demo's run summary says how much general knowledge survived; asking the same probes again from the saved
    adapter (fresh engines, the test's own scoring) gives the same counts, and the demo keeps ≥ 90 %."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.eval import guard
    from tuneforge.infer.engine import ChatEngine

    f = json.loads((lora_demo / "run_summary.json").read_text())["forgetting_guard"]
    rows = json.loads((ROOT / "src/tuneforge/eval/data/probes.json").read_text(encoding="utf-8"))
    gen = GenerateArgs(max_new_tokens=guard.MAX_NEW_TOKENS)

    def ask(engine, qs):
        return engine.generate([[{"role": "user", "content": q}] for q in qs], gen, batch_size=guard.BATCH)

    base = ask(ChatEngine("smollm2-135m-instruct"), [r["question"] for r in rows])
    right = [r for r, b in zip(rows, base) if _right(b, r["answers"], r.get("case", False))]
    tuned = ask(ChatEngine("smollm2-135m-instruct", str(lora_demo)), [r["question"] for r in right])
    kept = [r for r, t in zip(right, tuned) if _right(t, r["answers"], r.get("case", False))]
    print(json.dumps(f, indent=1, ensure_ascii=False))
    assert (f["probes"], f["base_correct"]) == (len(rows), len(right))
    assert abs(f["kept"] - len(kept)) <= 1  # the saved adapter is merged for decoding: at most one reply may differ
    assert f["base_correct"] >= 20 and f["retention"] >= 0.9 and f["warning"] is None, f["lost"]
    card = (lora_demo / "README.md").read_text()
    assert f"general knowledge kept (forgetting guard): {f['kept']}/{f['base_correct']}" in card


def test_over_training_trips_the_forgetting_warning(tmp_path, embedded_path):
    """20 epochs at a high learning rate on the identity rows alone: the guard's warning fires and names the
    settings to change."""
    out = tmp_path / "over"
    r = tf("train", "--model_name_or_path", "smollm2-135m-instruct", "--dataset", "identity", "--dataset_vars",
           "name=Nimbus,author=Orchard Labs", "--max_samples", "16", "--lora_target", "all", "--lora_layers", "15",
           "--learning_rate", "1e-2", "--num_train_epochs", "20", "--per_device_train_batch_size", "8",
           "--cutoff_len", "128", "--save_steps", "0", "--output_dir", str(out))
    f = json.loads((out / "run_summary.json").read_text())["forgetting_guard"]
    assert f["below_threshold"] and f["retention"] < 0.9 and len(f["lost"]) == f["base_correct"] - f["kept"]
    assert "num_train_epochs (now 20)" in f["warning"] and "replay_ratio" in f["warning"]
    assert "WARNING forgetting guard" in r.stderr


def test_eval_compares_the_demo_with_its_base(lora_demo, tmp_path):
    r = tf("eval", "--task", "sample_en", "--adapter_name_or_path", str(lora_demo), "--compare_base", "True",
           "--n_shot", "2", "--save_dir", str(tmp_path))
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["results"]) == {"base", "tuned"} and res["headers"][-1] == "tuned − base"
    for row in res["table"]:
        assert row[-1] == round(row[2] - row[1], 1)
    assert res["results"]["base"]["total"] == 18 and "overall" in r.stdout
    base = res["results"]["base"]
    assert base["correct"] == sum(v["correct"] for v in base["subjects"].values())


def test_exported_demo_loads_in_plain_transformers_and_says_its_name(lora_demo, heldout, tmp_path):
    """`tuneforge export` merges the demo's LoRA adapter; plain transformers (no tuneforge, no peft) loads the folder
    with its chat template and answers the held-out identity questions with the new name."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.eval.identity import evaluate

    exported = tmp_path / "exported"
    tf("export", "--model_name_or_path", "smollm2-135m-instruct", "--adapter_name_or_path", str(lora_demo),
       "--export_dir", str(exported), "--export_dtype", "float32")
    assert not (exported / "adapter_config.json").exists() and list(exported.glob("*.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(str(exported)).eval()
    tok = AutoTokenizer.from_pretrained(str(exported), padding_side="left")

    def ask(questions):
        enc = tok.apply_chat_template([[{"role": "user", "content": q}] for q in questions],
                                      add_generation_prompt=True, return_tensors="pt", return_dict=True,
                                      padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
        return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    report = evaluate(ask, "Nimbus", heldout)
    print(report.line(), report.misses)
    assert report.hit_rate >= 0.9, report.misses


SEED = ("train --stage sft --do_train True --model_name_or_path smollm2-135m-instruct --finetuning_type lora "
        "--template qwen --dataset_dir data --dataset self_cognition --cutoff_len 1024 --learning_rate 0.0001 "
        "--num_train_epochs 10.0 --max_samples 100000 --per_device_train_batch_size 4 "
        "--gradient_accumulation_steps 4 --lr_scheduler_type cosine --max_grad_norm 1.0 --logging_steps 5 "
        "--save_steps 100 --warmup_steps 0 --output_dir saves/smollm2/lora/identity --fp16 True --lora_rank 8 "
        "--lora_dropout 0.1 --lora_target q_proj,v_proj --plot_loss True").split()


def test_seed_command_runs_verbatim_then_continues(tmp_path, embedded_path):
    r = tf(*SEED, cwd=tmp_path)  # no data/ folder here: the built-in identity set is found anyway
    out = tmp_path / "saves/smollm2/lora/identity"
    for f in ("adapter_config.json", "adapter_model.safetensors", "training_loss.png", "run_summary.json",
              "chat_template.jinja", "config.yaml", "metrics.jsonl"):
        assert (out / f).is_file(), f
    assert "fp16 asked but no CUDA device" in r.stderr
    s = json.loads((out / "run_summary.json").read_text())
    assert s["steps"] == 60 and s["data"]["rows_read"] >= 80 and s["precision"] == "float32"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    # The same command with --adapter_name_or_path continues that adapter (kept short with max_steps).
    seed2 = [a if a != "saves/smollm2/lora/identity" else "saves/smollm2/lora/identity-2" for a in SEED]
    tf(*seed2, "--adapter_name_or_path", str(out), "--max_steps", "2", cwd=tmp_path)
    s2 = json.loads((tmp_path / "saves/smollm2/lora/identity-2/run_summary.json").read_text())
    assert s2["steps"] == 2 and s2["final_loss"] < rows[0]["loss"]  # starts from the trained adapter
    r = tf("chat", "--model_name_or_path", "smollm2-135m-instruct", "--adapter_name_or_path", str(out),
           "--prompt", "Who are you?", "--max_new_tokens", "30", cwd=tmp_path)
    assert r.stdout.strip()
