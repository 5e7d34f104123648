"""Read, convert, validate, split and encode the configured datasets. Every drop and truncation is counted."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from tuneforge.config.messages import Lines, Msg
from tuneforge.config.schema import DataArgs
from tuneforge.data.catalog import DatasetEntry, load_catalog, lookup, split_names
from tuneforge.data.convert import RowError, to_conversation, to_preference
from tuneforge.data.encode import EncodeStats, PairSample, Sample, encode_conversation, encode_preference, \
    encode_text
from tuneforge.data.readers import read_rows
from tuneforge.data.schema import Conversation
from tuneforge.data.templates import ChatFormat
from tuneforge.errors import DataError
from tuneforge.utils import log
from tuneforge.utils.hub import HubOptions

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_LISTED = 20
PREFERENCE_STAGES = ("rm", "dpo", "kto", "ppo")


@dataclass
class DataBundle:
    train: list[Sample]
    eval: list[Sample]
    report: dict[str, Any] = field(default_factory=dict)


def fill(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, variables) for k, v in value.items()}
    return value


def _variables(entry: DatasetEntry, given: dict[str, str]) -> dict[str, str]:
    out = dict(entry.vars)
    for k, v in entry.vars.items():
        if k not in given:
            pairs = ",".join(f"{key}=…" for key in entry.vars)
            log.choice(f"dataset_vars {k}={v!r}", f"default of dataset {entry.name!r}; set --dataset_vars {pairs}")
    out.update(given)
    return out


MEDIA_TAGS = ("<image>", "<video>", "<audio>")


def multimodal(row: dict[str, Any]) -> str | None:
    """What makes a row multimodal (LLaMA-Factory's images/videos/audios columns or <image> tags), if anything."""
    for col in ("images", "videos", "audios"):
        if row.get(col):
            return f"a non-empty {col!r} column"
    text = str(row)
    for tag in MEDIA_TAGS:
        if tag in text:
            return f"a {tag} tag"
    return None


def entry_rows(entry: DatasetEntry, hub: HubOptions | None = None):
    """(where, row) pairs of a local file/folder/glob, or of a hub dataset."""
    if entry.source == "hub":
        from tuneforge.data.hub import hub_rows

        return hub_rows(entry, hub or HubOptions())
    return read_rows(entry.path)


def read_dataset(entry: DatasetEntry, args: DataArgs, stage: str,
                 hub: HubOptions | None = None) -> tuple[list[Any], dict[str, int]]:
    """Rows of one dataset as conversations (sft) or texts (pt), plus counts. Multimodal rows stop the run: they are
    never trained as plain text."""
    if entry.problem is not None:
        raise DataError(entry.problem, entry.hint)
    if entry.ranking and stage in ("sft", "pt", "kto"):
        raise DataError(Msg("data_is_preference", name=entry.name), Msg("data_is_preference_fix"))
    if not entry.ranking and stage in ("rm", "dpo"):
        raise DataError(Msg("data_not_preference", name=entry.name, stage=stage), Msg("data_not_preference_fix"))
    variables = _variables(entry, args.dataset_vars)
    items: list[Any] = []
    problems: list[Msg] = []
    n_read = 0
    media: list[tuple[str, str]] = []
    for where, row in entry_rows(entry, hub):
        if args.max_samples is not None and n_read >= args.max_samples:
            break
        n_read += 1
        what = multimodal(row)
        if what:
            media.append((where, what))
            continue
        row = fill(row, variables)
        if entry.vars:
            left = sorted({m for m in PLACEHOLDER.findall(str(row))})
            if left:
                problems.append(Msg("row_placeholders", where=where, left=left,
                                    pairs=",".join(f"{k}=…" for k in left)))
                continue
        try:
            if stage == "pt":
                col = entry.columns.get("prompt", "text")
                if not isinstance(row.get(col), str) or not row[col].strip():
                    raise RowError(Msg("row_pt_no_text", col=col, keys=sorted(row)))
                items.append(row[col])
            elif stage in PREFERENCE_STAGES:
                pref = to_preference(entry, row, stage)
                pref.prompt.source = where
                items.append(pref)
            else:
                conv = to_conversation(entry, row)
                conv.source = where
                items.append(conv)
        except RowError as e:
            problems.append(Msg("row_problem", where=where, problem=e.args[0] if e.args else str(e)))
    if media:
        raise DataError(Msg("data_multimodal_rows", name=entry.name, n=len(media), where=media[0][0],
                            what=media[0][1]), Msg("multimodal_fix"))
    if problems:
        more = Msg("data_more_rows", n=len(problems) - MAX_LISTED) if len(problems) > MAX_LISTED else ""
        raise DataError(Msg("data_bad_rows", name=entry.name, n=len(problems), rows=Lines(problems[:MAX_LISTED]),
                            more=more),
                        Msg("data_bad_rows_fix", fmt=entry.formatting or Msg("data_fmt_inferred")))
    if entry.num_samples is not None and entry.num_samples != len(items) and items:
        rng = random.Random(len(items))
        if entry.num_samples < len(items):
            items = rng.sample(items, entry.num_samples)
        else:
            items = items + rng.choices(items, k=entry.num_samples - len(items))
        log.choice(f"{entry.name}: {len(items)} rows", f"num_samples={entry.num_samples} in dataset_info.json")
    return items, {"read": n_read, "used": len(items)}


def _mix(parts: list[list[Any]], strategy: str) -> list[Any]:
    """concat; interleave: round-robin until every part is used up; interleave_under: round-robin, stop when the
    shortest part is used up (LLaMA-Factory's; the rest is left out and logged); interleave_over: round-robin, the
    shorter parts repeat until the longest is used up."""
    if strategy == "concat" or len(parts) == 1:
        return [x for p in parts for x in p]
    parts = [p for p in parts if p]
    if strategy == "interleave_under":
        n = min(len(p) for p in parts)
        left = sum(len(p) for p in parts) - n * len(parts)
        if left:
            log.choice(f"mix_strategy=interleave_under: {n * len(parts)} rows", f"{left} rows of the longer datasets "
                       "are left out (each dataset gives as many rows as the shortest)")
        return [p[i] for i in range(n) for p in parts]
    if strategy == "interleave_over":
        n = max(len(p) for p in parts)
        return [p[i % len(p)] for i in range(n) for p in parts]
    out = []
    for i in range(max(len(p) for p in parts)):
        out += [p[i] for p in parts if i < len(p)]
    return out


def encode_items(items: list[Any], stage: str, tokenizer, fmt: ChatFormat, args: DataArgs,
                 stats: EncodeStats, max_new_tokens: int = 0) -> list[Sample] | list[PairSample]:
    out: list = []
    for item in items:
        if stage in PREFERENCE_STAGES:
            if item.prompt.system is None and args.default_system is not None:
                item.prompt.system = args.default_system
            p = encode_preference(fmt, tokenizer, item, stage, args.cutoff_len, stats, max_new_tokens,
                                  args.truncation)
            if p is not None:
                out.append(p)
        elif stage == "pt":
            out += encode_text(tokenizer, item, args.cutoff_len, stats)
        else:
            conv: Conversation = item
            if conv.system is None and args.default_system is not None:
                conv.system = args.default_system
            s = encode_conversation(fmt, tokenizer, conv, args.cutoff_len, stats, args.train_on_prompt,
                                    args.mask_history, args.truncation)
            if s is not None:
                out.append(s)
    return out


def build_data(args: DataArgs, stage: str, tokenizer, fmt: ChatFormat, seed: int,
               max_new_tokens: int = 0, hub: HubOptions | None = None) -> DataBundle:
    catalog = load_catalog(args.dataset_dir)
    parts, counts = [], {}
    for name in split_names(args.dataset):
        entry = lookup(catalog, name, args.dataset_dir)
        if entry is None:  # preflight reports unknown names with the list of known ones
            raise DataError(Msg("data_unknown", name=name), Msg("data_known_fix", known=", ".join(sorted(catalog))))
        items, c = read_dataset(entry, args, stage, hub)
        parts.append(items)
        counts[name] = c
    items = _mix(parts, args.mix_strategy)
    eval_items: list[Any] = []
    if args.eval_dataset:
        for name in split_names(args.eval_dataset):
            entry = lookup(catalog, name, args.dataset_dir)
            if entry is None:
                raise DataError(Msg("data_unknown_eval", name=name),
                                Msg("data_known_fix", known=", ".join(sorted(catalog))))
            eval_items += read_dataset(entry, args, stage, hub)[0]
    elif args.val_size > 0:
        n_val = int(args.val_size) if args.val_size >= 1 else max(1, round(len(items) * args.val_size))
        if n_val >= len(items):
            raise DataError(Msg("data_val_size", val_size=args.val_size, n=len(items)), Msg("data_val_size_fix"))
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        held = set(order[:n_val])
        eval_items = [items[i] for i in sorted(held)]
        items = [x for i, x in enumerate(items) if i not in held]
    stats, eval_stats = EncodeStats(), EncodeStats()
    train = encode_items(items, stage, tokenizer, fmt, args, stats, max_new_tokens)
    evals = encode_items(eval_items, stage, tokenizer, fmt, args, eval_stats, max_new_tokens)
    if not train:
        dropped = Lines([Msg("drop_count", n=n, reason=reason) for reason, n in stats.dropped.items()], sep="; ")
        raise DataError(Msg("data_nothing_left", dropped=dropped),
                        Msg("data_nothing_left_fix"))
    report = {"datasets": counts, "rows_read": sum(c["read"] for c in counts.values()),
              "train": stats.to_dict(), "eval": eval_stats.to_dict()}
    for reason, n in stats.dropped.items():
        log.warn(f"dropped {n} training sample(s): {reason}")
    if stats.truncated:
        log.warn(f"truncated {stats.truncated} sample(s) to cutoff_len={args.cutoff_len} "
                 f"({stats.truncated_tokens} tokens cut)")
    return DataBundle(train, evals, report)
