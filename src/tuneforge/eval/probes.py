"""General probes for the forgetting guard: short questions (English and Chinese; facts, arithmetic, short
instructions) whose answers a rule can check — a reply is right when it contains one of the accepted answers.

The built-in set is ``eval/data/probes.json``; ``forgetting_probes FILE`` replaces it with the user's own JSONL file,
one ``{"question": ..., "answers": [...]}`` per line (``"answer": "..."`` for a single accepted answer). The built-in
replay pool (the ``general`` dataset's prompts) shares no question with the built-in probes (tested)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.errors import DataError

BUILTIN = Path(__file__).with_name("data") / "probes.json"


@dataclass(frozen=True)
class Probe:
    question: str
    answers: tuple[str, ...]
    kind: str = "fact"
    lang: str = "en"
    case: bool = False  # the answer must appear with this exact case ("CAT", not "cat")

    def ok(self, reply: str) -> bool:
        return any(contains(reply, a, self.case) for a in self.answers)


def contains(reply: str, answer: str, case: bool = False) -> bool:
    """``answer`` appears in ``reply``; an answer made of Latin letters and digits must stand as a whole word ("4"
    is not found in "14", "Sun" not in "Sunday"); Chinese answers match anywhere (no spaces between words)."""
    flags = 0 if case else re.IGNORECASE
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 .'-]*", answer):
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(answer)}(?![A-Za-z0-9])", reply, flags) is not None
    return (answer in reply) if case else (answer.lower() in reply.lower())


@dataclass
class ProbeSet:
    probes: list[Probe]
    source: str  # "built-in" or the file's path
    digest: str = field(default="")  # of the questions and answers: part of the base answers' cache key

    @property
    def questions(self) -> list[str]:
        return [p.question for p in self.probes]


def _digest(probes: list[Probe]) -> str:
    text = json.dumps([[p.question, list(p.answers), p.case] for p in probes], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _probe(row: object, where: str) -> Probe:
    if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
        raise DataError(f"{where}: a probe needs a non-empty \"question\"",
                        'write one JSON object per line: {"question": "What is 2 + 2?", "answers": ["4", "four"]}')
    answers = row.get("answers", [row["answer"]] if "answer" in row else None)
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise DataError(f"{where}: the probe {row['question']!r} has no accepted answers",
                        'add "answers": a list of strings, any of which in a reply counts as right')
    return Probe(row["question"].strip(), tuple(a.strip() for a in answers), str(row.get("kind", "fact")),
                 str(row.get("lang", "en")), bool(row.get("case", False)))


def load(path: str | Path | None = None) -> ProbeSet:
    """The built-in probes (``path`` None) or the user's JSONL (or JSON list) file."""
    if path is None:
        rows = json.loads(BUILTIN.read_text(encoding="utf-8"))
        probes = [_probe(r, f"{BUILTIN.name} row {i + 1}") for i, r in enumerate(rows)]
        return ProbeSet(probes, "built-in", _digest(probes))
    p = Path(path)
    if not p.is_file():
        raise DataError(f"forgetting_probes: no file {p}",
                        "give a JSONL file of {\"question\", \"answers\"} rows, or leave forgetting_probes unset for "
                        "the built-in probes")
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"forgetting_probes {p}: not valid JSON ({e.msg}, line {e.lineno})",
                            "write a JSON list of {\"question\", \"answers\"} objects, or JSONL") from None
        items = [(r, f"{p} item {i + 1}") for i, r in enumerate(rows)]
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((json.loads(line), f"{p} line {n}"))
            except json.JSONDecodeError as e:
                raise DataError(f"forgetting_probes {p} line {n}: not valid JSON ({e.msg})",
                                'one object per line: {"question": "...", "answers": ["..."]}') from None
    probes = [_probe(r, w) for r, w in items]
    if not probes:
        raise DataError(f"forgetting_probes {p}: the file holds no probes",
                        'add lines like {"question": "What is 2 + 2?", "answers": ["4"]}')
    return ProbeSet(probes, str(p), _digest(probes))


def check(path: str | None) -> str | None:
    """A problem with ``forgetting_probes`` (before any weights load), or None."""
    try:
        load(path)
    except DataError as e:
        return str(e)
    return None


@dataclass
class Retention:
    """Of the probes the base model got right, the share the tuned model still gets right."""

    base_correct: int
    kept: int
    total: int
    lost: list[dict]  # {question, base, tuned} for each probe the tuned model lost
    gained: int = 0  # probes the base got wrong and the tuned model gets right

    @property
    def retention(self) -> float | None:
        return self.kept / self.base_correct if self.base_correct else None

    def line(self) -> str:
        if self.retention is None:
            return f"the base model answered none of the {self.total} probes correctly: retention not measured"
        return f"retention {self.kept}/{self.base_correct} ({100 * self.retention:.1f}%) of the probes the base " \
               f"model answered correctly ({self.total} probes)"


def retention(probes: ProbeSet, base: list[str], tuned: list[str]) -> Retention:
    base_ok = [p.ok(r) for p, r in zip(probes.probes, base)]
    tuned_ok = [p.ok(r) for p, r in zip(probes.probes, tuned)]
    lost = [{"question": p.question, "base": b, "tuned": t}
            for p, b, t, bo, to in zip(probes.probes, base, tuned, base_ok, tuned_ok) if bo and not to]
    return Retention(sum(base_ok), sum(b and t for b, t in zip(base_ok, tuned_ok)), len(probes.probes), lost,
                     sum(t and not b for b, t in zip(base_ok, tuned_ok)))
