"""End-to-end preference tuning on the embedded model (SmolLM2-135M-Instruct), on the built-in format_pref task
(the prompt asks to end the reply with the word DONE; the base model does not) and held-out pairs of our own:

* rm: ≥ 80% pairwise accuracy on held-out pairs (a fresh value head is at chance);
* dpo, each pref_loss (sigmoid, ipo, hinge, orpo, simpo): the share of held-out pairs where the tuned model gives the
  chosen reply a higher log-prob than the rejected one rises clearly over the base model's, and general-knowledge
  answers survive;
* ppo, as LLaMA-Factory runs the RLHF pipeline (a short sft on demonstrations, the rm above, then ppo continuing the
  SFT adapter): the mean reward of greedy replies to held-out prompts rises clearly while the KL to the reference
  stays bounded, and the replies that earn it answer the question and then say DONE (not the bare word).
Lean recipes (few steps, short replies): the seven cases took ~7.5 minutes together on a 2-core CPU (the five dpo
cases 3.1, ppo 3.3)."""

import json
from pathlib import Path

import pytest
import torch

from conftest import DATA, needs_embedded
from tuneforge.config import build_config
from tuneforge.recipes import run

pytestmark = [pytest.mark.e2e, needs_embedded]
ROOT = Path(__file__).resolve().parent.parent
BUILTIN, EXAMPLES = ROOT / "src/tuneforge/data/builtin", ROOT / "examples"
HELD = json.loads((BUILTIN / "format_pref_heldout.json").read_text())  # eval_dataset=format_pref_heldout


def example(name: str, out, *overrides: str):
    """Run examples/<name>.yaml as the README does, writing to ``out`` (plus ``overrides``, key=value)."""
    from tuneforge.config import parse_args

    return run(parse_args([str(EXAMPLES / f"{name}.yaml"), f"output_dir={out}", "forgetting_guard=False",
                           *overrides]))  # these tests score general answers themselves; the guard (tested in test_e2e_identity) would ask again


def train(out, **kw):
    base = dict(model_name_or_path="smollm2-135m-instruct", dataset="format_pref", output_dir=str(out),
                finetuning_type="lora", lora_rank=8, per_device_train_batch_size=4, logging_steps=2, save_steps=0,
                seed=1, forgetting_guard=False)  # these tests score general answers themselves; the guard (tested in test_e2e_identity) would ask again
    return run(build_config({**base, **kw}))


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    """examples/rm_lora.yaml."""
    out = tmp_path_factory.mktemp("rm") / "run"
    return out, example("rm_lora", out).summary


def test_reward_model_ranks_held_out_pairs(reward_model):
    out, summary = reward_model
    train_prompts = {r["instruction"] for name in ("format_pref", "format_sft", "format_kto")
                     for r in json.loads((BUILTIN / f"{name}.json").read_text())}
    assert not [h for h in HELD if h["instruction"] in train_prompts]  # truly held out
    assert summary["eval_pairs"] == len(HELD)
    assert summary["eval_accuracy"] >= 0.8, summary
    assert (out / "value_head.safetensors").is_file()
    # The pairs against the bare word: an answer that ends with DONE beats "DONE" alone (measured: on all 24, by ≥ 1.3).
    from tuneforge.infer.reward import RewardScorer

    scorer = RewardScorer("smollm2-135m-instruct", str(out))
    chosen = scorer.score_pairs([(h["instruction"], h["chosen"]) for h in HELD])
    bare = scorer.score_pairs([(h["instruction"], "DONE") for h in HELD])
    assert sum(c > b for c, b in zip(chosen, bare)) >= 0.9 * len(HELD)


def pair_logps(model, tokenizer, fmt):
    from tuneforge.data.convert import to_preference
    from tuneforge.data.catalog import DatasetEntry
    from tuneforge.data.encode import EncodeStats, encode_preference
    from tuneforge.train.preference import collate_pairs, sequence_logps

    entry = DatasetEntry("h", DATA, ranking=True)
    samples = [encode_preference(fmt, tokenizer, to_preference(entry, r, "dpo"), "dpo", 512, EncodeStats())
               for r in HELD]
    b = collate_pairs(samples, tokenizer.pad_token_id)
    with torch.no_grad():
        lp = sequence_logps(model, b["input_ids"], b["attention_mask"], b["labels"])[0]
    return lp[: len(HELD)], lp[len(HELD):]


GENERAL = json.loads((DATA / "general_heldout.json").read_text())[:24]


def ask(engine) -> list[str]:
    from tuneforge.config.schema import GenerateArgs

    return engine.generate([[{"role": "user", "content": g["question"]}] for g in GENERAL],
                           GenerateArgs(max_new_tokens=24), batch_size=24)


@pytest.fixture(scope="module")
def dpo_base():
    """The base model's log-probs of the held-out pairs and its general answers, computed once for every variant."""
    from tuneforge.data import templates
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.models import load_model, load_tokenizer, resolve_model_path

    path = resolve_model_path("smollm2-135m-instruct")
    tok = load_tokenizer(path)
    fmt = templates.install(tok, "auto")
    model = load_model(path, torch.float32).eval()
    base_c, base_r = pair_logps(model, tok, fmt)
    return {"model": model, "tok": tok, "fmt": fmt, "frac": float((base_c > base_r).float().mean()),
            "replies": ask(ChatEngine("smollm2-135m-instruct"))}


@pytest.mark.parametrize("pref_loss", ["sigmoid", "ipo", "hinge", "orpo", "simpo"])
def test_dpo_prefers_the_chosen_reply_and_keeps_general_knowledge(dpo_base, tmp_path, pref_loss):
    """The same lean recipe for every loss (LLaMA-Factory's defaults: pref_beta 0.1, simpo_gamma 0.5)."""
    from peft import PeftModel

    from tuneforge.eval.identity import score
    from tuneforge.infer.engine import ChatEngine

    out = tmp_path / pref_loss
    res = train(out, stage="dpo", pref_loss=pref_loss, pref_beta=0.1, learning_rate=5e-4, max_steps=8)
    assert res.summary["completed"]
    tuned = PeftModel.from_pretrained(dpo_base["model"], str(out)).eval()
    tuned_c, tuned_r = pair_logps(tuned, dpo_base["tok"], dpo_base["fmt"])
    tuned.unload()  # the shared base model without this adapter again
    base_frac, tuned_frac = dpo_base["frac"], float((tuned_c > tuned_r).float().mean())
    print(f"{pref_loss}: held-out pairs ranked right: base {base_frac:.0%}, tuned {tuned_frac:.0%}")
    assert base_frac <= 0.2  # the base model cannot already solve the task
    assert tuned_frac >= base_frac + 0.5

    report = score("-", [], [], GENERAL, dpo_base["replies"], ask(ChatEngine("smollm2-135m-instruct", str(out))))
    print(report.line(), json.dumps(report.to_dict()["forgotten"], indent=1))
    assert report.base_correct >= 12 and report.retention >= 0.9


def test_ppo_raises_the_held_out_reward_with_bounded_kl(reward_model, tmp_path):
    """examples/sft_format_lora.yaml (2 sft steps on format_sft; alone they do not move the held-out reward), then
    examples/ppo_lora.yaml (6 ppo steps of 32 rollouts) against the reward model above. Measured (2026-12-03, per-step sampling seeds of #17): held-out greedy reward
    −2.71 → +0.34 (step 3) → +0.50 (step 6), 20 of 24 replies end with DONE after an answer; KL to the reference
    ≤ 10.9 nats per reply (docs/benchmarks.md)."""
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine

    rm_out, _ = reward_model
    sft, ppo = tmp_path / "sft", tmp_path / "ppo"
    example("sft_format_lora", sft)
    res = example("ppo_lora", ppo, f"adapter_name_or_path={sft}", f"reward_model={rm_out}", "save_steps=0")
    rows = [json.loads(x) for x in (ppo / "metrics.jsonl").read_text().splitlines()]
    held = [(r["step"], r["eval_reward"], r["eval_kl"]) for r in rows if "eval_reward" in r]
    print("held-out (step, reward, kl):", held, "rollout kl:", [r["kl"] for r in rows if "kl" in r])
    assert [h[0] for h in held] == [0, 3, 6]
    assert held[-1][1] >= held[0][1] + 2.0  # of the ~3.7 points between a rejected and a chosen reply
    assert res.summary["eval_reward"] == held[-1][1] and (ppo / "ppo_reward.png").is_file()
    kls = [r["kl"] for r in rows if "kl" in r] + [h[2] for h in held]
    assert max(kls) <= 12.0, kls  # bounded: the controller raised its coefficient once KL passed the target of 4
    coefs = [r["kl_coef"] for r in rows if "kl_coef" in r]
    assert coefs[-1] > min(coefs)

    replies = ChatEngine("smollm2-135m-instruct", str(ppo)).generate(
        [[{"role": "user", "content": h["instruction"]}] for h in HELD], GenerateArgs(max_new_tokens=16),
        batch_size=24)
    answered = [r for r in replies if r.rstrip(". ").endswith("DONE") and len(r.split()) >= 4]
    print(json.dumps(replies, indent=1))
    assert len(answered) >= 0.6 * len(HELD), replies
