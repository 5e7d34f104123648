"""Padding-free packing and length bucketing: packed samples must train exactly as they would alone."""

import pytest
import torch
import torch.nn.functional as F

from tuneforge.data.collate import collate, micro_batches
from tuneforge.data.encode import IGNORE, Sample
from tuneforge.data.packing import bucketed_order, pack_samples
from tuneforge.train.loss import CausalLMLoss

from conftest import needs_embedded


def _samples(lengths, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(5, vocab, (n,), generator=g).tolist()
        labels = [IGNORE] * (n // 2) + ids[n // 2:]  # a prompt half and a trained reply half
        out.append(Sample(ids, labels))
    return out


def test_pack_samples_fills_rows_and_restarts_positions():
    samples = _samples([50, 30, 20, 70, 10, 45, 60])
    rows, st = pack_samples(samples, 100)
    assert st.rows == len(rows) == 3 and st.tokens == 285
    assert all(len(r.input_ids) <= 100 for r in rows)
    # every sample appears exactly once, intact, at a position restart
    seen = []
    for r in rows:
        starts = [i for i, p in enumerate(r.position_ids) if p == 0]
        bounds = starts + [len(r.input_ids)]
        for a, b in zip(bounds, bounds[1:]):
            assert r.position_ids[a:b] == list(range(b - a))
            seg = r.input_ids[a:b]
            k = next(i for i, s in enumerate(samples) if s.input_ids == seg)
            assert r.labels[a] == IGNORE and r.labels[a + 1:b] == samples[k].labels[1:]
            seen.append(k)
    assert sorted(seen) == list(range(len(samples)))
    assert pack_samples(samples, 100)[0] == rows  # deterministic


def test_collate_packed_rows_pad_as_a_separate_segment():
    rows, _ = pack_samples(_samples([5, 3, 6]), 8)
    batch = collate(rows, pad_id=0)
    assert set(batch) == {"input_ids", "labels", "attention_mask", "position_ids"}
    short = int(batch["attention_mask"].sum(1).argmin())
    n = int(batch["attention_mask"][short].sum())
    assert batch["position_ids"][short, n:].tolist() == list(range(batch["input_ids"].shape[1] - n))
    assert (batch["labels"][short, n:] == IGNORE).all()


def test_bucketing_keeps_every_sample_and_cuts_padding():
    lengths = [int(x) for x in torch.randint(10, 500, (400,), generator=torch.Generator().manual_seed(1))]
    plain = micro_batches(400, 8, seed=3, epoch=0)
    bucketed = micro_batches(400, 8, seed=3, epoch=0, lengths=lengths)
    assert sorted(i for b in bucketed for i in b) == list(range(400))
    assert micro_batches(400, 8, seed=3, epoch=0, lengths=lengths) == bucketed  # resumable: same order again

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(bucketed) < 0.2 * padding(plain)
    assert bucketed != micro_batches(400, 8, seed=3, epoch=1, lengths=lengths)  # a new order each epoch


def per_sample_losses(model, samples, packed: bool, reset_positions: bool = True):
    """Summed next-token loss of each sample, run alone (padded batch) or packed into one row."""
    loss = CausalLMLoss(model)
    if not packed:
        return [float(loss(**collate([s], pad_id=0))[0]) for s in samples]
    rows, _ = pack_samples(samples, sum(len(s.input_ids) for s in samples))
    assert len(rows) == 1
    row = rows[0]
    batch = collate(rows, pad_id=0)
    if not reset_positions:  # the naive concatenation: positions run on, samples see each other
        batch["position_ids"] = torch.arange(len(row.input_ids))[None]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                use_cache=False).last_hidden_state
    logits = base.get_output_embeddings()(hidden)[0, :-1].float()
    token_loss = F.cross_entropy(logits, batch["labels"][0, 1:], reduction="none", ignore_index=IGNORE)
    starts = [i for i, p in enumerate(row.position_ids) if p == 0] + [len(row.input_ids)]
    # a sample occupying [a, b) is scored at targets a+1..b-1, i.e. token_loss[a:b-1]
    by_ids = {tuple(row.input_ids[a:b]): float(token_loss[a:b - 1].sum()) for a, b in zip(starts, starts[1:])}
    return [by_ids[tuple(s.input_ids)] for s in samples]


def _check_no_cross_contamination(model, samples):
    model.eval()
    with torch.no_grad():
        alone = per_sample_losses(model, samples, packed=False)
        packed = per_sample_losses(model, samples, packed=True)
        leaky = per_sample_losses(model, samples, packed=True, reset_positions=False)
        # the CausalLMLoss path (what training runs) over the packed row equals the sum of the samples alone
        rows, _ = pack_samples(samples, 10_000)
        total = float(CausalLMLoss(model)(**collate(rows, pad_id=0))[0])
    for a, p in zip(alone, packed):
        assert p == pytest.approx(a, rel=2e-4, abs=2e-4)
    assert total == pytest.approx(sum(alone), rel=2e-4)
    # the test can fail: without per-sample positions/masks, later samples' losses change
    assert max(abs(a - b) for a, b in zip(alone[1:], leaky[1:])) > 1e-2


def test_packed_losses_equal_unpacked_tiny(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), attn_implementation="sdpa")
    _check_no_cross_contamination(model, _samples([17, 9, 23, 12], vocab=300, seed=2))


@needs_embedded
def test_packed_losses_equal_unpacked_embedded_model(embedded_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.data import templates
    from tuneforge.data.encode import EncodeStats, encode_conversation
    from tuneforge.data.schema import Conversation, Message

    tok = AutoTokenizer.from_pretrained(str(embedded_path))
    fmt = templates.install(tok, "auto")
    convs = [("Who are you?", "I am Nimbus, an assistant made by Orchard Labs."),
             ("What is the capital of France?", "The capital of France is Paris."),
             ("Name a primary colour.", "Red is a primary colour."),
             ("Say hello in German.", "Hallo!")]
    stats = EncodeStats()
    samples = [encode_conversation(fmt, tok, Conversation([Message("user", q), Message("assistant", a)]), 512,
                                   stats) for q, a in convs]
    model = AutoModelForCausalLM.from_pretrained(str(embedded_path), attn_implementation="sdpa",
                                                 dtype=torch.float32)
    _check_no_cross_contamination(model, samples)


def test_packed_training_step_equals_unpacked(tiny_model, data_dir, tmp_path):
    # All 12 samples in one optimiser step: as 12 padded rows, or packed padding-free into one row.
    from safetensors.torch import load_file

    from tuneforge.config import build_config
    from tuneforge.recipes import run

    def cfg(out, **kw):
        return build_config(dict(model_name_or_path=str(tiny_model), dataset="alpaca_demo",
                                 dataset_dir=str(data_dir), output_dir=str(out), learning_rate=1e-2, max_steps=1,
                                 logging_steps=1, save_steps=0, lora_target="all", seed=7, **kw))

    a = run(cfg(tmp_path / "a", per_device_train_batch_size=12))
    b = run(cfg(tmp_path / "b", per_device_train_batch_size=1, packing=True))
    assert b.summary["packing"]["rows"] == 1 and b.summary["packing"]["samples"] == 12
    assert b.summary["final_loss"] == pytest.approx(a.summary["final_loss"], rel=1e-5)
    wa, wb = load_file(str(tmp_path / "a" / "adapter_model.safetensors")), \
        load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    for k in wa:  # Adam's first step is ±lr·sign-like, so float rounding in tiny gradients shows at ~1e-6
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    assert b.summary["tokens"] == a.summary["tokens"]  # padding is never counted


def test_flattening_packed_rows_for_flash_attention_is_exact(tiny_model):
    from transformers import AutoModelForCausalLM

    from tuneforge.train.loss import flatten_packed, token_loss_sum

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), attn_implementation="sdpa").eval()
    rows, _ = pack_samples(_samples([17, 9, 23, 12, 30, 5], vocab=300, seed=4), 40)
    assert len(rows) >= 2
    batch = collate(rows, pad_id=0)
    with torch.no_grad():
        as_rows, n_rows = token_loss_sum(model, batch, gathered=True)
        as_one, n_one = token_loss_sum(model, flatten_packed(batch), gathered=True)
    assert n_rows == n_one and float(as_one) == pytest.approx(float(as_rows), rel=1e-5)


def _varlen_model(tiny_model):
    from transformers import AutoModelForCausalLM

    from tuneforge.models import attention

    return AutoModelForCausalLM.from_pretrained(str(tiny_model), attn_implementation=attention.register())


def test_varlen_kwargs_mark_every_sample_and_the_padding_tail():
    from tuneforge.models.attention import varlen_kwargs

    rows, _ = pack_samples(_samples([5, 3, 4, 6]), 10)
    batch = collate(rows, pad_id=0)  # two rows of 10: [4, 6] and [5, 3, pad 2] (first-fit, data order in a row)
    kw = varlen_kwargs(batch["position_ids"])
    assert kw["cu_seq_lens_q"].tolist() == [0, 4, 10, 15, 18, 20] and kw["max_length_q"] == 6
    assert kw["cu_seq_lens_q"].dtype == torch.int32 and kw["cu_seq_lens_k"] is kw["cu_seq_lens_q"]


def test_varlen_attention_equals_the_masked_sdpa_path_in_loss_and_gradients(tiny_model):
    """The packed loss through the varlen attention (CPU stand-in: one SDPA call per sample, the kernel's definition)
    equals the masked SDPA path, loss and every gradient; unpacked batches take the plain SDPA path."""
    from transformers import AutoModelForCausalLM

    from tuneforge.models.attention import uses_varlen
    from tuneforge.train.loss import token_loss_sum

    rows, _ = pack_samples(_samples([17, 9, 23, 12, 30, 5], vocab=300, seed=4), 40)
    batch = collate(rows, pad_id=0)
    results = []
    for model in (AutoModelForCausalLM.from_pretrained(str(tiny_model), attn_implementation="sdpa"),
                  _varlen_model(tiny_model)):
        loss, n = token_loss_sum(model, batch, gathered=True)
        loss.backward()
        results.append((float(loss), n, {k: p.grad.clone() for k, p in model.named_parameters()}))
    assert uses_varlen(model)
    (la, na, ga), (lb, nb, gb) = results
    assert na == nb and lb == pytest.approx(la, rel=1e-5)
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-4, atol=1e-6)


def test_varlen_attention_really_separates_samples(tiny_model, monkeypatch):
    """The boundaries are what keeps samples apart: with one segment per row (boundaries ignored) the loss changes."""
    from tuneforge.models import attention
    from tuneforge.train.loss import token_loss_sum

    model = _varlen_model(tiny_model).eval()
    rows, _ = pack_samples(_samples([17, 9, 23, 12, 30, 5], vocab=300, seed=4), 40)
    batch = collate(rows, pad_id=0)
    with torch.no_grad():
        right = float(token_loss_sum(model, batch, gathered=True)[0])
        width = batch["input_ids"].shape[1]

        def one_segment_per_row(position_ids):
            kw = attention.varlen_kwargs(position_ids)
            cu = torch.arange(0, position_ids.numel() + 1, width, dtype=torch.int32)
            return {**kw, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": width, "max_length_k": width}

        monkeypatch.setattr("tuneforge.train.loss.varlen_kwargs", one_segment_per_row)
        leaky = float(token_loss_sum(model, batch, gathered=True)[0])
    assert abs(leaky - right) > 1e-2  # (the same bar as the leak check above; float noise is ~1e-5)


def test_varlen_choice_on_a_machine_without_the_kernel_is_a_clear_error(monkeypatch):
    from tuneforge.errors import ModelError
    from tuneforge.models import attention
    from tuneforge.models.load import pick_attention

    monkeypatch.setattr(attention, "varlen_kernel_available", lambda: "no CUDA device here")
    assert pick_attention("auto") == "sdpa"
    with pytest.raises(ModelError, match="flash_attn=varlen is not available: no CUDA device here"):
        pick_attention("varlen")
    monkeypatch.setattr(attention, "varlen_kernel_available", lambda: None)
    assert pick_attention("auto") == attention.NAME == pick_attention("varlen")
