"""Multiple-choice benchmarks in the MMLU / CMMLU / C-Eval layout, scored by the choice letters' log-probabilities.

A task is a folder of per-subject files split into ``dev`` (few-shot examples), ``val`` and ``test``:

    TASK_DIR/TASK/dev/<subject>_dev.csv    TASK_DIR/TASK/test/<subject>_test.csv    (or .json / .jsonl)

CSV rows are ``question, A, B, C, D, answer`` (MMLU's files have no header; C-Eval's and CMMLU's header rows — id,
question, A…D, answer — are recognised by their column names); JSON rows are objects with ``question``, the choices
(``A``…``D`` or a ``choices`` list) and ``answer`` (a letter or a 0-based index). The prompt is the subject's
instruction, ``n_shot`` solved dev questions and the question, in the model's chat template; the predicted answer is
the letter whose token the model rates most likely as the first token of its reply (batched, left-padded)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.errors import DataError

LETTERS = "ABCDEFGH"
SAMPLES = Path(__file__).with_name("data") / "mc"  # built-in tiny sets written for tuneforge: sample_en, sample_zh
SPLITS = ("test", "val", "validation", "dev")
HEAD = {"en": "The following are multiple choice questions (with answers) about {subject}.\n\n",
        "zh": "以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n"}
ANSWER = {"en": "Answer:", "zh": "答案："}


@dataclass
class Question:
    question: str
    choices: list[str]
    answer: str  # a letter


@dataclass
class Subject:
    name: str
    test: list[Question]
    dev: list[Question] = field(default_factory=list)


def _letter(value, n: int, where: str) -> str:
    v = str(value).strip()
    if v.isdigit() and int(v) < n:
        v = LETTERS[int(v)]
    v = v.upper()
    if len(v) != 1 or v not in LETTERS[:n]:
        raise DataError(f"{where}: answer {value!r} is not one of {', '.join(LETTERS[:n])}",
                        "write the answer as the choice's letter (A, B, …) or its 0-based index")
    return v


def _from_dict(row: dict, where: str) -> Question:
    low = {str(k).strip().lower(): v for k, v in row.items()}
    q = low.get("question")
    if isinstance(low.get("choices"), list):
        choices = [str(c) for c in low["choices"]]
    else:
        choices = [str(low[c.lower()]) for c in LETTERS if c.lower() in low]
    if not q or len(choices) < 2 or "answer" not in low:
        raise DataError(f"{where}: a row needs question, choices (A, B, … or a choices list) and answer",
                        'e.g. {"question": "2 + 2 = ?", "A": "3", "B": "4", "C": "5", "D": "6", "answer": "B"}')
    return Question(str(q), choices, _letter(low["answer"], len(choices), where))


def read_file(path: Path) -> list[Question]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        if rows and "question" in [c.strip().lower() for c in rows[0]]:
            header = rows[0]
            return [_from_dict(dict(zip(header, r)), f"{path} row {i + 2}") for i, r in enumerate(rows[1:]) if r]
        out = []
        for i, r in enumerate(rows):
            if not r:
                continue
            if len(r) < 4:
                raise DataError(f"{path} row {i + 1}: {len(r)} columns; MMLU rows are question, A, B, C, D, answer",
                                "give one column per choice and the answer letter last")
            out.append(Question(r[0], r[1:-1], _letter(r[-1], len(r) - 2, f"{path} row {i + 1}")))
        return out
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else \
            [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg})", "a JSON list or JSONL rows of questions") from None
    return [_from_dict(r, f"{path} item {i + 1}") for i, r in enumerate(rows)]


def _subject_name(path: Path, split: str) -> str:
    return re.sub(rf"_({split}|dev)$", "", path.stem)


def _split_files(folder: Path, split: str) -> dict[str, Path]:
    d = folder / split
    found = {_subject_name(p, split): p for p in d.iterdir() if p.suffix in (".csv", ".json", ".jsonl")} \
        if d.is_dir() else {}
    return dict(sorted(found.items()))


def task_folder(task: str, task_dir: str | None) -> Path:
    base = Path(task_dir) if task_dir else SAMPLES
    folder = base / task
    if not folder.is_dir():
        known = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        where = f"--task_dir {task_dir}" if task_dir else "the built-in samples"
        raise DataError(f"eval: no task {task!r} in {where}",
                        f"tasks there: {', '.join(known) or 'none'}; a task is a folder with dev/ and test/ "
                        "per-subject files (MMLU/CMMLU/C-Eval layout); point --task_dir at the folder holding it")
    return folder


def load_task(task: str, task_dir: str | None = None, split: str = "test",
              subjects: list[str] | None = None) -> list[Subject]:
    """The subjects of ``task`` with their ``split`` questions and dev examples."""
    folder = task_folder(task, task_dir)
    tests = _split_files(folder, split)
    if not tests:
        raise DataError(f"eval: task {task!r} has no {split}/ files in {folder}",
                        f"splits there: {', '.join(p.name for p in folder.iterdir() if p.is_dir())}; "
                        "pick one with --split")
    devs = _split_files(folder, "dev")
    if subjects:
        missing = sorted(set(subjects) - set(tests))
        if missing:
            raise DataError(f"eval: no subject {', '.join(missing)} in task {task!r}",
                            f"subjects: {', '.join(sorted(tests))}")
        tests = {k: v for k, v in tests.items() if k in subjects}
    return [Subject(name, read_file(p), read_file(devs[name]) if name in devs else [])
            for name, p in tests.items()]


def format_question(q: Question, lang: str, with_answer: bool) -> str:
    lines = [q.question.strip()] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(q.choices)]
    return "\n".join(lines) + f"\n{ANSWER[lang]}" + (f" {q.answer}\n\n" if with_answer else "")


def prompt(subject: Subject, q: Question, n_shot: int, lang: str) -> str:
    shots = "".join(format_question(d, lang, True) for d in subject.dev[:n_shot])
    return HEAD[lang].format(subject=subject.name.replace("_", " ")) + shots + format_question(q, lang, False)


def letter_ids(tokenizer, n: int) -> list[int]:
    """The token of each choice letter as the first token of a reply (the last token of its encoding, as
    LLaMA-Factory's evaluator takes it)."""
    return [tokenizer.encode(LETTERS[i], add_special_tokens=False)[-1] for i in range(n)]


def score_prompts(engine, prompts: list[str], n_choices: list[int], batch_size: int = 8) -> list[str]:
    """The predicted letter for each prompt (``engine``: an infer.engine.ChatEngine)."""
    import torch

    tok, model = engine.tokenizer, engine.model
    tok.padding_side = "left"
    out: list[str] = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            texts = [engine.prompt_text([{"role": "user", "content": p}]) for p in prompts[i: i + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(engine.device)
            logits = model(**enc).logits[:, -1, :].float()
            for row, n in zip(logits, n_choices[i: i + batch_size]):
                ids = letter_ids(tok, n)
                out.append(LETTERS[int(torch.argmax(row[ids]))])
    return out


@dataclass
class Result:
    subjects: dict[str, dict]  # name -> {correct, total, accuracy}
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {"subjects": self.subjects, "correct": self.correct, "total": self.total,
                "accuracy": round(self.accuracy, 4)}


def evaluate(engine, subjects: list[Subject], n_shot: int = 5, lang: str = "en", batch_size: int = 8) -> Result:
    prompts, counts, owners = [], [], []
    for s in subjects:
        for q in s.test:
            prompts.append(prompt(s, q, n_shot, lang))
            counts.append(len(q.choices))
            owners.append((s.name, q.answer))
    preds = score_prompts(engine, prompts, counts, batch_size)
    per: dict[str, dict] = {s.name: {"correct": 0, "total": 0} for s in subjects}
    for (name, answer), pred in zip(owners, preds):
        per[name]["total"] += 1
        per[name]["correct"] += int(pred == answer)
    for v in per.values():
        v["accuracy"] = round(v["correct"] / v["total"], 4) if v["total"] else 0.0
    return Result(per, sum(v["correct"] for v in per.values()), sum(v["total"] for v in per.values()))


def table(results: dict[str, Result]) -> list[list]:
    """Rows [subject, accuracy per model…, (tuned − base)] with an overall row last; ``results``: label → Result
    (``base`` and ``tuned`` when compared)."""
    labels = list(results)
    names = list(next(iter(results.values())).subjects)
    rows = []
    for n in names + ["overall"]:
        accs = [(r.accuracy if n == "overall" else r.subjects[n]["accuracy"]) for r in results.values()]
        row = [n] + [round(100 * a, 1) for a in accs]
        if labels == ["base", "tuned"]:
            row.append(round(100 * (accs[1] - accs[0]), 1))
        rows.append(row)
    return rows


def headers(results: dict[str, Result]) -> list[str]:
    labels = list(results)
    return ["subject"] + [f"{lab} %" for lab in labels] + (["tuned − base"] if labels == ["base", "tuned"] else [])


def render(results: dict[str, Result]) -> str:
    rows = [headers(results)] + [[str(c) if not isinstance(c, float) else f"{c:.1f}" for c in r]
                                 for r in table(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)
