"""Turn conversations into token ids and labels.

Supervised tokens are found by rendering the conversation prefix by prefix with the chat template: the text that an
assistant turn adds after the generation prompt is its reply (up to and including the end-of-turn string). The full
conversation is tokenized once, exactly as ``apply_chat_template(tokenize=True)`` would, and tokens are labelled by
their character offsets — no per-model slot tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tuneforge.config.messages import Msg
from tuneforge.data.schema import Conversation, Preference, tool_names
from tuneforge.data.templates import ChatFormat
from tuneforge.errors import DataError

IGNORE = -100


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int] | None = None  # set on packed rows (data/packing.py): restarts at every sample

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class EncodeStats:
    samples: int = 0
    truncated: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason → count
    tokens: int = 0
    trained_tokens: int = 0
    truncated_tokens: int = 0  # tokens cut off by cutoff_len
    split_documents: int = 0  # pt: documents split into several cutoff_len blocks (no token lost)

    def to_dict(self) -> dict:
        return {"samples": self.samples, "truncated": self.truncated, "dropped": dict(self.dropped),
                "tokens": self.tokens, "trained_tokens": self.trained_tokens,
                "masked_tokens": self.tokens - self.trained_tokens, "truncated_tokens": self.truncated_tokens,
                "split_documents": self.split_documents}


def supervised_spans(fmt: ChatFormat, tokenizer, conv: Conversation, train_on_prompt: bool = False,
                     mask_history: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the assistant replies to learn."""
    msgs = conv.to_hf()
    full = fmt.render(tokenizer, msgs, conv.tools)
    _check_tools_rendered(fmt, full, conv)
    if train_on_prompt:
        return full, [(0, len(full))]
    spans = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prompt = fmt.render(tokenizer, msgs[:i], conv.tools, add_generation_prompt=True)
        upto = fmt.render(tokenizer, msgs[: i + 1], conv.tools)
        if not (upto.startswith(prompt) and full.startswith(upto)):
            raise DataError(Msg("template_not_prefix_stable", name=fmt.name, turn=i, where=conv.source),
                            Msg("template_not_prefix_stable_fix"))
        start, end = len(prompt), len(upto)
        reply = upto[start:]
        cut = max((reply.rfind(s) + len(s) for s in fmt.stop if s and reply.rfind(s) >= 0), default=-1)
        spans.append((start, start + cut if cut > 0 else end))
    if mask_history:
        spans = spans[-1:]
    return full, spans


def _check_tools_rendered(fmt: ChatFormat, text: str, conv: Conversation) -> None:
    """A template that ignores ``tools`` / ``tool_calls`` (most plain chat templates) would train the model on
    conversations with the tool definitions and calls silently left out: refuse instead."""
    names = tool_names(conv.tools) + [c.name for m in conv.messages for c in m.tool_calls]
    missing = sorted({n for n in names if n not in text})
    if missing:
        raise DataError(Msg("template_drops_tools", name=fmt.name, where=conv.source or "a row",
                            missing=", ".join(missing)), Msg("template_drops_tools_fix"))


def _label(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    out = []
    j = 0
    for a, b in offsets:
        while j < len(spans) and spans[j][1] <= a:
            j += 1
        out.append(j < len(spans) and spans[j][0] <= a < spans[j][1] and b > a)
    return out


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """LLaMA-Factory's proportional cut of one (prompt, reply) pair to ``cutoff_len`` tokens: a short reply is kept
    whole and the prompt cut; a short prompt is kept whole and the reply cut; otherwise both shrink in proportion."""
    if target_len * 2 < cutoff_len:
        max_target = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target = cutoff_len - source_len
    else:
        max_target = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target = min(max_target, target_len)
    return min(max(cutoff_len - new_target, 0), source_len), new_target


def turn_pairs(ids: list[int], labels: list[int]) -> list[tuple[list[int], list[int], list[int], list[int]]]:
    """(prompt ids, prompt labels, reply ids, reply labels) per supervised reply: a reply is a run of trained tokens,
    its prompt everything since the previous reply; untrained tokens after the last reply join that reply."""
    pairs, i, n = [], 0, len(ids)
    while i < n:
        j = i
        while j < n and labels[j] == IGNORE:
            j += 1
        k = j
        while k < n and labels[k] != IGNORE:
            k += 1
        if j == n and pairs:  # trailing untrained tokens: part of the last reply
            p = pairs[-1]
            pairs[-1] = (p[0], p[1], p[2] + ids[i:], p[3] + labels[i:])
            break
        pairs.append((ids[i:j], labels[i:j], ids[j:k], labels[j:k]))
        i = k
    return pairs


def truncate_lf(ids: list[int], labels: list[int], cutoff_len: int) -> tuple[list[int], list[int]]:
    """LLaMA-Factory's truncation (its supervised processor): pair by pair, each (prompt, reply) is cut with
    :func:`infer_seqlen` to the budget left, keeping the start of each part."""
    out_ids, out_labels, total = [], [], 0
    for p_ids, p_labels, r_ids, r_labels in turn_pairs(ids, labels):
        if total >= cutoff_len:
            break
        s, t = infer_seqlen(len(p_ids), len(r_ids), cutoff_len - total)
        out_ids += p_ids[:s] + r_ids[:t]
        out_labels += p_labels[:s] + r_labels[:t]
        total += s + t
    return out_ids, out_labels


def encode_conversation(fmt: ChatFormat, tokenizer, conv: Conversation, cutoff_len: int, stats: EncodeStats,
                        train_on_prompt: bool = False, mask_history: bool = False,
                        truncation: str = "turns") -> Sample | None:
    """Encode one conversation; truncation and drops are counted in ``stats``. Returns None if dropped.
    ``truncation``: "turns" (keep whole turns, else cut the reply; also what "auto" means here) or "lf"
    (LLaMA-Factory's proportional cut; config/lf_keys.py turns "auto" into "lf" for LLaMA-Factory-style configs)."""
    text, spans = supervised_spans(fmt, tokenizer, conv, train_on_prompt, mask_history)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask = _label(list(enc["offset_mapping"]), spans)
    labels = [t if m else IGNORE for t, m in zip(ids, mask)]
    if len(ids) > cutoff_len and truncation == "lf":
        new_ids, new_labels = truncate_lf(ids, labels, cutoff_len)
        stats.truncated_tokens += len(ids) - len(new_ids)
        ids, labels = new_ids, new_labels
        if all(x == IGNORE for x in labels):
            stats.dropped[Msg("drop_nothing_after_cut")] += 1
            return None
        stats.truncated += 1
    elif len(ids) > cutoff_len:
        # Prefer ending at the last complete reply that fits; otherwise cut the reply itself.
        ends = [i + 1 for i in range(len(labels) - 1) if labels[i] != IGNORE and labels[i + 1] == IGNORE]
        fit = [e for e in ends if e <= cutoff_len]
        new_len = fit[-1] if fit else cutoff_len
        stats.truncated_tokens += len(ids) - new_len
        ids, labels = ids[:new_len], labels[:new_len]
        if all(x == IGNORE for x in labels):
            stats.dropped[Msg("drop_prompt_too_long")] += 1
            return None
        stats.truncated += 1
    elif all(x == IGNORE for x in labels):
        stats.dropped[Msg("drop_no_supervised")] += 1
        return None
    sample = Sample(ids, labels)
    stats.samples += 1
    stats.tokens += len(ids)
    stats.trained_tokens += sample.n_trained
    return sample


def encode_text(tokenizer, text: str, cutoff_len: int, stats: EncodeStats) -> list[Sample]:
    """Continued pre-training: all tokens supervised; long documents are split into cutoff_len blocks."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = list(ids) + [tokenizer.eos_token_id]
    out = []
    for i in range(0, len(ids), cutoff_len):
        block = ids[i: i + cutoff_len]
        if len(block) < 2:
            stats.dropped[Msg("drop_short_block")] += 1
            continue
        out.append(Sample(block, list(block)))
        stats.samples += 1
        stats.tokens += len(block)
        stats.trained_tokens += len(block)
    if len(ids) > cutoff_len:
        stats.split_documents += 1
    return out


@dataclass
class PairSample:
    """Encoded preference data. rm/dpo: ``chosen`` and ``rejected`` (same prompt). kto: ``chosen`` is the one reply
    and ``kto_tag`` says whether it is desirable. ppo: ``prompt_ids`` only. ``ref`` holds precomputed reference
    log-probs (chosen, rejected) when precompute_ref_log_probs is on."""

    chosen: Sample | None
    rejected: Sample | None = None
    kto_tag: bool | None = None
    prompt_ids: list[int] | None = None
    ref: tuple[float, float] | None = None
    prompt_messages: list[dict] | None = None  # ppo: the prompt, to render prompt + generated reply for the reward

    @property
    def input_ids(self) -> list[int]:  # for length-based batching: the longer member decides the padded width
        parts = [s.input_ids for s in (self.chosen, self.rejected) if s is not None]
        return max(parts, key=len) if parts else (self.prompt_ids or [])


def encode_preference(fmt: ChatFormat, tokenizer, pref: Preference, stage: str, cutoff_len: int,
                      stats: EncodeStats, max_new_tokens: int = 0, truncation: str = "turns") -> PairSample | None:
    """Encode one preference row; only the final reply is supervised. A pair is dropped (and counted) if either
    reply has nothing left to train on after truncation."""
    if stage == "ppo":
        text = fmt.render(tokenizer, pref.prompt.to_hf(), pref.prompt.tools, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) + max_new_tokens > cutoff_len:
            stats.dropped[Msg("drop_prompt_plus_new")] += 1
            return None
        stats.samples += 1
        stats.tokens += len(ids)
        return PairSample(None, prompt_ids=list(ids), prompt_messages=pref.prompt.to_hf())
    replies = [pref.chosen] + ([pref.rejected] if pref.rejected is not None else [])
    if truncation == "lf":
        return _encode_preference_lf(fmt, tokenizer, pref, replies, cutoff_len, stats)
    encoded = []
    for reply in replies:
        inner = EncodeStats()
        s = encode_conversation(fmt, tokenizer, pref.with_reply(reply), cutoff_len, inner, mask_history=True)
        if s is None:
            stats.dropped.update({Msg("drop_pref_whole", reason=k): v for k, v in inner.dropped.items()})
            return None
        stats.truncated += inner.truncated
        stats.truncated_tokens += inner.truncated_tokens
        encoded.append(s)
    if len(encoded) == 2 and encoded[0].input_ids == encoded[1].input_ids:
        stats.dropped[Msg("drop_pair_identical")] += 1
        return None
    stats.samples += 1
    for s in encoded:
        stats.tokens += len(s.input_ids)
        stats.trained_tokens += s.n_trained
    return PairSample(encoded[0], encoded[1] if len(encoded) > 1 else None, kto_tag=pref.kto_tag)


def _encode_preference_lf(fmt: ChatFormat, tokenizer, pref: Preference, replies: list, cutoff_len: int,
                          stats: EncodeStats) -> PairSample | None:
    """LLaMA-Factory's pairwise/KTO truncation: the shared prompt and every reply are cut once with
    :func:`infer_seqlen`, sized by the longest reply, so chosen and rejected keep the same prompt."""
    parts = []
    for reply in replies:
        s = encode_conversation(fmt, tokenizer, pref.with_reply(reply), 10 ** 9, EncodeStats(), mask_history=True)
        if s is None:
            stats.dropped[Msg("drop_no_supervised")] += 1
            return None
        first = next(i for i, x in enumerate(s.labels) if x != IGNORE)
        parts.append((s.input_ids[:first], s.labels[:first], s.input_ids[first:], s.labels[first:]))
    prompt_ids, prompt_labels = parts[0][0], parts[0][1]
    longest = max(len(p[2]) for p in parts)
    full = len(prompt_ids) + longest
    src, tgt = infer_seqlen(len(prompt_ids), longest, cutoff_len) if full > cutoff_len else (len(prompt_ids), longest)
    encoded = []
    for _, _, r_ids, r_labels in parts:
        ids, labels = prompt_ids[:src] + r_ids[:tgt], prompt_labels[:src] + r_labels[:tgt]
        if all(x == IGNORE for x in labels):
            stats.dropped[Msg("drop_pref_whole", reason=Msg("drop_nothing_after_cut"))] += 1
            return None
        stats.truncated_tokens += len(prompt_ids) + len(r_ids) - len(ids)
        encoded.append(Sample(ids, labels))
    if full > cutoff_len:
        stats.truncated += 1
    if len(encoded) == 2 and encoded[0].input_ids == encoded[1].input_ids:
        stats.dropped[Msg("drop_pair_identical")] += 1
        return None
    stats.samples += 1
    for s in encoded:
        stats.tokens += len(s.input_ids)
        stats.trained_tokens += s.n_trained
    return PairSample(encoded[0], encoded[1] if len(encoded) > 1 else None, kto_tag=pref.kto_tag)
