"""Did the new identity take, and did general knowledge survive?

* hit rate: the share of identity questions whose reply contains the new name;
* retention: of the general questions the *base* model answers correctly (an accepted answer appears in the reply),
  the share the tuned model still answers correctly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def correct(reply: str, answers: list[str]) -> bool:
    low = reply.lower()
    return any(a.lower() in low for a in answers)


@dataclass
class IdentityReport:
    hit_rate: float
    hits: int
    asked: int
    retention: float | None
    kept: int
    base_correct: int
    misses: list[dict] = field(default_factory=list)  # identity replies without the name
    forgotten: list[dict] = field(default_factory=list)  # general answers lost

    def to_dict(self) -> dict:
        return self.__dict__.copy()

    def line(self) -> str:
        ret = "n/a" if self.retention is None else f"{self.kept}/{self.base_correct} ({100 * self.retention:.1f}%)"
        return f"hit {self.hits}/{self.asked} ({100 * self.hit_rate:.1f}%), retention {ret}"


def identity_hits(replies: list[str], name: str) -> tuple[int, list[int]]:
    miss = [i for i, r in enumerate(replies) if name.lower() not in r.lower()]
    return len(replies) - len(miss), miss


def score(name: str, identity_qs: list[str], identity_replies: list[str], general: list[dict],
          base_replies: list[str], tuned_replies: list[str]) -> IdentityReport:
    hits, miss = identity_hits(identity_replies, name)
    base_ok = [i for i, g in enumerate(general) if correct(base_replies[i], g["answers"])]
    kept = [i for i in base_ok if correct(tuned_replies[i], general[i]["answers"])]
    return IdentityReport(
        hit_rate=hits / max(len(identity_replies), 1), hits=hits, asked=len(identity_replies),
        retention=(len(kept) / len(base_ok)) if base_ok else None, kept=len(kept), base_correct=len(base_ok),
        misses=[{"question": identity_qs[i], "reply": identity_replies[i]} for i in miss],
        forgotten=[{"question": general[i]["question"], "base": base_replies[i], "tuned": tuned_replies[i]}
                   for i in base_ok if i not in kept])


@dataclass
class HeldOut:
    """Held-out questions: ``identity`` rows {question, lang}; ``general`` rows {question, answers}."""
    identity: list[dict]
    general: list[dict]

    @classmethod
    def load(cls, data_dir: str | Path) -> "HeldOut":
        """Reads identity_heldout.json and general_heldout.json from ``data_dir`` (the repository's tests/data)."""
        d = Path(data_dir)
        return cls(json.loads((d / "identity_heldout.json").read_text(encoding="utf-8")),
                   json.loads((d / "general_heldout.json").read_text(encoding="utf-8")))


# Something that answers: a ChatEngine (asked with greedy decoding), or any function from questions to replies.
Answerer = Callable[[list[str]], list[str]]


def answerer(engine_or_fn, max_new_tokens: int = 40, batch_size: int = 25) -> Answerer:
    if callable(engine_or_fn) and not hasattr(engine_or_fn, "generate"):
        return engine_or_fn
    from tuneforge.config.schema import GenerateArgs

    gen = GenerateArgs(max_new_tokens=max_new_tokens)
    return lambda qs: engine_or_fn.generate([[{"role": "user", "content": q}] for q in qs], gen,
                                            batch_size=batch_size)


def engine_for(run_dir: str | Path, base_model: str):
    """A ChatEngine for a training run's output: an adapter folder on ``base_model``, or a whole saved model."""
    from tuneforge.infer.engine import ChatEngine

    run_dir = str(run_dir)
    if (Path(run_dir) / "adapter_config.json").is_file():
        return ChatEngine(base_model, run_dir)
    return ChatEngine(run_dir)


def base_replies(engine_or_fn, heldout: HeldOut, max_new_tokens: int = 40) -> list[str]:
    """The base model's replies to the general questions (computed once, reused for every tuned model)."""
    return answerer(engine_or_fn, max_new_tokens)([g["question"] for g in heldout.general])


def evaluate(engine_or_fn, name: str, heldout: HeldOut, base: Sequence[str] | None = None,
             max_new_tokens: int = 40) -> IdentityReport:
    """Ask the tuned model every held-out question and score it. ``base``: the base model's general replies
    (``base_replies``); without them only the identity questions are asked and retention is None."""
    ask = answerer(engine_or_fn, max_new_tokens)
    id_qs = [q["question"] for q in heldout.identity]
    id_replies = ask(id_qs)
    if base is None:
        return score(name, id_qs, id_replies, [], [], [])
    return score(name, id_qs, id_replies, heldout.general, list(base),
                 ask([g["question"] for g in heldout.general]))
