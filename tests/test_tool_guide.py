"""Schema-guided tool calls (infer/tool_guide.py): the prefix checker on hand-written replies, and the logits processor
on real generation — a random tiny model (whose free text is never a call) and the embedded SmolLM2 base model —
whose guided calls must parse, name an offered function and carry that function's arguments with their types."""

from __future__ import annotations

import json

import pytest
import torch

from tuneforge.infer.tool_guide import ToolCallGuide, check, guide_for
from tuneforge.infer.tools import parse_tool_calls

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"]}}}
TIMER = {"type": "function", "function": {"name": "set_timer", "parameters": {
    "type": "object", "properties": {"minutes": {"type": "number"}, "loud": {"type": "boolean"}},
    "required": ["minutes"]}}}
TOOLS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIMER)}


@pytest.mark.parametrize("text, want", [
    ("Hello there, no call.", True),
    ("<tool_call>", None),
    ('<tool_call>\n{"name": "get_', None),
    ('<tool_call>\n{"name": "get_time"', False),  # not an offered function
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin"}}\n</tool_call>', True),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin"}}\n</tool', None),
    ('<tool_call>\n{"name": "get_weather", "arguments": {}}', False),  # the required city is missing
    ('<tool_call>\n{"name": "get_weather", "arguments": {"town"', False),  # not one of its arguments
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": 12', False),  # a string argument as a number
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "B", "days": "3"', False),  # integer as a string
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "B", "days": 3.5', False),  # integer with a fraction
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "B", "unit": "kelvin"', False),  # not in the enum
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "B", "city"', False),  # a key twice
    ('<tool_call>\n{"name": "set_timer", "arguments": {"minutes": 2.5, "loud": tru', None),
    ('<tool_call>\n{"name": "set_timer", "arguments": {"minutes": 2.5, "loud": yes', False),
    ('<tool_call>\n{"name": "set_timer", "arguments": {"minutes": 1}}\n</tool_call>\n<tool_call>\n'
     '{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>', True),  # parallel calls, non-ASCII
    ('<tool_call>\n{"name": "set_timer", "arguments": {"minutes": 1}}\n</tool_call>\n<tool_call>\n{"nam', None),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "a\\q"', False),  # an invalid JSON escape
])
def test_check_accepts_exactly_the_prefixes_of_valid_calls(text, want):
    assert check(text, TOOLS) is want


def test_only_the_hermes_format_is_guided_and_only_rows_with_tools(tiny_tokenizer):
    assert guide_for(tiny_tokenizer, "llama3", [[WEATHER]], 4, True) is None
    assert guide_for(tiny_tokenizer, "hermes", [None, []], 4, True) is None
    assert isinstance(guide_for(tiny_tokenizer, "hermes", [None, [WEATHER]], 4, True), ToolCallGuide)


def _decode(model, tok, prompts, tools_per_row, prefix, guided, max_new_tokens, force=None, **kw):
    tok.padding_side = "left"
    enc = tok([p + prefix for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
    width = enc["input_ids"].shape[1]
    procs = ([ToolCallGuide(tok, tools_per_row, width, greedy=not kw.get("do_sample"), prefix=prefix, force=force)]
             if guided else [])
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, logits_processor=procs,
                             pad_token_id=tok.pad_token_id, **kw)
    return [prefix + tok.decode(r[width:], skip_special_tokens=True) for r in out]


# A schema with a bounded call: every value is an enum or a boolean, so a guided call must close within the budget.
BOUNDED = {"type": "function", "function": {"name": "set_mode", "parameters": {
    "type": "object", "properties": {"mode": {"type": "string", "enum": ["eco", "turbo"]}, "on": {"type": "boolean"}},
    "required": ["mode", "on"]}}}
LIGHTS = {"type": "function", "function": {"name": "dim_lights", "parameters": {
    "type": "object", "properties": {"room": {"type": "string", "enum": ["kitchen", "hall"]}}, "required": ["room"]}}}


@pytest.mark.parametrize("sampling", [{}, {"do_sample": True, "top_k": 0, "temperature": 1.0}])
def test_a_random_model_writes_valid_calls_only_when_guided(tiny_model, sampling):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompts, tools = ["user: set the mode\nassistant: ", "user: lights\nassistant: "], [[BOUNDED], [LIGHTS]]
    torch.manual_seed(0)
    guided = _decode(model, tok, prompts, tools, "<tool_call>\n", True, 120, **sampling)
    want = [("set_mode", {"mode", "on"}), ("dim_lights", {"room"})]
    for text, (name, keys), row_tools in zip(guided, want, tools):
        parsed = parse_tool_calls(text, "hermes")
        assert not parsed.errors and parsed.calls, text
        call = parsed.calls[0]
        assert call.name == name and set(call.arguments) == keys, text  # each row its own tools
        props = row_tools[0]["function"]["parameters"]["properties"]
        for k, v in call.arguments.items():
            assert v in props[k].get("enum", [True, False]), text
    torch.manual_seed(0)
    free = _decode(model, tok, prompts, tools, "<tool_call>\n", False, 120, **sampling)
    assert all(not parse_tool_calls(t, "hermes").calls for t in free), free  # the guide made the calls, not luck


def test_a_required_call_is_opened_and_completed_without_a_prefill(tiny_model):
    """force (tool_choice "required"): the reply must open with a call and may end only once one is complete; the
    row of the same batch that is not forced stays free (a random model writes no call of its own)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    texts = _decode(model, tok, ["user: hi\nassistant: ", "user: hello\nassistant: "], [[BOUNDED], [BOUNDED]], "",
                    True, 250, force=[True, False])
    forced = parse_tool_calls(texts[0], "hermes")
    assert texts[0].lstrip().startswith("<tool_call>") and not forced.errors, texts[0]
    assert [c.name for c in forced.calls][:1] == ["set_mode"], texts[0]
    assert not parse_tool_calls(texts[1], "hermes").calls, texts[1]


def test_the_embedded_base_model_writes_offered_calls_when_guided(embedded_path):
    """SmolLM2-135M-Instruct untuned, its own template with the tools, the reply opened with ``<tool_call>``: guided,
    every call parses, names an offered function and has its required arguments with their declared types."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_path)
    model = AutoModelForCausalLM.from_pretrained(embedded_path, torch_dtype=torch.float32).eval()
    asks = [("What is the weather in Paris for 3 days?", [WEATHER, TIMER]), ("Set a timer for 10 minutes.", [TIMER])]
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tools=t, tokenize=False,
                                       add_generation_prompt=True) for q, t in asks]
    texts = _decode(model, tok, prompts, [t for _, t in asks], "<tool_call>\n", True, 64)
    for text, (_, tools) in zip(texts, asks):
        parsed = parse_tool_calls(text, "hermes")
        assert not parsed.errors and parsed.calls, text
        offered = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
        for call in parsed.calls:
            schema = offered[call.name]
            assert set(schema["required"]) <= set(call.arguments) <= set(schema["properties"]), text
            json.dumps(call.arguments)
    assert parse_tool_calls(texts[1], "hermes").calls[0].name == "set_timer"
