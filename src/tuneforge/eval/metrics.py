"""BLEU-4 and ROUGE-1/2/L of generated text against references, as LLaMA-Factory's predict step reports them
(scores × 100, averaged over samples).

A small implementation, tested against hand-computed values: the well-kept packages either cannot segment Chinese
(rouge-score's tokenizer drops non-Latin text) or are unmaintained (rouge-chinese), and nltk would be a new
dependency for one formula. BLEU-4 follows nltk's ``sentence_bleu`` with ``SmoothingFunction().method3`` (NIST
geometric smoothing of zero n-gram counts), which is LLaMA-Factory's choice; ROUGE-N/L are F1 scores of n-gram
overlap and of the longest common subsequence. Text is split into words and punctuation, Chinese into characters —
or into jieba's words where jieba is installed (``pip install jieba``), as LLaMA-Factory does."""

from __future__ import annotations

import math
import re
from collections import Counter

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+|[^\w\s]", re.UNICODE)


def _jieba():
    try:
        import jieba  # optional

        jieba.setLogLevel(60)
        return jieba
    except ImportError:
        return None


def tokenize(text: str, use_jieba: bool | None = None) -> list[str]:
    """Words and punctuation; Chinese runs as characters, or jieba's words (``use_jieba`` None: where installed)."""
    jb = _jieba() if use_jieba in (None, True) else None
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        if re.fullmatch(rf"[{_CJK}]+", tok):
            out += [w for w in jb.lcut(tok) if w.strip()] if jb else list(tok)
        else:
            out.append(tok.lower())
    return out


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))


def bleu4(hyp: list[str], ref: list[str]) -> float:
    """Sentence BLEU-4 (uniform weights, brevity penalty, method3 smoothing), in [0, 1]."""
    if not hyp or not ref:
        return 0.0
    nums, dens = [], []
    for n in range(1, 5):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        nums.append(sum(min(c, r[g]) for g, c in h.items()))
        dens.append(max(1, sum(h.values())))
    if nums[0] == 0:
        return 0.0
    k, logs = 1, []
    for num, den in zip(nums, dens):
        if num == 0:  # method3: 1 / (2^k · denominator) for the k-th zero count
            k *= 2
            logs.append(math.log(1 / (k * den)))
        else:
            logs.append(math.log(num / den))
    c, r = len(hyp), len(ref)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(logs) / 4)


def _f1(overlap: int, n_hyp: int, n_ref: int) -> float:
    if not overlap or not n_hyp or not n_ref:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(hyp: list[str], ref: list[str], n: int) -> float:
    h, r = _ngrams(hyp, n), _ngrams(ref, n)
    return _f1(sum((h & r).values()), sum(h.values()), sum(r.values()))


def lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hyp: list[str], ref: list[str]) -> float:
    return _f1(lcs(hyp, ref), len(hyp), len(ref))


def scores(predictions: list[str], references: list[str], use_jieba: bool | None = None) -> dict:
    """Averages over the samples, × 100: bleu-4, rouge-1, rouge-2, rouge-l."""
    totals = {"bleu-4": 0.0, "rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    for p, r in zip(predictions, references):
        h, ref = tokenize(p, use_jieba), tokenize(r, use_jieba)
        totals["bleu-4"] += bleu4(h, ref)
        totals["rouge-1"] += rouge_n(h, ref, 1)
        totals["rouge-2"] += rouge_n(h, ref, 2)
        totals["rouge-l"] += rouge_l(h, ref)
    n = max(len(predictions), 1)
    return {k: round(100 * v / n, 4) for k, v in totals.items()}
