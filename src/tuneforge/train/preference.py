"""Preference objectives (train/objective.py's protocol): dpo (any pref_loss) and kto on sequence log-probs, and the
reward model's pairwise loss on a value head.

The losses are plain functions on per-sequence tensors (train/pref_losses.py, tested against hand-computed values);
the objective modules wrap a model so that the training loop (train/loop.py) runs them like the SFT loss: their
forward returns (loss sum, metric sums) over ``units`` (pairs or samples) and the loop averages both.
"""

from __future__ import annotations

import contextlib

import torch

from tuneforge.adapters import logits_offset
from tuneforge.config.registry import LOSSES
from tuneforge.data.collate import collate
from tuneforge.data.encode import IGNORE, PairSample, Sample
from tuneforge.train.loss import _base, full_logits_reason

from tuneforge.train.pref_losses import dpo_family_loss, kto_loss, pairwise_reward_loss
from tuneforge.train.value_head import PolicyWithValueHead



# ---- per-sequence log-probs -------------------------------------------------------------------------------------

def sequence_logps(model, input_ids, attention_mask, labels, gathered: bool = True,
                   offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p(label) over each row's supervised tokens, number of those tokens). Like the SFT loss, the head
    runs only on supervised positions when the model allows it."""
    targets = labels[:, 1:]
    keep = targets != IGNORE
    if gathered:
        base = _base(model)
        hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        logits = base.get_output_embeddings()(hidden.last_hidden_state[:, :-1][keep])
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, offset:-1][keep]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, targets[keep][:, None]).squeeze(-1)
    rows = keep.nonzero()[:, 0]
    sums = torch.zeros(input_ids.shape[0], device=lp.device, dtype=lp.dtype).index_add(0, rows, lp)
    return sums, keep.sum(1)


def needs_reference(stage: str, args) -> bool:
    """kto always compares with a reference; dpo unless its loss needs none (orpo, simpo)."""
    return stage != "dpo" or LOSSES[args.pref_loss].reference


# ---- batches of pairs ---------------------------------------------------------------------------------------------

def collate_pairs(samples: list[PairSample], pad_id: int, dummy: PairSample | None = None,
                  pad_multiple: int = 1) -> dict[str, torch.Tensor]:
    """Chosen rows first, then rejected rows (kto: one row per sample), in one padded batch, so one forward serves
    both. ``valid`` is 0 for the dummy pair a process gets when a short last batch leaves it nothing."""
    valid = torch.ones(len(samples))
    if not samples:
        samples, valid = [dummy], torch.zeros(1)
    rows: list[Sample] = [s.chosen for s in samples]
    if samples[0].rejected is not None:
        rows += [s.rejected for s in samples]
    batch = collate(rows, pad_id, None, pad_multiple)
    batch["valid"] = valid
    if samples[0].kto_tag is not None:
        batch["desirable"] = torch.tensor([bool(s.kto_tag) for s in samples])
    if samples[0].ref is not None:
        batch["ref"] = torch.tensor([s.ref for s in samples], dtype=torch.float32)
    return batch


def _units(batch: dict) -> int:
    return int(batch["valid"].sum())


def pair_length(sample: PairSample) -> int:
    """A preference sample's length: its longer row (group_by_length)."""
    return max(len(s.input_ids) for s in (sample.chosen, sample.rejected) if s is not None)


class PreferenceObjective(torch.nn.Module):
    """dpo (any pref_loss) and kto on top of a policy model. The reference is ``ref_model`` if given (full/freeze:
    a frozen copy), otherwise the policy with its adapter switched off (LoRA: no second copy in memory), or the
    log-probs precomputed into the samples (``ref`` in the batch)."""

    collate = staticmethod(collate_pairs)
    units = staticmethod(_units)
    length = staticmethod(pair_length)
    saves_activations_itself = False

    def __init__(self, model, stage: str, args, ref_model=None):
        """``args``: the run's preference settings (``cfg.preference``)."""
        super().__init__()
        self.model, self.ft, self.stage = model, args, stage
        self.ref_model = [ref_model]  # a list: not a registered submodule (frozen, never trained or wrapped)
        self.why_full_logits = full_logits_reason(model)
        self.gathered = self.why_full_logits is None
        self.offset = logits_offset(model)

    def release(self) -> None:
        pass

    def reference_context(self):
        if self.ref_model[0] is None and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    @torch.no_grad()
    def reference_logps(self, input_ids, attention_mask, labels) -> torch.Tensor:
        ref = self.ref_model[0] or self.model
        gathered = full_logits_reason(ref) is None
        with self.reference_context():
            return sequence_logps(ref, input_ids, attention_mask, labels, gathered, logits_offset(ref))[0]

    def forward(self, input_ids, attention_mask, labels, valid, desirable=None, ref=None):
        ft = self.ft
        logps, counts = sequence_logps(self.model, input_ids, attention_mask, labels, self.gathered, self.offset)
        counts = counts.clamp(min=1).to(logps.dtype)
        needs_ref = needs_reference(self.stage, ft)
        if needs_ref and ref is None:
            ref_logps = self.reference_logps(input_ids, attention_mask, labels)
        B = valid.shape[0]
        if self.stage == "kto":
            r = ref[:, 0] if ref is not None else ref_logps
            loss, reward, kl = kto_loss(logps, r, desirable, ft.pref_beta, ft.kto_chosen_weight,
                                        ft.kto_rejected_weight, valid)
            sft = -logps / counts * desirable
            d = desirable.float() * valid
            stats = {"rewards/chosen": (reward * d).sum(), "rewards/rejected": (reward * (valid - d)).sum(),
                     "kl": kl * valid.sum(), "desirable": d.sum()}
        else:
            pc, pr, nc, nr = logps[:B], logps[B:], counts[:B], counts[B:]
            rc = rr = None
            if needs_ref:
                rc, rr = (ref[:, 0], ref[:, 1]) if ref is not None else (ref_logps[:B], ref_logps[B:])
            loss, reward_c, reward_r = dpo_family_loss(ft.pref_loss, pc, pr, nc, nr, rc, rr, ft.pref_beta,
                                                       ft.simpo_gamma, ft.dpo_label_smoothing)
            sft = -pc / nc
            stats = {"rewards/chosen": (reward_c * valid).sum(), "rewards/rejected": (reward_r * valid).sum(),
                     "rewards/accuracy": ((reward_c > reward_r).float() * valid).sum(),
                     "rewards/margins": ((reward_c - reward_r) * valid).sum(),
                     "logps/chosen": (pc.detach() * valid).sum(), "logps/rejected": (pr.detach() * valid).sum()}
        if ft.pref_ftx > 0:
            loss = loss + ft.pref_ftx * sft
        return (loss * valid).sum(), stats


@torch.no_grad()
def precompute_reference(objective: PreferenceObjective, samples: list[PairSample], pad_id: int,
                         batch_size: int, device) -> None:
    """Fill ``sample.ref`` with the reference log-probs (chosen, rejected) once, before training."""
    for i in range(0, len(samples), batch_size):
        chunk = samples[i: i + batch_size]
        batch = {k: v.to(device) for k, v in collate_pairs(chunk, pad_id).items()}
        lp = objective.reference_logps(batch["input_ids"], batch["attention_mask"], batch["labels"]).float().cpu()
        B = len(chunk)
        for j, s in enumerate(chunk):
            s.ref = (float(lp[j]), float(lp[B + j])) if s.rejected is not None else (float(lp[j]), 0.0)


# ---- reward model -------------------------------------------------------------------------------------------------

class RewardObjective(torch.nn.Module):
    """Pairwise (Bradley-Terry) loss of the value head of a :class:`PolicyWithValueHead`; logs pairwise accuracy and
    margin."""

    collate = staticmethod(collate_pairs)
    units = staticmethod(_units)
    length = staticmethod(pair_length)
    saves_activations_itself = False

    def __init__(self, model: PolicyWithValueHead):
        super().__init__()
        self.model = model

    def release(self) -> None:
        pass

    def forward(self, input_ids, attention_mask, labels, valid, **_):
        scores = self.model.scores(input_ids, attention_mask)
        B = valid.shape[0]
        rc, rr = scores[:B], scores[B:]
        loss = pairwise_reward_loss(rc, rr)
        return (loss * valid).sum(), {"accuracy": ((rc > rr).float() * valid).sum(),
                                      "margin": ((rc - rr).detach() * valid).sum(),
                                      "rewards/chosen": (rc.detach() * valid).sum()}
