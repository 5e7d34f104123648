"""Did the new identity take, and did general knowledge survive?

* hit rate: the share of identity questions whose reply contains the new name;
* retention: of the general questions the *base* model answers correctly (an accepted answer appears in the reply),
  the share the tuned model still answers correctly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
