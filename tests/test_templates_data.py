"""Tests for the named chat templates shipped as data in src/tuneforge/data/templates.

The templates are Hugging Face chat templates (Jinja). They are rendered here with a small sandbox that mirrors
transformers' ``_compile_jinja_template`` (same environment options, ``tojson`` filter and ``raise_exception``), then
checked for prefix-stability, exact output on a few hand-written cases, and identical output through a real
tokenizer's ``apply_chat_template``. No package import is needed: the tests read the data files directly.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "src" / "tuneforge" / "data" / "templates"
INDEX = json.loads((TEMPLATES_DIR / "index.json").read_text(encoding="utf-8"))
NAMES = sorted(INDEX)
EXPECTED_NAMES = {"qwen", "chatml", "llama3", "llama2", "mistral", "gemma", "glm4"}  # LF-format names: lf_templates.json
TOKENIZER_DIR = Path(os.environ.get("TUNEFORGE_TEST_TOKENIZER", "/tmp/smol_cache"))

# Special tokens passed to the sandbox render (apply_chat_template passes tokenizer.special_tokens_map).
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}


# --------------------------------------------------------------------------------------------------------------------
# Sandbox mirroring transformers.utils.chat_template_utils._compile_jinja_template
# --------------------------------------------------------------------------------------------------------------------


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Same as transformers' override: no HTML escaping, non-ASCII kept, json.dumps options exposed.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _make_env()
_COMPILED: dict[str, jinja2.Template] = {}


def template_text(name: str) -> str:
    return (TEMPLATES_DIR / INDEX[name]["file"]).read_text(encoding="utf-8")


def render(name, messages, tools=None, add_generation_prompt=False, **special):
    if name not in _COMPILED:
        _COMPILED[name] = _ENV.from_string(template_text(name))
    kwargs = dict(SPECIAL) if not special else special
    return _COMPILED[name].render(
        messages=copy.deepcopy(messages),
        tools=copy.deepcopy(tools),
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )


def stop_strings(name, eos_token=SPECIAL["eos_token"]):
    entry = INDEX[name]
    return list(entry["stop"]) + ([eos_token] if entry["eos_stop"] else [])


# --------------------------------------------------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city (e.g. Zürich).",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _call(name, arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = {
    "single_user": {"messages": [{"role": "user", "content": "Hello there!"}], "tools": None},
    "system_user_assistant": {
        "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Arr!"},
        ],
        "tools": None,
    },
    "two_turn": {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "2+2 = 4."},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "3+3 = 6."},
        ],
        "tools": None,
    },
    "two_turn_system": {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
            {"role": "assistant", "content": "Green."},
        ],
        "tools": None,
    },
    "tools": {
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "What's the weather in Zürich?"},
            {"role": "assistant", "content": None, "tool_calls": [_call("get_weather", {"city": "Zürich"})]},
            {"role": "tool", "name": "get_weather", "content": '{"temperature": 21, "sky": "sunny"}'},
            {"role": "assistant", "content": "It is sunny and 21 °C in Zürich."},
            {"role": "user", "content": "Thanks!"},
            {"role": "assistant", "content": "You're welcome."},
        ],
        "tools": [WEATHER_TOOL],
    },
    "parallel_tools_no_system": {
        "messages": [
            {"role": "user", "content": "Weather and time in Bern?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [_call("get_weather", {"city": "Bern"}), _call("get_time", '{"city": "Bern"}')],
            },
            {"role": "tool", "name": "get_weather", "content": '{"temperature": 18}'},
            {"role": "tool", "name": "get_time", "content": "14:05"},
            {"role": "assistant", "content": "18 degrees, and it is 14:05."},
        ],
        "tools": [WEATHER_TOOL, TIME_TOOL],
    },
}
CONV_NAMES = sorted(CONVERSATIONS)


def _text(message):
    content = message.get("content")
    return content if isinstance(content, str) else ""


# --------------------------------------------------------------------------------------------------------------------
# (a) index + rendering
# --------------------------------------------------------------------------------------------------------------------


def test_index_lists_the_expected_templates():
    assert set(INDEX) == EXPECTED_NAMES


def test_no_unindexed_template_files():
    files = {p.name for p in TEMPLATES_DIR.glob("*.jinja")}
    # lf_slots.jinja renders the LLaMA-Factory slot templates of lf_templates.json (tests/test_lf_templates.py)
    assert files == {entry["file"] for entry in INDEX.values()} | {"lf_slots.jinja"}


@pytest.mark.parametrize("name", NAMES)
def test_index_entry_is_well_formed(name):
    entry = INDEX[name]
    assert set(entry) >= {"file", "stop", "eos_stop", "aliases", "for", "description"}
    assert entry["file"] == f"{name}.jinja"
    assert (TEMPLATES_DIR / entry["file"]).is_file()
    assert isinstance(entry["stop"], list) and all(isinstance(s, str) and s for s in entry["stop"])
    assert isinstance(entry["eos_stop"], bool)
    assert entry["stop"] or entry["eos_stop"], "a template needs at least one way to end generation"
    assert entry["for"] in ("chat", "base")
    assert isinstance(entry["description"], str) and entry["description"] and "\n" not in entry["description"]
    assert isinstance(entry["aliases"], list) and all(isinstance(a, str) and a for a in entry["aliases"])


def test_aliases_are_unique_and_do_not_shadow_names():
    seen = set(INDEX)
    for name, entry in INDEX.items():
        for alias in entry["aliases"]:
            assert alias not in seen, f"alias {alias!r} of {name!r} collides"
            seen.add(alias)


@pytest.mark.parametrize("conv", CONV_NAMES)
@pytest.mark.parametrize("name", NAMES)
def test_renders(name, conv):
    data = CONVERSATIONS[conv]
    for add_generation_prompt in (False, True):
        out = render(name, data["messages"], data["tools"], add_generation_prompt)
        assert isinstance(out, str) and out
        for message in data["messages"]:
            assert _text(message) in out
        if data["tools"]:
            for tool in data["tools"]:
                assert tool["function"]["name"] in out
            # tojson must not escape non-ASCII (transformers' tojson uses ensure_ascii=False)
            assert "\\u00fc" not in out
        assert "None" not in out


@pytest.mark.parametrize("name", NAMES)
def test_generation_prompt_only_appends(name):
    messages = CONVERSATIONS["single_user"]["messages"]
    without = render(name, messages, add_generation_prompt=False)
    with_prompt = render(name, messages, add_generation_prompt=True)
    assert with_prompt.startswith(without)


@pytest.mark.parametrize("name", NAMES)
def test_empty_tools_is_the_same_as_no_tools(name):
    messages = CONVERSATIONS["two_turn_system"]["messages"]
    assert render(name, messages, tools=[]) == render(name, messages, tools=None)


# --------------------------------------------------------------------------------------------------------------------
# (b) prefix-stability and turn endings
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conv", CONV_NAMES)
@pytest.mark.parametrize("name", NAMES)
def test_prefix_stable(name, conv):
    data = CONVERSATIONS[conv]
    messages, tools = data["messages"], data["tools"]
    stops = stop_strings(name)
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(name, messages[:k], tools, add_generation_prompt=True)
        full = render(name, messages[: k + 1], tools, add_generation_prompt=False)
        assert full.startswith(prompt), f"{name}: prompt for message {k} is not a prefix of its rendering"

        # The assistant turn is what training labels; it must hold the content and end with a stop string.
        turn = full[len(prompt) :]
        assert _text(message) in turn
        for call in message.get("tool_calls", []):
            assert call["function"]["name"] in turn
        body = turn.rstrip()
        ending = [s for s in stops if body.endswith(s)]
        assert ending, f"{name}: assistant turn {turn!r} does not end with one of {stops}"
        inner = body[: -len(ending[0])]
        assert not any(s in inner for s in stops), f"{name}: stop string inside assistant turn {turn!r}"

        for n in range(k + 2, len(messages) + 1):
            for add_generation_prompt in (False, True):
                longer = render(name, messages[:n], tools, add_generation_prompt)
                assert longer.startswith(full), f"{name}: messages[:{k + 1}] is not a prefix of messages[:{n}]"


# --------------------------------------------------------------------------------------------------------------------
# (c) exact strings, written by hand
# --------------------------------------------------------------------------------------------------------------------

PIRATE = CONVERSATIONS["system_user_assistant"]["messages"]
HI = [{"role": "user", "content": "Hi"}]


def test_qwen_exact():
    assert render("qwen", PIRATE) == (
        "<|im_start|>system\nYou are a pirate.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nArr!<|im_end|>\n"
    )
    assert render("qwen", HI, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen_tools_exact():
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    messages = [
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "tool_calls": [_call("add", {"a": 1, "b": 2})]},
        {"role": "tool", "name": "add", "content": "3"},
        {"role": "assistant", "content": "3"},
    ]
    assert render("qwen", messages, tools=[tool]) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}\n</tools>\n\n'
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n1+2?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n3\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n3<|im_end|>\n"
    )


def test_llama3_exact():
    assert render("llama3", PIRATE) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a pirate.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nArr!<|eot_id|>"
    )
    assert render("llama3", HI, add_generation_prompt=True) == (
        "<|begin_of_text|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_other_formats_exact():
    two = CONVERSATIONS["two_turn_system"]["messages"]
    assert render("chatml", HI, add_generation_prompt=True) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render("llama2", two) == (
        "<s>[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\nName a colour. [/INST] Blue. </s>"
        "<s>[INST] Another one? [/INST] Green. </s>"
    )
    assert render("mistral", two) == (
        "<s>[INST] Answer briefly.\n\nName a colour. [/INST]Blue.</s>[INST] Another one? [/INST]Green.</s>"
    )
    assert render("gemma", two[:3] + [two[3]], add_generation_prompt=True) == (
        "<s><start_of_turn>user\nAnswer briefly.\n\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\nBlue.<end_of_turn>\n"
        "<start_of_turn>user\nAnother one?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert render("glm4", two) == (
        "[gMASK]<sop><|system|>\nAnswer briefly.<|user|>\nName a colour.<|assistant|>\nBlue.</s>"
        "<|user|>\nAnother one?<|assistant|>\nGreen.</s>"
    )


# --------------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n in NAMES if INDEX[n]["eos_stop"]))
def test_eos_templates_require_eos_token(name):
    with pytest.raises(jinja2.exceptions.TemplateError, match="eos_token"):
        render(name, PIRATE, bos_token="<s>")


@pytest.mark.parametrize("name", ["llama2", "mistral", "gemma"])
def test_system_prepending_templates_reject_misplaced_system(name):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "system", "content": "Late system message"},
    ]
    with pytest.raises(jinja2.exceptions.TemplateError, match="system"):
        render(name, messages)


# --------------------------------------------------------------------------------------------------------------------
# (d) identical output through a real tokenizer's apply_chat_template
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    transformers = pytest.importorskip("transformers")
    if not (TOKENIZER_DIR / "tokenizer_config.json").is_file():
        pytest.skip(f"no cached tokenizer at {TOKENIZER_DIR}")
    return transformers.AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


@pytest.mark.parametrize("name", NAMES)
def test_hf_apply_chat_template_matches_sandbox(tokenizer, name):
    tokenizer.chat_template = template_text(name)
    special = dict(tokenizer.special_tokens_map)
    for conv in CONV_NAMES:
        data = CONVERSATIONS[conv]
        for add_generation_prompt in (False, True):
            expected = render(name, data["messages"], data["tools"], add_generation_prompt, **special)
            got = tokenizer.apply_chat_template(
                copy.deepcopy(data["messages"]),
                tools=copy.deepcopy(data["tools"]),
                add_generation_prompt=add_generation_prompt,
                tokenize=False,
            )
            assert got == expected, f"{name}/{conv}/gen={add_generation_prompt}"
    # Tokenizing through the template works too.
    ids = tokenizer.apply_chat_template(CONVERSATIONS["two_turn"]["messages"], tokenize=True, return_dict=False)
    assert isinstance(ids, list) and ids
