"""Preference tuning on the tiny model (seconds): data conversion, every loss against hand-computed values, the
reference-with-adapter-disabled property, bad-input errors before any weights load, and short rm/dpo/kto/ppo runs."""

import json
import math

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.data import templates
from tuneforge.data.build import build_data
from tuneforge.errors import ConfigError, DataError, ModelError
from tuneforge.recipes import run
from tuneforge.train.ppo import AdaptiveKL, gae, policy_forward, ppo_losses, response_mask, token_rewards
from tuneforge.train.preference import (PreferenceObjective, collate_pairs, dpo_family_loss, kto_loss,
                                        pairwise_reward_loss, sequence_logps)


def sig(x):
    return 1 / (1 + math.exp(-x))


def logsig(x):
    return math.log(sig(x))


@pytest.fixture()
def pref_dir(tmp_path):
    d = tmp_path / "pref"
    d.mkdir()
    alpaca = [{"instruction": f"Say hi {i}. End with DONE.", "input": "", "chosen": f"Hi {i}. DONE",
               "rejected": f"Hi {i}."} for i in range(8)]
    sharegpt = [{"conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi"},
                                   {"from": "human", "value": "Be polite."}],
                 "chosen": {"from": "gpt", "value": "Certainly, thank you!"},
                 "rejected": {"from": "gpt", "value": "No."}}]
    openai = [{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}],
               "chosen": {"role": "assistant", "content": "Good."}, "rejected": {"role": "assistant", "content": "Bad."}}]
    kto = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}],
            "label": i % 2 == 0} for i in range(4)] + [{"messages": [{"role": "user", "content": "Q"},
                                                                   {"role": "assistant", "content": "A"}],
                                                      "label": "false"}]
    files = {"alpaca.json": alpaca, "sharegpt.json": sharegpt, "openai.json": openai, "kto.json": kto,
             "no_rejected.json": [{"instruction": "x", "chosen": "a"}],
             "same.json": [{"instruction": "x", "chosen": "same", "rejected": " same"}],
             "kto_missing.json": [{"messages": [{"role": "user", "content": "q"},
                                                {"role": "assistant", "content": "a"}]}]}
    for name, rows in files.items():
        (d / name).write_text(json.dumps(rows))
    info = {"p_alpaca": {"file_name": "alpaca.json", "ranking": True},
            "p_sharegpt": {"file_name": "sharegpt.json", "formatting": "sharegpt", "ranking": True,
                           "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
            "p_openai": {"file_name": "openai.json", "formatting": "openai", "ranking": True},
            "p_kto": {"file_name": "kto.json", "formatting": "openai", "columns": {"messages": "messages",
                                                                                  "kto_tag": "label"}},
            "bad_no_rejected": {"file_name": "no_rejected.json", "ranking": True},
            "bad_same": {"file_name": "same.json", "ranking": True},
            "bad_kto": {"file_name": "kto_missing.json", "formatting": "openai"}}
    (d / "dataset_info.json").write_text(json.dumps(info))
    return d


def data_for(tiny_tokenizer, pref_dir, dataset, stage):
    cfg = build_config({"dataset": dataset, "dataset_dir": str(pref_dir), "cutoff_len": 256, "stage": stage})
    fmt = templates.install(tiny_tokenizer, "auto")
    return build_data(cfg.data, stage, tiny_tokenizer, fmt, 0)


# ---- data ---------------------------------------------------------------------------------------------------------

def test_preference_formats_convert_and_only_the_final_reply_is_supervised(tiny_tokenizer, pref_dir):
    data = data_for(tiny_tokenizer, pref_dir, "p_alpaca,p_sharegpt,p_openai", "dpo")
    assert len(data.train) == 10 and data.report["train"]["dropped"] == {}
    for s in data.train:
        c, r = (tiny_tokenizer.decode([t for t in x.labels if t != -100]) for x in (s.chosen, s.rejected))
        assert c != r and c.endswith("<|im_end|>") and r.endswith("<|im_end|>")
    share = data.train[8]
    assert tiny_tokenizer.decode([t for t in share.chosen.labels if t != -100]) == "Certainly, thank you!<|im_end|>"
    assert "Hi<|im_end|>" in tiny_tokenizer.decode(share.chosen.input_ids)  # history kept, not supervised
    assert "<|im_start|>system\nS<|im_end|>" in tiny_tokenizer.decode(data.train[9].rejected.input_ids)


def test_kto_rows_carry_a_boolean_tag(tiny_tokenizer, pref_dir):
    data = data_for(tiny_tokenizer, pref_dir, "p_kto", "kto")
    assert [s.kto_tag for s in data.train] == [True, False, True, False, False]
    assert all(s.rejected is None for s in data.train)


def test_ppo_takes_prompts_from_any_dataset(tiny_tokenizer, pref_dir):
    data = data_for(tiny_tokenizer, pref_dir, "p_alpaca", "ppo")
    text = tiny_tokenizer.decode(data.train[0].prompt_ids)
    assert text.endswith("<|im_start|>assistant\n") and "DONE" in text and data.train[0].chosen is None


@pytest.mark.parametrize("dataset, stage, needles", [
    ("bad_no_rejected", "dpo", ["no 'rejected'", "needs both 'chosen' and 'rejected'"]),
    ("bad_same", "rm", ["are identical", "no preference to learn"]),
    ("bad_kto", "kto", ["no 'kto_tag'", "true for a desirable reply"]),
    ("p_kto", "dpo", ["not a preference dataset", "ranking: true"]),
    ("p_alpaca", "sft", ["is a preference dataset", "rm, dpo, ppo"]),
])
def test_bad_preference_data_is_a_clear_error(tiny_tokenizer, pref_dir, dataset, stage, needles):
    with pytest.raises(DataError) as e:
        data_for(tiny_tokenizer, pref_dir, dataset, stage)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_builtin_demo_sets_are_registered_and_well_formed(tiny_tokenizer):
    fmt = templates.install(tiny_tokenizer, "auto")
    for name, stage, rows in (("format_pref", "dpo", 63), ("format_pref_heldout", "dpo", 24), ("format_sft", "sft", 50),
                              ("format_kto", "kto", 50)):
        cfg = build_config({"dataset": name, "cutoff_len": 512, "stage": stage})
        data = build_data(cfg.data, stage, tiny_tokenizer, fmt, 0)
        assert len(data.train) == rows and data.report["train"]["dropped"] == {}
    assert sum(s.kto_tag for s in data.train) == 25
    from tuneforge.data.catalog import load_catalog

    pref = json.loads(load_catalog(None)["format_pref"].path.read_text())
    assert sum(r["rejected"] == "DONE" for r in pref) == 13  # pairs against the bare word (a reward-hacking guard)
    assert all(r["chosen"].endswith(" DONE") and r["chosen"] != "DONE" for r in pref)


# ---- losses against hand-computed values -------------------------------------------------------------------------

PC, PR, NC, NR, RC, RR = -4.0, -6.0, 2.0, 3.0, -5.0, -5.5
T = lambda x: torch.tensor([x])  # noqa: E731


@pytest.mark.parametrize("kind, expected", [
    ("sigmoid", -logsig(0.1 * ((PC - PR) - (RC - RR)))),
    ("ipo", (((PC / NC - PR / NR) - (RC / NC - RR / NR)) - 1 / (2 * 0.1)) ** 2),
    ("hinge", max(0.0, 1 - 0.1 * ((PC - PR) - (RC - RR)))),
    ("orpo", -(PC / NC) - 0.1 * logsig((PC / NC - PR / NR) - (math.log(1 - math.exp(PC / NC))
                                                              - math.log(1 - math.exp(PR / NR))))),
    ("simpo", -logsig(0.1 * (PC / NC - PR / NR) - 0.5)),
])
def test_dpo_family_losses_match_hand_computed_values(kind, expected):
    loss, rc, rr = dpo_family_loss(kind, T(PC), T(PR), T(NC), T(NR), T(RC), T(RR), beta=0.1, gamma=0.5)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    if kind in ("orpo", "simpo"):
        assert float(rc) == pytest.approx(0.1 * PC / NC)
    else:
        assert float(rc) == pytest.approx(0.1 * (PC - RC)) and float(rr) == pytest.approx(0.1 * (PR - RR))


def test_label_smoothing_and_kto_and_pairwise_losses():
    h = (PC - PR) - (RC - RR)
    loss, _, _ = dpo_family_loss("sigmoid", T(PC), T(PR), T(NC), T(NR), T(RC), T(RR), 0.1, label_smoothing=0.2)
    assert float(loss) == pytest.approx(-0.8 * logsig(0.1 * h) - 0.2 * logsig(-0.1 * h), rel=1e-6)
    pc, rc = torch.tensor([-3.0, -7.0]), torch.tensor([-4.0, -6.0])
    loss, reward, kl = kto_loss(pc, rc, torch.tensor([True, False]), beta=0.5, chosen_weight=2.0,
                                rejected_weight=0.5)
    z = max(0.0, ((-3 + 4) + (-7 + 6)) / 2)
    assert float(kl) == pytest.approx(z)
    assert loss.tolist() == pytest.approx([2.0 * (1 - sig(0.5 * (1 - z))), 0.5 * (1 - sig(0.5 * (z + 1)))])
    assert float(pairwise_reward_loss(T(1.0), T(-0.5))) == pytest.approx(-logsig(1.5))


def test_ppo_pieces_match_hand_computed_values():
    assert response_mask(torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]]), [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards, kl = token_rewards(torch.tensor([2.0]), torch.tensor([[-1.0, -2.0, -9.0]]),
                                torch.tensor([[-1.5, -1.0, -1.0]]), mask, kl_coef=0.1)
    assert kl.tolist() == [[0.5, -1.0, 0.0]] and rewards[0].tolist() == pytest.approx([-0.05, 2.1, 0.0])
    adv, ret = gae(rewards, torch.tensor([[0.5, 1.0, 3.0]]), mask, gamma=1.0, lam=0.5)
    d1 = 2.1 - 1.0  # last real token: no next value
    d0 = -0.05 + 1.0 - 0.5
    assert adv[0].tolist() == pytest.approx([d0 + 0.5 * d1, d1, 0.0]) and ret[0, 1] == pytest.approx(d1 + 1.0)
    lp, old = torch.tensor([[math.log(1.5), 0.0]]), torch.zeros(1, 2)
    loss, s = ppo_losses(lp, old, torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]),
                         torch.zeros(1, 2), torch.ones(1, 2), cliprange=0.2, vf_coef=0.1)
    assert s["pg_loss"] == pytest.approx((-1.2 + 1.0) / 2) and s["clip_fraction"] == pytest.approx(0.5)


def test_adaptive_kl_controller_moves_by_the_rollouts_per_step_over_the_horizon():
    ctl = AdaptiveKL(0.1, target=4.0, horizon=8)
    ctl.update(kl=8.0, n=8)  # error clipped to +0.2; n / horizon = 1
    assert ctl.value == pytest.approx(0.12)
    ctl.update(kl=3.0, n=4)  # error -0.25 → -0.2; n / horizon = 0.5
    assert ctl.value == pytest.approx(0.12 * 0.9)
    slow = AdaptiveKL(0.1, target=4.0)  # TRL's horizon of 10,000 rollouts: 8 rollouts barely move it
    slow.update(kl=100.0, n=8)
    assert slow.value == pytest.approx(0.1 * (1 + 0.2 * 8 / 10000))
    fixed = AdaptiveKL(0.1, target=0.0, horizon=8)
    fixed.update(kl=100.0, n=8)
    restored = AdaptiveKL(0.5, 4.0, 8)
    restored.load_state_dict(ctl.state_dict())
    assert fixed.value == 0.1 and restored.value == ctl.value


def test_rollout_log_probs_are_those_of_the_tempered_distribution(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ids, mask = torch.tensor([[3, 4, 5, 6, 7]]), torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, 1:-1].float()
        lp, _ = policy_forward(model, ids, mask, 2, temperature=0.5)
        full, _ = policy_forward(model, ids, mask, 2, full=True)
    expected = torch.log_softmax(logits / 0.5, -1).gather(-1, ids[:, 2:, None]).squeeze(-1)
    assert torch.allclose(lp, expected, atol=1e-5) and full.shape == (1, 3, logits.shape[-1])
    assert torch.allclose(full.exp().sum(-1), torch.ones(1, 3), atol=1e-4)


def test_ppo_update_takes_one_optimiser_step_per_mini_batch_group(tiny_model):
    """A step's rollouts are split into mini-batches of per_device_train_batch_size (each trimmed to its longest
    reply); every pass takes one optimiser step per gradient_accumulation_steps mini-batches (TRL, LLaMA-Factory)."""
    from types import SimpleNamespace

    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    from tuneforge.train.ppo import Rollout, minibatch, ppo_update
    from tuneforge.train.value_head import PolicyWithValueHead

    torch.manual_seed(0)
    model = PolicyWithValueHead(AutoModelForCausalLM.from_pretrained(tiny_model))
    ids, P = torch.randint(3, 50, (8, 7)), 3
    rmask = torch.ones(8, 4)
    rmask[:2, 2:] = 0  # the first two replies stopped after 2 tokens
    with torch.no_grad():
        lp, values = policy_forward(model.lm, ids, torch.ones_like(ids), P, model.v_head)
    r = Rollout(ids, torch.ones_like(ids), P, rmask, lp, lp - 0.1, values, torch.randn(8), torch.randn(8),
                [str(i) for i in range(8)])
    mb = minibatch(r, slice(0, 2))
    assert mb.input_ids.shape == (2, P + 2) and mb.mask.shape == (2, 2) and mb.responses == ["0", "1"]
    assert minibatch(r, slice(2, 4)).input_ids.shape == (2, 7)
    params = [p for p in model.parameters() if p.requires_grad]
    ft = SimpleNamespace(ppo_whiten_rewards=True, ppo_gamma=1.0, ppo_lam=0.95, ppo_epochs=2, ppo_cliprange=0.2,
                         ppo_vf_coef=0.1)
    before = [p.detach().clone() for p in params]
    stats, kl, _, steps = ppo_update(model, r, 0.05, ft, Accelerator(cpu=True), torch.optim.SGD(params, lr=0.0),
                                     params, 1.0, mini_batch_size=2)
    assert steps == 2 * 4 and kl == pytest.approx(0.35, abs=1e-5)  # 0.1 nats a token: (2 × 0.2 + 6 × 0.4) / 8
    assert all(torch.equal(a, b) for a, b in zip(before, params))  # lr 0: counted, not moved
    assert {"pg_loss", "value_loss", "clip_fraction", "approx_kl"} <= set(stats)
    _, _, _, steps = ppo_update(model, r, 0.05, ft, Accelerator(cpu=True), torch.optim.SGD(params, lr=0.0),
                                params, 1.0, mini_batch_size=2, accumulation=3)
    assert steps == 2 * 2  # 4 mini-batches in groups of 3 and 1


def test_rollout_sampling_seed_is_its_own_and_leaves_the_training_generator_alone():
    """A step's sampling draws from seed + rank + world × step (train/ppo_loop.py): the same seed draws the same,
    another seed differently, and torch's generator (dropout, …) is where it was."""
    from types import SimpleNamespace

    from tuneforge.train.rollout import Actor

    me = SimpleNamespace(device="cpu")
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    with Actor.sampling_seed(me, 11):
        a = torch.rand(3)
    assert torch.equal(torch.random.get_rng_state(), before)
    with Actor.sampling_seed(me, 11):
        b = torch.rand(3)
    with Actor.sampling_seed(me, 12):
        c = torch.rand(3)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_missing_eos_penalty_lowers_only_cut_off_rollouts(tiny_model, tiny_tokenizer):
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM

    from tuneforge.config.schema import GenerateArgs
    from tuneforge.data.encode import PairSample
    from tuneforge.train.rollout import Actor
    from tuneforge.train.value_head import PolicyWithValueHead

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    fmt = templates.install(tiny_tokenizer, "auto")
    scorer = SimpleNamespace(score=lambda convs: [1.0] * len(convs))
    actor = Actor(PolicyWithValueHead(model), model, scorer, tiny_tokenizer, fmt, GenerateArgs(max_new_tokens=2), "cpu",
                  missing_eos_penalty=2.0)
    # Half the vocabulary stops a reply, so that some rollouts finish within 2 tokens and some are cut off.
    actor.stop_ids = list(range(0, model.config.vocab_size, 2))
    actor.sample_kw["eos_token_id"] = actor.stop_ids
    prompts = [PairSample(None, prompt_ids=tiny_tokenizer(f"q{i}")["input_ids"],
                          prompt_messages=[{"role": "user", "content": f"q{i}"}]) for i in range(32)]
    torch.manual_seed(0)
    r = actor.rollout(prompts)
    finished = [any(t % 2 == 0 for t in row) for row in r.input_ids[:, r.prompt_len:].tolist()]
    assert 0 < sum(finished) < 32 and r.raw_scores.tolist() == [1.0] * 32
    assert r.scores.tolist() == [1.0 if f else -1.0 for f in finished] and r.finished.tolist() == finished


# ---- log-probs and the reference ---------------------------------------------------------------------------------

def test_sequence_logps_and_reference_is_the_base_with_the_adapter_off(tiny_model, tiny_tokenizer, pref_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    data = data_for(tiny_tokenizer, pref_dir, "p_alpaca", "dpo")
    batch = collate_pairs(data.train[:3], tiny_tokenizer.pad_token_id)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    logits = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    lab = batch["labels"][:, 1:]
    lp = torch.log_softmax(logits, -1).gather(-1, lab.clamp(min=0)[..., None]).squeeze(-1) * (lab != -100)
    gathered, counts = sequence_logps(base, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert torch.allclose(gathered, lp.sum(1), atol=1e-4) and counts.tolist() == (lab != -100).sum(1).tolist()

    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                            LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    objective = PreferenceObjective(policy, "dpo", build_config({"stage": "dpo"}).preference)
    ref = objective.reference_logps(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert torch.allclose(ref, gathered, atol=1e-4)  # adapter disabled = the base model, no second copy
    own = sequence_logps(policy, batch["input_ids"], batch["attention_mask"], batch["labels"])[0]
    assert not torch.allclose(own, gathered, atol=1e-3)  # the adapter is live outside the reference context
    assert sum(p.numel() for p in policy.parameters()) < 1.2 * sum(p.numel() for p in base.parameters())


# ---- config errors before any weights load ------------------------------------------------------------------------

@pytest.fixture()
def no_weights(monkeypatch):
    import tuneforge.recipes.common as common

    def boom(*a, **k):
        raise AssertionError("weights were loaded before the error was raised")

    monkeypatch.setattr(common, "load_model", boom)


def test_unknown_pref_loss_lists_choices():
    with pytest.raises(ConfigError, match="sigmoid, ipo, hinge, orpo, simpo"):
        build_config({"stage": "dpo", "pref_loss": "kl"})


@pytest.mark.parametrize("kw, needles", [
    ({"stage": "ppo"}, ["--stage ppo needs a reward model", "--reward_model"]),
    ({"stage": "ppo", "reward_model": "REWARD"}, ["no value_head.safetensors", "--stage rm"]),
    ({"stage": "ppo", "ppo_kl_horizon": 0, "ppo_target": -1}, ["ppo_kl_horizon must be ≥ 1",
                                                               "ppo_target must be ≥ 0",
                                                               "--stage ppo needs a reward model"]),
    ({"stage": "sft", "pref_beta": 0.5}, ["pref_beta only apply to --stage dpo / kto"]),
    ({"stage": "dpo", "pref_loss": "ipo", "dpo_label_smoothing": 0.1}, ["applies to pref_loss sigmoid only"]),
    ({"stage": "dpo", "pref_beta": 0}, ["pref_beta must be > 0"]),
    ({"stage": "dpo", "packing": True}, ["packing does not apply to --stage dpo"]),
])
def test_bad_preference_settings_fail_before_loading(tiny_model, pref_dir, tmp_path, no_weights, kw, needles):
    kw = {k: (str(tmp_path) if v == "REWARD" else v) for k, v in kw.items()}  # an existing folder, no value head
    base = dict(model_name_or_path=str(tiny_model), dataset="p_alpaca", dataset_dir=str(pref_dir),
                output_dir=str(tmp_path / "o"))
    with pytest.raises(ConfigError) as e:
        run(build_config({**base, **kw}))
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_bad_preference_rows_fail_before_loading(tiny_model, pref_dir, tmp_path, no_weights):
    with pytest.raises(DataError, match="no 'rejected'"):
        run(build_config(dict(model_name_or_path=str(tiny_model), dataset="bad_no_rejected", stage="dpo",
                              dataset_dir=str(pref_dir), output_dir=str(tmp_path / "o"))))


# ---- short runs on the tiny model ---------------------------------------------------------------------------------

def train(tiny_model, pref_dir, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset="p_alpaca", dataset_dir=str(pref_dir),
                output_dir=str(out), per_device_train_batch_size=4, learning_rate=5e-3, logging_steps=1,
                save_steps=0, seed=3, cutoff_len=256)
    return run(build_config({**base, **kw}))


def metrics(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("pref_loss", ["sigmoid", "ipo", "hinge", "orpo", "simpo"])
def test_every_dpo_variant_trains_and_logs_rewards(tiny_model, pref_dir, tmp_path, pref_loss):
    res = train(tiny_model, pref_dir, tmp_path / pref_loss, stage="dpo", pref_loss=pref_loss, max_steps=12,
                pref_ftx=0.1 if pref_loss == "sigmoid" else 0.0)
    rows = metrics(tmp_path / pref_loss)
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margins"} <= set(rows[0])
    # the tiny model learns to put the chosen reply above the rejected one on its training pairs
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"] and rows[-1]["loss"] < rows[0]["loss"]
    assert res.summary["completed"] and (tmp_path / pref_loss / "adapter_model.safetensors").is_file()


def test_precomputed_reference_gives_the_same_first_step(tiny_model, pref_dir, tmp_path):
    a = train(tiny_model, pref_dir, tmp_path / "a", stage="dpo", max_steps=1)
    b = train(tiny_model, pref_dir, tmp_path / "b", stage="dpo", max_steps=1, precompute_ref_log_probs=True)
    assert a.summary["final_loss"] == pytest.approx(b.summary["final_loss"], abs=1e-5)
    c = train(tiny_model, pref_dir, tmp_path / "c", stage="dpo", max_steps=3, finetuning_type="full",
              precompute_ref_log_probs=True)
    assert c.summary["completed"]


def test_kto_trains_with_its_weights(tiny_model, pref_dir, tmp_path):
    train(tiny_model, pref_dir, tmp_path / "k", stage="kto", dataset="p_kto", max_steps=8, kto_chosen_weight=1.5,
          per_device_train_batch_size=5)  # one batch of 2 desirable and 3 undesirable rows
    rows = metrics(tmp_path / "k")
    # at step 1 the policy is the reference: every row's loss is weight × (1 - sigmoid(0)) = weight / 2
    assert rows[0]["loss"] == pytest.approx((2 * 1.5 * 0.5 + 3 * 1.0 * 0.5) / 5, abs=1e-4)
    assert rows[-1]["loss"] < rows[0]["loss"] and "kl" in rows[0]


def test_reward_model_then_score_then_ppo(tiny_model, pref_dir, tmp_path, capsys):
    from tuneforge.cli import main

    rm = tmp_path / "rm"
    res = train(tiny_model, pref_dir, rm, stage="rm", max_steps=10, val_size=2, finetuning_type="freeze")
    assert (rm / "value_head.safetensors").is_file() and (rm / "model.safetensors").is_file()
    assert "eval_accuracy" in res.summary and "accuracy" in metrics(rm)[0]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Say hi 3. End with DONE.", "chosen": "Hi 3. DONE",
                                 "rejected": "Hi 3."}) + "\n")
    assert main(["score", "--model_name_or_path", str(rm), "--pairs", str(pairs)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["scored"] for r in rows] == ["chosen", "rejected"] and all(isinstance(r["score"], float) for r in rows)

    with pytest.raises(ModelError, match="no value_head.safetensors"):
        from tuneforge.infer.reward import RewardScorer

        RewardScorer(str(tiny_model))
    ppo = tmp_path / "ppo"
    res = train(tiny_model, pref_dir, ppo, stage="ppo", reward_model=str(rm), max_steps=2, max_new_tokens=6,
                ppo_epochs=2, ppo_score_norm=True, ppo_whiten_rewards=True)
    rows = metrics(ppo)
    assert {"reward", "kl", "value_loss", "clip_fraction"} <= set(rows[0]) and len(rows) == 2
    assert (ppo / "ppo_reward.png").is_file() and (ppo / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(__import__("importlib").util.find_spec("bitsandbytes") is None, reason="bitsandbytes missing")
def test_qlora_dpo_and_rm_on_a_4bit_base(pref_dir, tmp_path, tmp_path_factory):
    from conftest import build_tiny_model

    wide = build_tiny_model(tmp_path_factory.mktemp("tiny-64-pref"), width=64)  # bnb blocks of 64
    res = train(wide, pref_dir, tmp_path / "q", stage="dpo", quantization_bit=4, max_steps=10)
    rows = metrics(tmp_path / "q")
    assert res.summary["completed"] and rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    res = train(wide, pref_dir, tmp_path / "qrm", stage="rm", quantization_bit=4, max_steps=3, val_size=2)
    assert (tmp_path / "qrm" / "value_head.safetensors").is_file() and "eval_accuracy" in res.summary


def test_ppo_evaluates_held_out_prompts_and_resumes_from_a_checkpoint(tiny_model, pref_dir, tmp_path):
    """A PPO checkpoint holds everything the next step depends on (adapter, value head, optimiser, KL coefficient,
    score statistics, data order, RNG): a run resumed from checkpoint-2 logs the same steps 3-4 as the run that
    wrote it. Held-out prompts are scored before training (the policy is the reference there: KL exactly 0)."""
    from safetensors.torch import load_file

    rm = tmp_path / "rm"
    train(tiny_model, pref_dir, rm, stage="rm", max_steps=4, finetuning_type="freeze")
    kw = dict(stage="ppo", reward_model=str(rm), max_steps=4, max_new_tokens=6, ppo_epochs=2, ppo_score_norm=True,
              ppo_target=0.01, ppo_kl_horizon=4, val_size=2, per_device_eval_batch_size=2)
    a = tmp_path / "a"
    res = train(tiny_model, pref_dir, a, save_steps=2, **kw)
    rows = metrics(a)
    assert rows[0]["step"] == 0 and rows[0]["eval_kl"] == pytest.approx(0, abs=1e-5) and "reward" not in rows[0]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4] and all("eval_reward" in r for r in rows)
    assert rows[-1]["eval_kl"] > 0 and res.summary["eval_reward_start"] == rows[0]["eval_reward"]
    ck = a / "checkpoint-2"
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["step"] == 2 and {"kl_ctl", "moments", "order", "cursor", "order_rng"} <= set(state)
    assert any(k.startswith("v_head.") for k in load_file(ck / "trainable.safetensors"))
    assert not (a / "checkpoint-4").exists() and (a / "ppo_reward.png").is_file()
    assert rows[3]["kl_coef"] < 0.05  # the controller moved (KL below target): resuming must restore it

    b = tmp_path / "b"
    res_b = train(tiny_model, pref_dir, b, save_steps=2, resume_from_checkpoint=str(ck), **kw)
    resumed = metrics(b)
    assert [r["step"] for r in resumed] == [3, 4] and res_b.summary["resumed_from"] == str(ck)
    for mine, theirs in zip(resumed, rows[3:]):
        for key in ("reward", "kl", "kl_coef", "loss", "value_loss", "eval_reward", "eval_kl"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), (key, mine, theirs)
