"""The routes of `tuneforge api`: /v1/models, /v1/chat/completions, /v1/completions, /v1/score (and /health).

Every generating request becomes ``scheduler.Job`` s (one per prompt; its ``n`` choices are sequences of the same
batch); the route waits for their events, or streams them as server-sent events in OpenAI's chunk format."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from tuneforge.serve import errors
from tuneforge.serve.convert import hf_messages, hf_tools
from tuneforge.serve.errors import APIError
from tuneforge.serve.options import ServeOptions
from tuneforge.serve.protocol import ChatMessage, ChatRequest, CompletionRequest, Sampling, ScoreRequest, unsupported
from tuneforge.serve.scheduler import Job, Scheduler

MAX_STOPS = 4  # as OpenAI


def _channel():
    """(asyncio queue, thread-safe emit for job k): the worker thread's events, tagged with their job."""
    loop, q = asyncio.get_running_loop(), asyncio.Queue()

    def emit_for(k: int):
        def emit(ev: tuple) -> None:
            try:
                loop.call_soon_threadsafe(q.put_nowait, (k, ev))
            except RuntimeError:  # the event loop is gone (server shutting down)
                pass
        return emit
    return q, emit_for


class Server:
    def __init__(self, backend, opts: ServeOptions):
        self.backend, self.opts = backend, opts
        self.created = int(time.time())
        self.scheduler = Scheduler(backend, opts.max_batch_size, opts.batch_wait_ms) if backend.kind == "chat" \
            else None
        from tuneforge.serve import tools

        self.tool_format = tools.format_of(backend) if backend.kind == "chat" else None

    # ---- checks shared by the generating routes -------------------------------------------------------------
    def adapter_for(self, model: str) -> str | None:
        if model not in self.backend.adapters:
            raise APIError(404, f"the model {model!r} is not served here; served: "
                                f"{', '.join(self.backend.adapters)} (GET /v1/models lists them)", "model",
                           "model_not_found")
        return self.backend.adapters[model]

    def need(self, kind: str, route: str) -> None:
        if self.backend.kind != kind:
            if kind == "rm":
                raise APIError(400, f"{route} needs a reward model: this server serves a chat model; start "
                                    "`tuneforge api --stage rm --model_name_or_path BASE --adapter_name_or_path "
                                    "RM_RUN` for scores", code="wrong_stage")
            raise APIError(400, f"{route} needs a chat model: this server serves a reward model (--stage rm), "
                                "which only scores (POST /v1/score)", code="wrong_stage")

    def limits(self, req: Sampling, max_tokens: int | None, prompts: int = 1) -> int:
        bad = unsupported(req)
        if bad:
            them = "them" if len(bad) > 1 else "it"
            raise APIError(400, f"{', '.join(bad)}: not supported by tuneforge api; leave {them} unset", bad[0],
                           "unsupported_parameter")
        if req.n * prompts > self.opts.max_n:
            raise APIError(400, f"n={req.n}" + (f" × {prompts} prompts" if prompts > 1 else "") +
                           f" is more than this server's limit of {self.opts.max_n} choices per request; ask for "
                           f"fewer (or start the server with a larger --max_n)", "n", "limit_exceeded")
        if max_tokens is None:
            max_tokens = min(self.backend.gen.max_new_tokens, self.opts.max_tokens_limit)
        if max_tokens > self.opts.max_tokens_limit:
            raise APIError(400, f"max_tokens={max_tokens} is more than this server's limit of "
                                f"{self.opts.max_tokens_limit}; ask for fewer (or start the server with a larger "
                                "--max_tokens_limit)", "max_tokens", "limit_exceeded")
        stops = [req.stop] if isinstance(req.stop, str) else (req.stop or [])
        if len(stops) > MAX_STOPS:
            raise APIError(400, f"stop has {len(stops)} sequences; at most {MAX_STOPS}", "stop")
        return max_tokens

    def fits(self, prompt_ids: list[int], max_tokens: int, param: str) -> None:
        limit = self.backend.max_positions
        if limit and len(prompt_ids) + max_tokens > limit:
            raise APIError(400, f"the prompt has {len(prompt_ids)} tokens and max_tokens is {max_tokens}: together "
                                f"more than the model's {limit} positions; shorten the {param} or lower max_tokens",
                           param, "context_length_exceeded")

    def job(self, req: Sampling, prompt_ids, max_tokens, emit, adapter, strip: bool, stops: list[str],
            keep_special: bool = False, tools: list[dict] | None = None, force_call: bool = False) -> Job:
        user_stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        return Job(prompt_ids, max_tokens, self.backend.sampling(req.temperature, req.top_p), emit, req.n,
                   [s for s in stops + user_stops if s], strip, adapter, req.seed, keep_special=keep_special,
                   tools=tools, force_call=force_call)

    def submit(self, jobs: list[Job]) -> None:
        for j in jobs:
            if not self.scheduler.submit(j):
                for done in jobs:
                    done.cancelled.set()
                raise APIError(503, "the server's queue is full; retry in a moment", code="server_busy")


async def _results(q: asyncio.Queue, jobs: list[Job]) -> list[list[tuple]]:
    """Wait for every choice of every job: [job][index] → (finish_reason, completion_tokens, text)."""
    out: list[dict] = [{} for _ in jobs]
    try:
        while sum(len(o) for o in out) < sum(j.n for j in jobs):
            k, ev = await q.get()
            if ev[0] == "done":
                out[k][ev[1]] = ev[2:]
            elif ev[0] == "error":
                raise APIError(ev[1], ev[2], code="generation_failed")
    finally:
        for j in jobs:
            j.cancelled.set()
    return [[o[i] for i in range(j.n)] for o, j in zip(out, jobs)]


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app(backend, opts: ServeOptions) -> FastAPI:
    from contextlib import asynccontextmanager

    srv = Server(backend, opts)

    @asynccontextmanager
    async def lifespan(app):
        yield
        if srv.scheduler is not None:
            await run_in_threadpool(srv.scheduler.close)

    app = FastAPI(title="tuneforge api", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = srv
    errors.install(app)
    app.add_middleware(errors.Guard, api_key=opts.api_key, max_bytes=opts.max_request_bytes)
    if opts.cors_origins:  # added last = outermost: answers CORS preflights (which carry no key) itself
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=opts.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    def model_card(name: str) -> dict:
        return {"id": name, "object": "model", "created": srv.created, "owned_by": "tuneforge",
                "parent": None if backend.adapters[name] is None else backend.base_name,
                "root": backend.paths.get(name, backend.base_name)}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card(n) for n in backend.adapters]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str):
        srv.adapter_for(name)
        return model_card(name)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        srv.need("chat", "/v1/chat/completions")
        adapter = srv.adapter_for(req.model)
        max_tokens = srv.limits(req, req.max_completion_tokens or req.max_tokens)
        from tuneforge.serve import tools as T

        mode = T.mode(req, srv.tool_format, backend.gen.guided_tool_calls)
        tools = hf_tools(req.tools)
        messages = hf_messages(req.messages, tools)
        try:
            prompt = backend.chat_prompt(messages, tools if mode.render else None)
        except Exception as e:  # the chat template refused the conversation (jinja2 raise_exception, bad roles)
            raise APIError(400, f"the model's chat template cannot render these messages: {e}", "messages") from None
        srv.fits(prompt, max_tokens, "messages")
        q, emit_for = _channel()
        job = srv.job(req, prompt, max_tokens, emit_for(0), adapter, True, backend.template_stops,
                      keep_special=mode.parse, tools=T.guided_tools(tools, mode), force_call=mode.force)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        srv.submit([job])
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_chat_stream(q, job, rid, created, req.model, mode, include_usage),
                                     media_type="text/event-stream")
        choices, completion = [], 0
        for i, (reason, ntok, text) in enumerate((await _results(q, [job]))[0]):
            completion += ntok
            message, reason = T.reply_message(text, reason, mode)
            choices.append({"index": i, "message": message, "finish_reason": reason, "logprobs": None})
        return {"id": rid, "object": "chat.completion", "created": created, "model": req.model,
                "choices": choices, "usage": _usage(len(prompt), completion)}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        srv.need("chat", "/v1/completions")
        adapter = srv.adapter_for(req.model)
        texts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not texts:
            raise APIError(400, "prompt is an empty list; give a string or a list of strings", "prompt")
        max_tokens = srv.limits(req, req.max_tokens, len(texts))
        prompts = [backend.text_prompt(t) for t in texts]
        for p in prompts:
            srv.fits(p, max_tokens, "prompt")
        q, emit_for = _channel()
        jobs = [srv.job(req, p, max_tokens, emit_for(k), adapter, False, []) for k, p in enumerate(prompts)]
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        srv.submit(jobs)
        prompt_tokens = sum(len(p) for p in prompts)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_completion_stream(q, jobs, rid, created, req.model, prompt_tokens,
                                                        include_usage), media_type="text/event-stream")
        choices, completion = [], 0
        for k, per_job in enumerate(await _results(q, jobs)):
            for i, (reason, ntok, text) in enumerate(per_job):
                completion += ntok
                choices.append({"index": k * req.n + i, "text": text, "finish_reason": reason, "logprobs": None})
        return {"id": rid, "object": "text_completion", "created": created, "model": req.model,
                "choices": choices, "usage": _usage(prompt_tokens, completion)}

    @app.post("/v1/score")
    async def score(req: ScoreRequest):
        srv.need("rm", "/v1/score")
        srv.adapter_for(req.model)
        convs = []
        for i, item in enumerate(req.input):
            if item.messages:
                convs.append(hf_messages(item.messages))
            elif item.prompt is not None and item.response is not None:
                convs.append(hf_messages([ChatMessage(role="user", content=item.prompt),
                                          ChatMessage(role="assistant", content=item.response)]))
            else:
                raise APIError(400, f"input[{i}] needs `messages` (ending with the reply to score) or `prompt` and "
                                    "`response`", f"input[{i}]")
        lengths = backend.lengths(convs)
        limit = backend.max_positions
        for i, n in enumerate(lengths):
            if limit and n > limit:
                raise APIError(400, f"input[{i}] has {n} tokens, more than the model's {limit} positions; shorten "
                                    "it", f"input[{i}]", "context_length_exceeded")
        scores = await run_in_threadpool(backend.score, convs)
        return {"object": "list", "model": req.model,
                "data": [{"object": "score", "index": i, "score": s} for i, s in enumerate(scores)],
                "usage": {"prompt_tokens": sum(lengths), "total_tokens": sum(lengths)}}

    return app


async def _chat_stream(q, job: Job, rid, created, model, mode, include_usage) -> AsyncIterator[str]:
    from tuneforge.serve import tools as T

    def chunk(index, delta, reason=None):
        return _sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}]})

    try:
        for i in range(job.n):
            yield chunk(i, {"role": "assistant", "content": ""})
        text = {i: "" for i in range(job.n)}  # what each choice generated so far
        sent = {i: 0 for i in range(job.n)}  # how much of it was sent as content
        finished, completion = 0, 0
        while finished < job.n:
            _, ev = await q.get()
            if ev[0] == "delta":
                i = ev[1]
                text[i] += ev[2]
                end = T.safe_len(text[i], mode)
                if end > sent[i]:
                    yield chunk(i, {"content": text[i][sent[i]:end]})
                    sent[i] = end
            elif ev[0] == "done":
                i, (reason, ntok, final) = ev[1], ev[2:]
                completion += ntok
                message, reason = T.reply_message(final, reason, mode)
                if message.get("tool_calls"):
                    rest = (message.get("content") or "")[sent[i]:]
                    if rest:
                        yield chunk(i, {"content": rest})
                    calls = [{"index": k, **c} for k, c in enumerate(message["tool_calls"])]
                    yield chunk(i, {"tool_calls": calls})
                else:
                    rest = (message.get("content") or "")[sent[i]:]
                    if rest:
                        yield chunk(i, {"content": rest})
                yield chunk(i, {}, reason)
                finished += 1
            elif ev[0] == "error":
                yield _sse(errors.body(ev[1], ev[2], code="generation_failed"))
                return
        if include_usage:
            yield _sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [], "usage": _usage(len(job.prompt_ids), completion)})
        yield "data: [DONE]\n\n"
    finally:  # the client left (or all is sent): its sequences stop at their next token
        job.cancelled.set()


async def _completion_stream(q, jobs: list[Job], rid, created, model, prompt_tokens,
                             include_usage) -> AsyncIterator[str]:
    def chunk(index, text, reason=None):
        return _sse({"id": rid, "object": "text_completion", "created": created, "model": model,
                     "choices": [{"index": index, "text": text, "finish_reason": reason, "logprobs": None}]})

    try:
        total, finished, completion = sum(j.n for j in jobs), 0, 0
        n = jobs[0].n
        while finished < total:
            k, ev = await q.get()
            if ev[0] == "delta":
                yield chunk(k * n + ev[1], ev[2])
            elif ev[0] == "done":
                completion += ev[3]
                yield chunk(k * n + ev[1], "", ev[2])
                finished += 1
            elif ev[0] == "error":
                yield _sse(errors.body(ev[1], ev[2], code="generation_failed"))
                return
        if include_usage:
            yield _sse({"id": rid, "object": "text_completion", "created": created, "model": model, "choices": [],
                        "usage": _usage(prompt_tokens, completion)})
        yield "data: [DONE]\n\n"
    finally:
        for j in jobs:
            j.cancelled.set()
