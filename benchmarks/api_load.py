"""Load test of `tuneforge api` on loopback: N concurrent streaming chat requests, served batched (the scheduler
gathers them into shared generate calls) and served one at a time (the same server code with --max_batch_size 1,
the same N concurrent clients, so each request waits for the ones before it). Same requests, greedy decoding, same
max_tokens in both runs; reports p50/p95 time to first token, p50/p95 total latency and aggregate completion tokens/s.

    python benchmarks/api_load.py [--model smollm2-135m-instruct] [--streams 8] [--max_tokens 32]

The server runs in this process (a uvicorn thread) and the clients are threads of the official openai client, so
client work shares the CPU with the model: on a small machine the absolute numbers are pessimistic, the ratio is
the point. Prints a Markdown table (docs/benchmarks.md holds a run of it).
"""

from __future__ import annotations

import argparse
import platform
import threading
import time

QUESTIONS = ["What is the capital of France?", "Name three primary colors.", "How many legs does a spider have?",
             "What is 12 times 12?", "Who wrote Romeo and Juliet?", "What is the boiling point of water?",
             "Give me a synonym for happy.", "What planet is closest to the sun?", "Translate 'thank you' to French.",
             "What is the largest ocean?", "How many days are in a leap year?", "What gas do plants absorb?",
             "What is the square root of 81?", "Name a mammal that can fly.", "What color is the sky on a clear day?",
             "What language is spoken in Brazil?"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def run_load(url: str, model: str, prompts: list[str], max_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    res: list[dict] = [{} for _ in prompts]
    barrier = threading.Barrier(len(prompts))

    def one(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        first, tokens = None, 0
        for ch in client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompts[i]}],
                                                 max_tokens=max_tokens, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}):
            if first is None and ch.choices and ch.choices[0].delta.content:
                first = time.perf_counter() - t0
            if ch.usage:
                tokens = ch.usage.completion_tokens
        res[i] = {"ttft": first if first is not None else time.perf_counter() - t0,
                  "total": time.perf_counter() - t0, "tokens": tokens}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    toks = sum(r["tokens"] for r in res)
    return {"ttft50": pct([r["ttft"] for r in res], .5), "ttft95": pct([r["ttft"] for r in res], .95),
            "lat50": pct([r["total"] for r in res], .5), "lat95": pct([r["total"] for r in res], .95),
            "tokens": toks, "wall": wall, "tps": toks / wall}


def serve(backend, max_batch_size: int):
    import uvicorn

    from tuneforge.serve.app import create_app
    from tuneforge.serve.launch import bind
    from tuneforge.serve.options import ServeOptions

    sock = bind("127.0.0.1", 0)
    app = create_app(backend, ServeOptions(max_batch_size=max_batch_size, batch_wait_ms=20))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}", app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--max_tokens", type=int, default=32)
    a = ap.parse_args()

    import torch

    from tuneforge.infer.engine import ChatEngine
    from tuneforge.serve.backend import ChatBackend

    backend = ChatBackend(ChatEngine(a.model), "m")
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(a.streams)]
    rows = []
    for label, mbs in (("batched (--max_batch_size 8)", 8), ("one at a time (--max_batch_size 1)", 1)):
        server, thread, url, app = serve(backend, mbs)
        run_load(url, "m", prompts[:2], 4)  # warm-up
        app.state.server.scheduler.batches.clear()
        r = run_load(url, "m", prompts, a.max_tokens)
        r["batches"] = list(app.state.server.scheduler.batches)
        server.should_exit = True
        thread.join()
        rows.append((label, r))
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"model {a.model}; {a.streams} concurrent streams, max_tokens {a.max_tokens}, greedy\n")
    print("| serving | TTFT p50 | TTFT p95 | latency p50 | latency p95 | completion tokens | wall | tokens/s | "
          "batch sizes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['ttft50']:.2f} s | {r['ttft95']:.2f} s | {r['lat50']:.2f} s | {r['lat95']:.2f} s | "
              f"{r['tokens']} | {r['wall']:.2f} s | {r['tps']:.1f} | {r['batches']} |")
    print(f"\nbatched / one at a time: {rows[0][1]['tps'] / rows[1][1]['tps']:.2f}× tokens/s, "
          f"p95 latency {rows[0][1]['lat95'] / rows[1][1]['lat95']:.2f}×")


if __name__ == "__main__":
    main()
