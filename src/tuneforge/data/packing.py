"""Padding-free packing and length bucketing.

Packing puts several samples into one row of at most ``cutoff_len`` tokens. Each sample keeps its own position ids
(0, 1, 2, … restarting at every sample) and no token attends across a sample boundary: the model gets
``position_ids`` and no ``attention_mask``, and transformers builds a block-diagonal causal mask from the position
restarts (SDPA/eager) or variable-length offsets (FlashAttention). The first label of every packed sample is masked,
so the last token of one sample is never trained to predict the first token of the next — exactly what the
unpacked run trains (the first position of a row is never a target either).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuneforge.data.encode import IGNORE, Sample


@dataclass
class PackStats:
    samples: int
    rows: int
    tokens: int
    capacity: int

    @property
    def fill(self) -> float:
        return self.tokens / max(self.capacity, 1)


def pack_samples(samples: list[Sample], max_len: int) -> tuple[list[Sample], PackStats]:
    """First-fit-decreasing bin packing of samples into rows of ≤ ``max_len`` tokens (deterministic).

    A sample longer than ``max_len`` (cannot happen after ``cutoff_len`` truncation) gets a row of its own."""
    order = sorted(range(len(samples)), key=lambda i: (-len(samples[i].input_ids), i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(samples[i].input_ids)
        for b, free in enumerate(room):  # first fit; O(samples × rows) is fine for SFT-sized data
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(max_len - n)
    rows = []
    for b in bins:
        ids, labels, pos = [], [], []
        for i in sorted(b):  # keep data order inside a row
            s = samples[i]
            ids += s.input_ids
            labels += [IGNORE] + list(s.labels[1:])
            pos += list(range(len(s.input_ids)))
        rows.append(Sample(ids, labels, pos))
    tokens = sum(len(s.input_ids) for s in samples)
    return rows, PackStats(len(samples), len(rows), tokens, len(rows) * max_len)


def bucketed_order(order: list[int], lengths: list[int], batch_size: int, seed: int, epoch: int,
                   window: int = 64) -> list[int]:
    """Reorder a shuffled epoch so that each micro-batch holds samples of similar length (little padding).

    Within windows of ``window × batch_size`` consecutive samples of the shuffled order, samples are sorted by length
    and cut into micro-batches; the micro-batches are then shuffled (deterministically), so batch sizes in tokens
    still vary from step to step rather than growing through the epoch."""
    span = window * batch_size
    batches: list[list[int]] = []
    for i in range(0, len(order), span):
        chunk = sorted(order[i: i + span], key=lambda j: lengths[j])
        batches += [chunk[k: k + batch_size] for k in range(0, len(chunk), batch_size)]
    last = batches.pop() if batches and len(batches[-1]) < batch_size else None  # keep a short batch last
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    perm = torch.randperm(len(batches), generator=g).tolist()
    out = [j for p in perm for j in batches[p]]
    return out + (last or [])


def resolve_packing(packing: bool | None, neat_packing: bool, stage: str) -> bool:
    """Whether to pack, with the reason logged."""
    from tuneforge.utils import log

    if neat_packing:
        log.choice("packing=on", "neat_packing=True (samples never attend to each other)")
        return True
    if packing is None:
        on = stage == "pt"
        log.choice(f"packing={'on' if on else 'off'}",
                   "default for pt: documents are packed padding-free" if on else
                   "default for sft: batch size keeps counting samples (--packing True packs them)")
        return on
    if packing:
        log.choice("packing=on", "asked; samples keep their own positions and never attend across a boundary")
    return packing


def pack_for_training(samples: list[Sample], max_len: int) -> tuple[list[Sample], dict]:
    from tuneforge.utils import log

    rows, st = pack_samples(samples, max_len)
    log.info(f"packing: {st.samples} samples → {st.rows} rows of ≤ {max_len} tokens ({st.fill:.1%} filled)")
    return rows, {"samples": st.samples, "rows": st.rows, "fill": round(st.fill, 4)}
