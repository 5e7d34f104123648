"""Batched generation for concurrent requests: one worker thread owns the model. It takes the waiting requests
(waiting up to ``batch_wait_ms`` for more to arrive), groups them by adapter and sampling settings, and runs each
group as one left-padded ``generate`` call, up to ``max_batch_size`` sequences. Every sequence of a batch (a request's
``n`` choices are sequences too) is tracked on its own: its stop strings, its ``max_tokens``, its client leaving;
new text is handed to the request as it is decoded (streaming), and the batch ends when every sequence is done.

A request with a ``seed`` runs in a batch of its own, after ``torch.manual_seed(seed)``, so the same seeded request
gives the same sampled reply whatever else the server is doing. Requests that arrive while a batch runs wait for the
next one (no joining mid-generation)."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

log = logging.getLogger("tuneforge.api")
_unique = itertools.count()


@dataclass(eq=False)  # compared (and hashed) by identity
class Job:
    """One request: its prompt token ids, its choices and limits, and where its events go.

    Events passed to ``emit`` (from the worker thread): ``("delta", index, text)``, ``("done", index,
    finish_reason, completion_tokens, text)`` and ``("error", status, message)``."""

    prompt_ids: list[int]
    max_tokens: int
    gen_kw: dict[str, Any]  # sampling settings for generate (do_sample, temperature, top_p, ...)
    emit: Callable[[tuple], None]
    n: int = 1
    stop: list[str] = field(default_factory=list)
    strip: bool = True  # chat replies: no leading/trailing whitespace (as the chat engine cleans them)
    adapter: str | None = None
    seed: int | None = None
    keep_special: bool = False  # decode with special tokens (tool-call markers that are special tokens)
    tools: list[dict] | None = None  # the tools the reply may call: its calls are decoded schema-guided
    force_call: bool = False  # the reply must be a call (tool_choice "required" or a named function)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def key(self) -> tuple:
        sampling = tuple(sorted((k, v) for k, v in self.gen_kw.items()))
        return (self.adapter, sampling, ("seed", self.seed, next(_unique)) if self.seed is not None else None)


class Row:
    """One sequence of a batch: the tokens it generated, the text already sent, why it stopped."""

    def __init__(self, job: Job, index: int, decode: Callable[[list[int], bool], str], stop_ids: set[int]):
        self.job, self.index, self.decode, self.stop_ids = job, index, decode, stop_ids
        self.ids: list[int] = []
        self.sent = 0
        self.done = False

    def _text(self) -> str:
        text = self.decode(self.ids, self.job.keep_special)
        return text.lstrip() if self.job.strip else text

    def _held(self, text: str) -> int:
        """How many trailing characters to hold back: a possible start of a stop string, an unfinished UTF-8
        character, trailing whitespace of a reply that is stripped at its end."""
        hold = 0
        for s in self.job.stop:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        end = len(text) - hold
        while end > 0 and (text[end - 1] == "\ufffd" or (self.job.strip and text[end - 1].isspace())):
            end -= 1
        return end

    def step(self, tok: int) -> None:
        if self.done:
            return
        if self.job.cancelled.is_set():
            self.done = True
            return
        if tok in self.stop_ids:
            self.finish("stop", self._text(), 1)
            return
        self.ids.append(tok)
        text = self._text()
        cuts = [text.find(s) for s in self.job.stop if s and s in text]
        if cuts:
            self.finish("stop", text[: min(cuts)])
        elif len(self.ids) >= self.job.max_tokens:
            self.finish("length", text)
        else:
            end = self._held(text)
            if end > self.sent:
                self.job.emit(("delta", self.index, text[self.sent:end]))
                self.sent = end

    def finish(self, reason: str, text: str | None = None, extra_tokens: int = 0) -> None:
        if self.done:
            return
        self.done = True
        text = self._text() if text is None else text
        if self.job.strip:
            text = text.rstrip()
        if len(text) > self.sent:
            self.job.emit(("delta", self.index, text[self.sent:]))
        self.job.emit(("done", self.index, reason, len(self.ids) + extra_tokens, text))


class Feeder:
    """Hands each new token to its row: as a stopping criterion of ``generate`` (it sees every step's ids before
    the loop decides to stop, so a row that just finished is stopped at once), or as a streamer for decoders
    that take no stopping criteria (prompt-based adapters)."""

    def __init__(self, rows: list[Row], prompt_len: int):
        self.rows, self.prompt_len, self.seen = rows, prompt_len, 0
        self.first_put = True

    def _feed(self, new: list[list[int]]) -> None:
        for row, toks in zip(self.rows, new):
            for t in toks:
                row.step(t)

    def __call__(self, input_ids: torch.Tensor, scores=None, **kw) -> torch.Tensor:
        gen = input_ids[:, self.prompt_len + self.seen:].tolist()
        self.seen += len(gen[0]) if gen else 0
        self._feed(gen)
        return torch.tensor([r.done for r in self.rows], dtype=torch.bool, device=input_ids.device)

    def put(self, value: torch.Tensor) -> None:  # streamer interface
        if self.first_put:  # the prompt
            self.first_put = False
            return
        self._feed([[t] for t in value.view(-1).tolist()])

    def end(self) -> None:
        for r in self.rows:
            r.finish("length")


class Scheduler:
    def __init__(self, backend, max_batch_size: int = 8, batch_wait_ms: float = 10.0, max_queue: int = 256):
        self.backend, self.max_batch, self.wait = backend, max_batch_size, batch_wait_ms / 1000
        self.q: queue.Queue = queue.Queue(maxsize=max_queue)
        self.batches: list[int] = []  # sequences per batch run (for tests and the load report)
        # held while a batch runs: whoever else uses the model (a test's reference decode) waits for the batch,
        # whose last events are sent before generate returns and the adapter context closes
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tuneforge-api-scheduler", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when the queue is full (the caller answers 503)."""
        try:
            self.q.put_nowait(job)
            return True
        except queue.Full:
            return False

    def close(self) -> None:
        self.q.put(None)
        self._thread.join(timeout=30)

    def _gather(self, first: Job) -> list[Job] | None:
        jobs = [first]
        deadline = time.monotonic() + self.wait
        while sum(j.n for j in jobs) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                job = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.q.put(None)
                break
            jobs.append(job)
        return jobs

    def _loop(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                return
            jobs = [j for j in self._gather(first) if not j.cancelled.is_set()]
            groups: dict[tuple, list[Job]] = {}
            for j in jobs:
                groups.setdefault(j.key(), []).append(j)
            for group in groups.values():
                rows = [(j, i) for j in group for i in range(j.n)]
                for start in range(0, len(rows), self.max_batch):
                    with self.lock:
                        self._run(rows[start: start + self.max_batch])

    def _run(self, members: list[tuple[Job, int]]) -> None:
        b = self.backend
        rows = [Row(j, i, b.decode, b.stop_ids) for j, i in members]
        job = members[0][0]
        try:
            prompts = [j.prompt_ids for j, _ in members]
            width = max(len(p) for p in prompts)
            pad = b.pad_id
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=b.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=b.device)
            feeder = Feeder(rows, width)
            if job.seed is not None:
                torch.manual_seed(job.seed)
            self.batches.append(len(rows))
            b.generate(job.adapter, ids, mask, dict(job.gen_kw), max(j.max_tokens for j, _ in members), feeder,
                       [j.tools for j, _ in members], [j.force_call for j, _ in members])
            feeder.end()
        except Exception as e:  # the model failed on this batch: its requests get an error, the server keeps going
            log.exception("generation failed")
            for j in dict.fromkeys(j for j, _ in members):
                j.emit(("error", 500, f"generation failed ({type(e).__name__}: {e}); the server keeps running"))
            for r in rows:
                r.done = True
