"""Prompt-based methods (prefix, ptuning, ptuning_v2, prompt) on a tiny random Llama: the loss goes through the
PeftModel's forward with the virtual tokens accounted for, they learn, resume exactly, save a peft-native adapter and
chat unmerged."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.adapters import mergeable
from tuneforge.config import build_config
from tuneforge.recipes import run
from tuneforge.train.checkpoint import list_checkpoints

METHODS = ["prefix", "ptuning", "ptuning_v2", "prompt"]
LR = {"prefix": 3e-2, "ptuning": 3e-2, "ptuning_v2": 1e-1, "prompt": 1e-1}
PEFT_TYPE = {"prefix": "PREFIX_TUNING", "ptuning_v2": "PREFIX_TUNING", "ptuning": "P_TUNING",
             "prompt": "PROMPT_TUNING"}


def cfg_for(tiny_model, data_dir, out, method, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo", dataset_dir=str(data_dir),
                output_dir=str(out), finetuning_type=method, num_virtual_tokens=4, per_device_train_batch_size=2,
                learning_rate=3e-2, num_train_epochs=1, logging_steps=1, save_steps=0, seed=7)
    base.update(kw)
    return build_config(base)


@pytest.fixture(scope="module")
def sharp_model(tiny_model, tmp_path_factory):
    """The tiny model with larger embeddings and attention weights. At the fixture's initialisation scale (std 0.02)
    attention barely mixes positions and the tied head cannot express confident predictions, so *no* context — real
    or virtual — can move the loss much; prompt-based methods act only through context, so they need a model where
    context matters to show that they learn."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tmp_path_factory.mktemp("sharp-llama")
    m = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    with torch.no_grad():
        m.get_input_embeddings().weight.mul_(10)
        for n, p in m.named_parameters():
            if n.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj"):
                p.mul_(8)
    m.save_pretrained(d)
    AutoTokenizer.from_pretrained(str(tiny_model)).save_pretrained(d)
    return d


def peft_model(tiny_model, method, **kw):
    from transformers import AutoModelForCausalLM

    from tuneforge.adapters import apply_method

    cfg = cfg_for(tiny_model, "x", "x", method, **kw)
    torch.manual_seed(0)
    return apply_method(AutoModelForCausalLM.from_pretrained(str(tiny_model)), cfg, [])


@pytest.mark.parametrize("method", METHODS)
def test_loss_goes_through_the_adapter_and_lines_up_with_labels(tiny_model, method):
    from tuneforge.train.loss import CausalLMLoss

    model = peft_model(tiny_model, method)
    # Make the virtual tokens matter (fresh prefixes/prompts can be near zero).
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    loss = CausalLMLoss(model)
    assert not loss.gathered and "virtual tokens" in loss.why_full_logits
    ids = torch.randint(3, 300, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding, as collate makes it
    labels = ids.clone()
    labels[:, :3] = -100
    labels[1, 7:] = -100
    ours = loss(ids, mask, labels)[0] / int((labels[:, 1:] != -100).sum())
    # Reference: peft's own forward with labels (it pads labels for the virtual tokens; transformers shifts them).
    ref = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    # And the virtual tokens change the loss: the bare decoder path would ignore them.
    with model.disable_adapter():
        plain = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
    assert abs(float(plain) - float(ref)) > 1e-4
    ours.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("method", METHODS)
def test_method_learns_saves_native_adapter_and_chats(sharp_model, data_dir, tmp_path, method):
    tiny_model = sharp_model
    out = tmp_path / method
    extra = {"prompt_tuning_init_text": "You are Nimbus."} if method == "prompt" else {}
    res = run(cfg_for(tiny_model, data_dir, out, method, num_train_epochs=6, learning_rate=LR[method], **extra))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.4, (first, last)
    s = res.summary
    assert s["finetuning_type"] == method and 0 < s["trainable_parameters"] < s["total_parameters"] / 2
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == PEFT_TYPE[method] and cfg["num_virtual_tokens"] == 4
    assert (out / "adapter_model.safetensors").is_file() and (out / "chat_template.jinja").is_file()

    # Plain peft loads the adapter; the reloaded model gives the same logits as the one trained.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneforge.infer.engine import ChatEngine

    engine = ChatEngine(str(tiny_model), str(out))
    assert isinstance(engine.model, PeftModel)  # kept unmerged
    m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(out)).eval()
    ids = torch.randint(3, 300, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(m(input_ids=ids).logits, engine.model(input_ids=ids).logits)
        with m.disable_adapter():
            assert not torch.allclose(m(input_ids=ids).logits, engine.model(input_ids=ids).logits[:, -6:])
    # Batched (left-padded) chat through the adapter.
    from tuneforge.config.schema import GenerateArgs

    replies = engine.generate([[{"role": "user", "content": "Who are you?"}],
                               [{"role": "user", "content": "What is the capital of France? Tell me."}]],
                              GenerateArgs(max_new_tokens=5))
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)


@pytest.mark.parametrize("method", ["ptuning", "prefix"])  # both carry an encoder MLP that is not in the adapter file
def test_resume_is_exact(tiny_model, data_dir, tmp_path, method):
    kw = dict(num_train_epochs=2, save_steps=3)
    full = run(cfg_for(tiny_model, data_dir, tmp_path / "full", method, **kw))
    ck = list_checkpoints(tmp_path / "full")
    saved = load_file(str(ck[1] / "trainable.safetensors"))
    assert any("prompt_encoder" in k for k in saved)  # the trainable weights, by name, MLP included
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(ck[1], resumed / "checkpoint-6")
    res = run(cfg_for(tiny_model, data_dir, resumed, method, **kw))
    assert res.summary["resumed_from"].endswith("checkpoint-6")
    assert res.summary["final_loss"] == pytest.approx(full.summary["final_loss"], rel=1e-5)
    wf = load_file(str(tmp_path / "full" / "adapter_model.safetensors"))
    wr = load_file(str(resumed / "adapter_model.safetensors"))
    for k in wf:
        torch.testing.assert_close(wf[k], wr[k], rtol=1e-5, atol=1e-6)


def test_prompt_adapter_cannot_be_merged_first(tiny_model, data_dir, tmp_path):
    from tuneforge.errors import ModelError
    from tuneforge.infer.engine import ChatEngine

    out = tmp_path / "p"
    run(cfg_for(tiny_model, data_dir, out, "prompt", max_steps=1))
    with pytest.raises(ModelError, match="cannot be merged"):
        ChatEngine(str(tiny_model), f"{out},{out}")


def greedy_by_forward(model, ids, n, logits=None):
    with torch.no_grad():
        for _ in range(n):
            last = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
            if logits is not None:
                logits.append(last)
            ids = torch.cat([ids, last.argmax(-1, keepdim=True)], 1)
    return ids[:, -n:]


class Record:
    """A logits processor that keeps what it sees (the raw logits of each decoding step)."""

    def __init__(self):
        self.seen = []

    def __call__(self, ids, scores):
        self.seen.append(scores.clone())
        return scores


# peft 0.21's PeftModel.generate does not reproduce the adapter's forward under transformers 5.x (it ignores the
# virtual tokens' positions): on the embedded model a P-Tuning adapter answered fluently by step-by-step forward but
# garbage through generate. ChatEngine decodes prompt-based adapters with its own loop (infer/prompt_decode.py);
# these tests hold it to the training forward, alone and inside a left-padded batch.
@pytest.mark.parametrize("method", METHODS)
def test_chat_generation_matches_greedy_forward(sharp_model, data_dir, tmp_path, method):
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.infer.prompt_decode import generate_prompt_model

    out = tmp_path / method
    run(cfg_for(sharp_model, data_dir, out, method, max_steps=3, learning_rate=LR[method]))
    engine = ChatEngine(str(sharp_model), str(out))
    assert not mergeable(engine.model)  # decoded through the adapter (infer/prompt_decode.py)
    n = 6
    convs = [[{"role": "user", "content": "Who are you?"}],
             [{"role": "user", "content": "What is the capital of France? Tell me the city."}]]
    for conv in convs:
        ids = engine.tokenizer(engine.prompt_text(conv), return_tensors="pt", add_special_tokens=False)["input_ids"]
        want_logits, rec = [], Record()
        want = greedy_by_forward(engine.model, ids, n, want_logits)
        got = generate_prompt_model(engine.model, ids, torch.ones_like(ids), max_new_tokens=n, logits_processor=[rec])
        assert got[:, -n:].tolist() == want.tolist()
        # Not only the argmax: every step's logits equal the training forward's (positions, mask, virtual tokens).
        for a, b in zip(rec.seen, want_logits, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        conv.extend([want[0], want_logits])
    # A batch: the shorter prompt is left-padded; each row must decode as it does alone.
    texts = [engine.prompt_text(c[:1]) for c in convs]
    enc = engine.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (enc["attention_mask"] == 0).any()
    rec = Record()
    got = generate_prompt_model(engine.model, enc["input_ids"], enc["attention_mask"], max_new_tokens=n,
                                logits_processor=[rec])
    assert got[:, -n:].tolist() == [c[1].tolist() for c in convs]
    for row, c in enumerate(convs):
        for a, b in zip(rec.seen, c[2], strict=True):
            torch.testing.assert_close(a[row], b[0], rtol=1e-4, atol=1e-4)
    # And ChatEngine.generate goes through that loop (stops at the end-of-turn token, so compare the decoded prefix).
    replies = engine.generate([c[:1] for c in convs], GenerateArgs(max_new_tokens=n))
    for reply, c in zip(replies, convs):
        assert engine._clean(engine.tokenizer.decode(c[1], skip_special_tokens=True)) == reply
