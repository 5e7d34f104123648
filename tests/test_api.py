"""`tuneforge api` against live uvicorn servers on loopback (random free ports), driven by the official `openai`
client (and httpx for what a client library cannot send: broken JSON, oversized or chunked bodies).

The served model is the tiny test Llama trained here for a few seconds to reply to two prompts by heart: "Who are
you?" → a sentence, and a weather question with a ``get_weather`` tool → a Hermes ``<tool_call>`` block. So a
reply's content and its tool call are the model's own greedy generation, parsed by the product's parser; nothing in
the server knows these texts."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

WHO = [{"role": "user", "content": "Who are you?"}]
WHO_REPLY = "I am Nimbus, a tiny test model."
WEATHER = [{"role": "user", "content": "Weather in Berlin?"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin"}}\n</tool_call>'


def train_by_heart(src: Path, out: Path, steps: int = 120) -> Path:
    """The tiny model, fully trained on two rendered conversations (qwen template) until greedy decoding repeats
    them; positions widened to 1024 (RoPE: nothing learned per position) so the tools prompt fits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.data import templates

    shutil.copytree(src, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["max_position_embeddings"] = 1024
    (out / "config.json").write_text(json.dumps(cfg))
    tok = AutoTokenizer.from_pretrained(out)
    fmt = templates.install(tok, "qwen")
    texts = [fmt.render(tok, WHO, add_generation_prompt=True) + WHO_REPLY + "<|im_end|>",
             fmt.render(tok, WEATHER, tools=TOOLS, add_generation_prompt=True) + CALL_TEXT + "<|im_end|>"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(out)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    enc = [torch.tensor([tok(t, add_special_tokens=False)["input_ids"]]) for t in texts]
    for _ in range(steps):
        loss = sum(model(input_ids=e, labels=e).loss for e in enc)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    return out


def random_lora(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights: it changes the replies, differently for each seed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(out)
    return out


class Live:
    """A uvicorn server in a thread, on a free loopback port."""

    def __init__(self, app):
        from tuneforge.serve.launch import bind

        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.02)

    def client(self, key: str = "unused", **kw):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kw)

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def models(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("api-models")
    mem = train_by_heart(tiny_model, d / "mem")
    return {"mem": mem, "a": random_lora(mem, d / "lora-a", 1), "b": random_lora(mem, d / "lora-b", 2)}


@pytest.fixture(scope="module")
def backend(models):
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.serve.backend import ChatBackend

    return ChatBackend(ChatEngine(str(models["mem"]), template="qwen"), "tiny",
                       {"a": str(models["a"]), "b": str(models["b"])})


@pytest.fixture(scope="module")
def live(backend):
    from tuneforge.serve.app import create_app
    from tuneforge.serve.options import ServeOptions

    srv = Live(create_app(backend, ServeOptions(max_n=4, max_tokens_limit=200, max_request_bytes=20_000,
                                                batch_wait_ms=100)))
    yield srv
    srv.close()


@contextlib.contextmanager
def serving(backend, **opts):
    from tuneforge.serve.app import create_app
    from tuneforge.serve.options import ServeOptions

    srv = Live(create_app(backend, ServeOptions(**opts)))
    try:
        yield srv
    finally:
        srv.close()


def ask(client, messages=WHO, model="tiny", **kw):
    return client.chat.completions.create(model=model, messages=messages, **kw)


# ---- chat ----------------------------------------------------------------------------------------------------------

def test_models_lists_the_base_and_each_adapter(live):
    names = [m.id for m in live.client().models.list().data]
    assert names == ["tiny", "a", "b"]
    assert live.client().models.retrieve("a").parent == "tiny"


def test_chat_reply_is_the_engines_greedy_reply_with_usage(live, backend):
    from tuneforge.adapters import use_adapter

    r = ask(live.client(), max_tokens=40)
    with live.app.state.server.scheduler.lock, use_adapter(backend.model, None):  # the base, decoded alone
        ref = backend.engine.generate([WHO])[0]
    assert r.choices[0].message.content == WHO_REPLY == ref
    assert r.choices[0].finish_reason == "stop" and r.object == "chat.completion"
    prompt = backend.chat_prompt(WHO, None)
    assert r.usage.prompt_tokens == len(prompt)
    full = backend.tokenizer(WHO_REPLY, add_special_tokens=False)["input_ids"]
    assert r.usage.completion_tokens == len(full) + 1  # the reply's tokens and the end-of-turn token
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_sends_the_same_reply_in_pieces(live):
    chunks = list(ask(live.client(), max_tokens=40, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == WHO_REPLY and len(pieces) > 3  # token by token, not one block
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_stop_max_tokens_and_max_completion_tokens(live):
    c = live.client()
    r = ask(c, stop=[" tiny", "zzz"], max_tokens=40)
    assert r.choices[0].message.content == "I am Nimbus, a" and r.choices[0].finish_reason == "stop"
    r = ask(c, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    assert WHO_REPLY.startswith(r.choices[0].message.content)
    r = ask(c, max_completion_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_n_choices_and_seeded_sampling_repeat(live, backend):
    c = live.client()
    kw = dict(model="a", n=3, temperature=1.5, seed=1234, max_tokens=12)
    first = [ch.message.content for ch in ask(c, **kw).choices]
    again = [ch.message.content for ch in ask(c, **kw).choices]
    assert len(first) == 3 and first == again  # the seed makes sampling repeatable
    other = [ch.message.content for ch in ask(c, **{**kw, "seed": 99}).choices]
    assert other != first and len(set(first)) > 1  # it does sample
    greedy = ask(c, n=2, temperature=0, max_tokens=40)
    assert [ch.message.content for ch in greedy.choices] == [WHO_REPLY, WHO_REPLY]
    assert [ch.index for ch in greedy.choices] == [0, 1]


def test_concurrent_requests_are_batched_and_answered_alike(live):
    sched = live.app.state.server.scheduler
    before = len(sched.batches)
    out, c = [], live.client()

    def one():
        out.append(ask(c, max_tokens=40).choices[0].message.content)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [WHO_REPLY] * 4
    runs = sched.batches[before:]
    assert sum(runs) == 4 and max(runs) > 1, runs  # several requests shared one generate call


# ---- tools ---------------------------------------------------------------------------------------------------------

def test_tool_call_is_parsed_from_the_generated_text(live):
    pytest.importorskip("tuneforge.infer.tools")
    r = ask(live.client(), WEATHER, tools=TOOLS, max_tokens=60)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls" and not ch.message.content
    (call,) = ch.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Berlin"}
    # without tools the same model's reply is plain text: the call came from parsing, not from the request
    plain = ask(live.client(), WEATHER, max_tokens=60).choices[0]
    assert plain.finish_reason != "tool_calls" and not plain.message.tool_calls
    # tool_choice "none": the tools are not offered, no call is parsed
    assert ask(live.client(), WEATHER, tools=TOOLS, tool_choice="none", max_tokens=60).choices[0].finish_reason != \
        "tool_calls"


def test_tool_calls_are_decoded_to_the_offered_schema(live, backend):
    """The model learned to call get_weather with city "Berlin" for the weather prompt. The same prompt in a job whose
    tools allow only Paris or Rome (the schema the server guides calls with: serve/scheduler Job.tools, as
    /v1/chat/completions sets it from the request): the server's schema-guided decoding (infer/tool_guide.py) writes
    an enum city, in the same batch as a free row; with guided_tool_calls off the model's own Berlin comes back.
    (The tools are swapped behind the rendered prompt because this tiny model writes nothing sensible for a prompt it
    has not learned by heart.)"""
    pytest.importorskip("tuneforge.infer.tools")
    import queue

    from tuneforge.infer.tools import parse_tool_calls
    from tuneforge.serve.scheduler import Job

    enum_tools = json.loads(json.dumps(TOOLS))
    enum_tools[0]["function"]["parameters"]["properties"]["city"]["enum"] = ["Paris", "Rome"]
    prompt = backend.chat_prompt(WEATHER, TOOLS)
    sched = live.app.state.server.scheduler

    def replies(tools_per_job):
        qs = [queue.Queue() for _ in tools_per_job]
        jobs = [Job(prompt, 150, backend.sampling(0, None), q.put, keep_special=True, tools=t)
                for q, t in zip(qs, tools_per_job)]
        for j in jobs:
            assert sched.submit(j)
        out = []
        for q in qs:
            while (ev := q.get(timeout=120))[0] != "done":
                assert ev[0] == "delta", ev
            out.append(parse_tool_calls(ev[4], "hermes").calls)
        return out

    guided, free = replies([enum_tools, None])
    assert guided[0].name == "get_weather" and guided[0].arguments["city"] in ("Paris", "Rome"), guided
    assert free[0].arguments == {"city": "Berlin"}, free  # the row without tools in the same batch: unguided
    backend.gen.guided_tool_calls = False
    try:
        (off,) = replies([enum_tools])
    finally:
        backend.gen.guided_tool_calls = True
    assert off[0].arguments == {"city": "Berlin"}, off


def test_tool_call_streams_as_tool_call_chunks(live):
    pytest.importorskip("tuneforge.infer.tools")
    chunks = list(ask(live.client(), WEATHER, tools=TOOLS, max_tokens=60, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not "".join(d.content or "" for d in deltas)  # the call's text is never streamed as content
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Berlin"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        ["tool_calls"]


def test_tool_result_turn_renders_and_bad_tool_messages_are_refused(live):
    pytest.importorskip("tuneforge.infer.tools")
    c = live.client()
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Berlin"}'}}
    convo = WEATHER + [{"role": "assistant", "content": None, "tool_calls": [call]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]
    r = ask(c, convo, tools=TOOLS, max_tokens=5)
    assert r.usage.prompt_tokens > len(live.app.state.server.backend.chat_prompt(WEATHER, None))
    with pytest.raises(openai.BadRequestError, match="tool_call_id 'call_9' matches no call"):
        ask(c, convo[:-1] + [{"role": "tool", "tool_call_id": "call_9", "content": "x"}], tools=TOOLS)
    bad = {**call, "function": {"name": "get_weather", "arguments": "{city: Berlin"}}
    with pytest.raises(openai.BadRequestError, match="arguments is not valid JSON"):
        ask(c, WEATHER + [{"role": "assistant", "tool_calls": [bad]}], tools=TOOLS)
    with pytest.raises(openai.BadRequestError, match="calls tool 'get_time', which is not in"):
        ask(c, WEATHER + [{"role": "assistant", "tool_calls": [{**call, "function": {"name": "get_time",
                                                                                       "arguments": "{}"}}]}],
            tools=TOOLS)


def _enum_tool(name, values):
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"mode": {"type": "string", "enum": values}}, "required": ["mode"]}}}


def test_tool_choice_required_and_named_force_a_call(live, backend):
    """"Who are you?" is answered with a sentence; with tool_choice "required" the reply is a call, and with a named
    function a call of that one (schema-guided decoding forces it; enum-only arguments keep it short)."""
    c = live.client()
    tools = [_enum_tool("set_mode", ["eco", "turbo"]), _enum_tool("set_fan", ["low", "high"])]
    assert not ask(c, WHO, tools=tools, max_tokens=120).choices[0].message.tool_calls  # the model's own: no call
    for choice, names in (("required", {"set_mode", "set_fan"}),
                          ({"type": "function", "function": {"name": "set_fan"}}, {"set_fan"})):
        for stream in (False, True):
            if stream:
                chunks = list(ask(c, WHO, tools=tools, tool_choice=choice, max_tokens=200, stream=True))
                calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
                name = next(tc.function.name for tc in calls if tc.function and tc.function.name)
                assert chunks[-1].choices[0].finish_reason == "tool_calls" and name in names
                continue
            r = ask(c, WHO, tools=tools, tool_choice=choice, max_tokens=200).choices[0]
            assert r.finish_reason == "tool_calls", r.message
            (call,) = r.message.tool_calls[:1]
            assert call.function.name in names and json.loads(call.function.arguments)["mode"] in \
                {"eco", "turbo", "low", "high"}
    with pytest.raises(openai.BadRequestError, match="names the function 'set_light', which is not in tools"):
        ask(c, WHO, tools=tools, tool_choice={"type": "function", "function": {"name": "set_light"}})
    backend.gen.guided_tool_calls = False
    try:
        with pytest.raises(openai.BadRequestError, match="cannot be honoured: the server was started with "
                                                         "--guided_tool_calls false"):
            ask(c, WHO, tools=tools, tool_choice="required")
    finally:
        backend.gen.guided_tool_calls = True


# ---- completions, adapters ------------------------------------------------------------------------------------------

def test_completions_continue_raw_text(live, backend):
    import torch

    c = live.client()
    prompt = "Who are you? I am"
    r = c.completions.create(model="tiny", prompt=prompt, max_tokens=6)
    from tuneforge.adapters import use_adapter

    ids = torch.tensor([backend.text_prompt(prompt)])
    with live.app.state.server.scheduler.lock, torch.no_grad(), use_adapter(backend.model, None):
        ref = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                     do_sample=False, eos_token_id=sorted(backend.stop_ids),
                                     pad_token_id=backend.pad_id)
    assert r.choices[0].text == backend.decode(ref[0, ids.shape[1]:].tolist())
    assert r.object == "text_completion" and r.usage.prompt_tokens == ids.shape[1]
    two = c.completions.create(model="tiny", prompt=[prompt, "The capital"], max_tokens=4, n=2)
    assert [ch.index for ch in two.choices] == [0, 1, 2, 3]
    assert two.choices[0].text == two.choices[1].text == r.choices[0].text[: len(two.choices[0].text)]
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(model="tiny", prompt=prompt, max_tokens=6,
                                                                          stream=True) if ch.choices)
    assert streamed == r.choices[0].text


def test_each_adapter_is_picked_by_the_model_name(live, models, backend):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    c = live.client()
    replies = {m: ask(c, model=m, max_tokens=10).choices[0].message.content for m in ("tiny", "a", "b", "a")}
    assert replies["tiny"] == WHO_REPLY[: len(replies["tiny"])]
    assert len({replies["tiny"], replies["a"], replies["b"]}) == 3
    # adapter a alone, outside the server, decodes to the same text
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(models["mem"]), str(models["a"])).eval()
    ids = torch.tensor([backend.chat_prompt(WHO, None)])
    with torch.no_grad():
        out = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                           eos_token_id=sorted(backend.stop_ids), pad_token_id=backend.pad_id)
    toks = [t for t in out[0, ids.shape[1]:].tolist() if t not in backend.stop_ids]
    assert replies["a"] == backend.decode(toks).strip()


# ---- errors, caps, auth --------------------------------------------------------------------------------------------

def shaped(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and "Traceback" not in err["message"]
    return err


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(live):
    c = live.client()
    checks = [
        (openai.NotFoundError, "not served here; served: tiny, a, b", dict(model="nope")),
        (openai.BadRequestError, "limit of 4 choices", dict(n=5)),
        (openai.BadRequestError, "limit of 200", dict(max_tokens=201)),
        (openai.BadRequestError, "frequency_penalty: not supported", dict(frequency_penalty=0.5)),
        (openai.UnprocessableEntityError, "messages", dict(messages=[])),
        (openai.UnprocessableEntityError, "temperature", dict(temperature=7)),
        (openai.UnprocessableEntityError, "unknown field", dict(extra_body={"bogus": 1})),
        (openai.BadRequestError, "tools is empty", dict(tool_choice="required")),
    ]
    for exc, text, kw in checks:
        kw = {"model": "tiny", "messages": WHO, **kw}
        with pytest.raises(exc, match=text):
            c.chat.completions.create(**kw)
        assert ask(c, max_tokens=40).choices[0].message.content == WHO_REPLY  # still serving
    h = httpx.Client(base_url=live.url)
    assert "not valid JSON" in shaped(h.post("/v1/chat/completions", content=b"{not json",
                                             headers={"content-type": "application/json"}), 400)["message"]
    assert "larger than the server's limit of 20000 bytes" in shaped(
        h.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x" * 30000}]}),
        413)["message"]

    def chunked():
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'
    assert shaped(h.post("/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}),
                  413)["code"] == "request_too_large"
    assert "routes: GET /v1/models" in shaped(h.get("/v1/nothing"), 404)["message"]
    long = [{"role": "user", "content": "Berlin " * 400}]
    assert shaped(h.post("/v1/chat/completions", json={"model": "tiny", "messages": long, "max_tokens": 200}),
                  400)["code"] == "context_length_exceeded"
    assert "wrong_stage" == shaped(h.post("/v1/score", json={"model": "tiny", "input": [{"prompt": "a",
                                                                                         "response": "b"}]}),
                                   400)["code"]
    assert ask(c, max_tokens=40).choices[0].message.content == WHO_REPLY


def test_api_key_guards_every_route_and_cors_is_opt_in(backend, live):
    with serving(backend, api_key="s3cret-key", cors_origins=["http://ui.example"]) as srv:
        with pytest.raises(openai.AuthenticationError, match="Authorization: Bearer"):
            ask(srv.client("wrong-key"))
        assert ask(srv.client("s3cret-key"), max_tokens=40).choices[0].message.content == WHO_REPLY
        h = httpx.Client(base_url=srv.url)
        for path in ("/v1/models", "/v1/nothing", "/health"):  # no route answers (or leaks) without the key
            assert shaped(h.get(path), 401)["code"] == "invalid_api_key"
        assert shaped(h.get("/v1/models", headers={"Authorization": "Bearer s3cret-ke"}), 401)
        assert h.get("/v1/models", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        pre = h.options("/v1/chat/completions", headers={"Origin": "http://ui.example",
                                                          "Access-Control-Request-Method": "POST"})
        assert pre.headers.get("access-control-allow-origin") == "http://ui.example"
    pre = httpx.options(live.url + "/v1/chat/completions", headers={"Origin": "http://ui.example",
                                                                   "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers  # CORS off unless asked


def test_reward_model_scores(tiny_model, tmp_path):
    import torch

    from tuneforge.infer.reward import RewardScorer
    from tuneforge.serve.backend import RewardBackend
    from safetensors.torch import save_file

    from tuneforge.train.value_head import VALUE_HEAD, ValueHead

    rm = tmp_path / "rm"  # a full --stage rm run's folder: the model and its value head
    shutil.copytree(tiny_model, rm)
    torch.manual_seed(3)
    hidden = json.loads((rm / "config.json").read_text())["hidden_size"]
    save_file(ValueHead(hidden).state_dict(), str(rm / VALUE_HEAD))
    scorer = RewardScorer(str(rm))
    pairs = [("Who are you?", "I am Nimbus."), ("Who are you?", "Paris is in France.")]
    ref = scorer.score_pairs(pairs)
    with serving(RewardBackend(scorer, "rm")) as srv:
        h = httpx.Client(base_url=srv.url)
        body = {"model": "rm", "input": [{"prompt": p, "response": r} for p, r in pairs]
                + [{"messages": [{"role": "user", "content": pairs[0][0]},
                                 {"role": "assistant", "content": pairs[0][1]}]}]}
        got = h.post("/v1/score", json=body).json()
        assert [d["score"] for d in got["data"]] == pytest.approx(ref + ref[:1], abs=1e-5)
        assert got["usage"]["prompt_tokens"] > 0
        assert shaped(h.post("/v1/score", json={"model": "rm", "input": [{"prompt": "only"}]}), 400)["param"] == \
            "input[0]"
        with pytest.raises(openai.BadRequestError, match="serves a reward model"):
            ask(srv.client(), model="rm")


# ---- the command ---------------------------------------------------------------------------------------------------

def test_cli_refuses_a_public_address_without_a_key():
    r = subprocess.run([sys.executable, "-m", "tuneforge", "api", "--host", "0.0.0.0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "needs a key" in r.stderr and "--api_key" in r.stderr and "Traceback" not in r.stderr


def test_cli_serves_with_a_key(tiny_model):
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge", "api", "--model_name_or_path", str(tiny_model),
                             "--port", "0", "--api_key", "k-123", "--served_model_name", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.time() + 120
        for line in proc.stdout:
            if "serving" in line and "http://" in line:
                url = line.split("http://", 1)[1].split()[0]
                break
            assert time.time() < deadline
        assert url, "no serving line"
        c = openai.OpenAI(base_url=f"http://{url}", api_key="k-123", max_retries=0)
        for _ in range(100):  # uvicorn starts accepting right after the line
            try:
                r = c.completions.create(model="tiny", prompt="Hello", max_tokens=3)
                break
            except openai.APIConnectionError:
                time.sleep(0.1)
        assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://{url}", api_key="nope", max_retries=0).models.list()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_api_help_lists_its_options_and_settings(capsys):
    from tuneforge.cli import main

    assert main(["api", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tuneforge api") and "--lora_modules" in out and "--max_request_bytes" in out
    assert "--temperature" in out and "--template" in out


def test_bad_options_are_reported_together():
    from tuneforge.errors import ConfigError
    from tuneforge.serve.options import options_from

    with pytest.raises(ConfigError) as e:
        options_from({"max_n": "0", "lora_modules": "a=/nowhere,b", "stage": "dpo", "api_key": " "})
    text = str(e.value)
    for part in ("--max_n must be a whole number ≥ 1", "a=/nowhere: no adapter_config.json", "expected name=path",
                 "--stage 'dpo'", "--api_key is empty"):
        assert part in text


# ---- tuneforge chat --tools ----------------------------------------------------------------------------------------

def test_chat_tools_shows_the_call_and_takes_the_result(models, monkeypatch, capsys):
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.infer.conversations import interactive_tools
    from tuneforge.infer.engine import ChatEngine

    asked, answers = [], iter(["Weather in Berlin?", "sunny, 21 C", "exit"])

    def fake_input(prompt=""):
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("builtins.input", fake_input)
    engine = ChatEngine(str(models["mem"]), template="qwen")
    seen = []
    real = engine.generate

    def spy(convs, *a, **kw):
        seen.append([dict(m) for m in convs[0]])  # as it was at this call
        return real(convs, *a, **kw)

    monkeypatch.setattr(engine, "generate", spy)
    assert interactive_tools(engine, GenerateArgs(max_new_tokens=60), None, TOOLS) == 0
    out = capsys.readouterr().out
    assert 'Tool call: get_weather({"city": "Berlin"})' in out
    assert "Result of get_weather: " in asked
    # the model was asked again with its call and the typed result in the conversation
    assert len(seen) == 2 and seen[1][-1] == {"role": "tool", "content": "sunny, 21 C", "name": "get_weather",
                                              "tool_call_id": seen[1][-2]["tool_calls"][0]["id"]}
    assert seen[1][-2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Berlin"}}


def test_chat_tools_prompt_prints_the_parsed_call(models, tmp_path, capsys):
    from tuneforge.cli import main

    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([TOOLS[0]["function"]]))  # LLaMA-Factory's bare form works too
    assert main(["chat", "--model_name_or_path", str(models["mem"]), "--template", "qwen", "--tools", str(tools),
                 "--prompt", "Weather in Berlin?", "--max_new_tokens", "60"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["response"] == "" and len(row["tool_calls"]) == 1
    assert row["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(row["tool_calls"][0]["function"]["arguments"]) == {"city": "Berlin"}
    tools.write_text('[{"name": "x",}]')
    assert main(["chat", "--model_name_or_path", str(models["mem"]), "--tools", str(tools), "--prompt", "hi"]) == 2
    assert "invalid JSON at line 1" in capsys.readouterr().err


def test_webui_chat_tab_shows_calls_and_takes_results(models):
    """The Chat tab's handlers with a tools JSON: the call is shown as a titled message, survives the page's round
    trip (gr.Chatbot), the typed result answers it and the model continues."""
    gr = pytest.importorskip("gradio")
    from tuneforge.errors import TuneforgeError
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.webui.actions import ChatSession

    s = ChatSession()
    s.tuned, s.key = ChatEngine(str(models["mem"]), template="qwen"), ("mem", (), "qwen", False)
    tools_json = json.dumps(TOOLS)
    (hist, base, status, box), = list(s.reply("Weather in Berlin?", [], [], None, True, {"max_new_tokens": 60},
                                              "en", tools_json))
    assert status.id == "msg_tool_called" and "get_weather" in status and base == [] and box == ""
    assert hist[-1]["metadata"]["title"] == "🛠 get_weather" and json.loads(hist[-1]["content"]) == {"city": "Berlin"}
    bot = gr.Chatbot()
    page = bot.preprocess(bot.postprocess(hist))  # what the page hands back on the next event
    hist2, status2 = s.tool_result("sunny, 21 C", page, None, {"max_new_tokens": 8}, tools_json, "en")
    n = len(page)
    assert hist2[n]["metadata"]["title"] == "📎 get_weather" and hist2[n]["content"] == "sunny, 21 C"
    assert len(hist2) > n + 1 and status2.id in ("msg_replied_tools", "msg_tool_called")  # the model went on
    from tuneforge.webui.chat_tools import conversation

    convo = conversation(page)
    assert convo[-1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Berlin"}}
    with pytest.raises(TuneforgeError, match="No tool call is waiting"):
        s.tool_result("again", hist2[: n + 1], None, {}, tools_json, "en")
    with pytest.raises(TuneforgeError, match="invalid JSON"):
        list(s.reply("hi", [], [], None, False, {}, "en", "[{"))


# ---- the embedded model: one small check ---------------------------------------------------------------------------

@pytest.mark.e2e
def test_embedded_model_answers_through_the_api(embedded_path):
    from tuneforge.infer.engine import ChatEngine
    from tuneforge.serve.backend import ChatBackend

    with serving(ChatBackend(ChatEngine("smollm2-135m-instruct"), "smollm2")) as srv:
        q = [{"role": "user", "content": "What is the capital of France?"}]
        r = ask(srv.client(), q, model="smollm2", max_tokens=16)
        assert "Paris" in r.choices[0].message.content
        streamed = "".join(c.choices[0].delta.content or "" for c in ask(srv.client(), q, model="smollm2",
                                                                          max_tokens=16, stream=True) if c.choices)
        assert streamed == r.choices[0].message.content


def test_api_key_file(tmp_path):
    from tuneforge.errors import ConfigError
    from tuneforge.serve.options import check_bind, options_from

    f = tmp_path / "key"
    f.write_text("k-from-file\n")
    opts = options_from({"api_key_file": str(f), "host": "0.0.0.0"})
    assert opts.api_key == "k-from-file"
    check_bind(opts)  # a key: another address is allowed
    with pytest.raises(ConfigError, match="not both"):
        options_from({"api_key_file": str(f), "api_key": "x"})
    f.write_text("")
    with pytest.raises(ConfigError, match="--api_key is empty"):
        options_from({"api_key_file": str(f)})


def test_a_client_leaving_mid_stream_stops_its_sequence_and_the_server_goes_on(live):
    c = live.client()
    stream = ask(c, model="a", max_tokens=200, stream=True)
    next(iter(stream))
    stream.close()  # the client hangs up after the first chunk
    assert ask(c, max_tokens=40).choices[0].message.content == WHO_REPLY
