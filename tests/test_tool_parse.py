"""infer/tools.py: one parser per tool-call format, round-tripped through the named templates that render it."""

from __future__ import annotations

import pytest

from tuneforge.infer.tools import FORMATS, detect_format, parse_tool_calls, safe_content_len

WEATHER = {"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}}
TIME = {"name": "get_time", "arguments": {"tz": "Asia/Shanghai"}}


def _pairs(reply):
    return [(c.name, c.arguments) for c in reply.calls]


# ---- hermes / qwen / chatml ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}}\n</tool_call>',
    '<tool_call>{"name":"get_weather","arguments":{"city":"Berlin","unit":"celsius"}}</tool_call>',
    '  <tool_call>\r\n  {"name": "get_weather",\n "arguments": {"city": "Berlin", "unit": "celsius"}}  \r\n</tool_call>\n',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}}\n</tool_call><|im_end|>',
    # generation stopped before the closing tag
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}}\n',
    # OpenAI-style arguments as a JSON string
    '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Berlin\\", \\"unit\\": \\"celsius\\"}"}</tool_call>',
])
def test_hermes_whitespace_variants(text):
    r = parse_tool_calls(text, "hermes")
    assert r.errors == [] and r.content == ""
    assert _pairs(r) == [("get_weather", {"city": "Berlin", "unit": "celsius"})]
    assert r.calls[0].id.startswith("call_")


def test_hermes_parallel_calls_and_text():
    text = ('Let me check both.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin", "unit": '
            '"celsius"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Shanghai"}}\n'
            '</tool_call>')
    r = parse_tool_calls(text, "hermes")
    assert r.content == "Let me check both."
    assert _pairs(r) == [("get_weather", WEATHER["arguments"]), ("get_time", TIME["arguments"])]
    assert len({c.id for c in r.calls}) == 2


@pytest.mark.parametrize("body, needle", [
    ('{"name": "get_weather", "arguments": {"city": "Berlin",}}', "not valid JSON"),
    ("{'name': 'get_weather', 'arguments': {}}", "not valid JSON"),
    ('{"arguments": {"city": "Berlin"}}', "no function name"),
    ('{"name": "get_weather", "arguments": "city=Berlin"}', "not valid JSON"),
    ('{"name": "get_weather", "arguments": [1, 2]}', "not a JSON object"),
])
def test_hermes_invalid_json_is_reported_not_guessed(body, needle):
    good = '<tool_call>{"name": "get_time", "arguments": {"tz": "UTC"}}</tool_call>'
    r = parse_tool_calls(f"<tool_call>\n{body}\n</tool_call>\n{good}", "hermes")
    assert _pairs(r) == [("get_time", {"tz": "UTC"})]  # the bad one is not repaired, the good one kept
    assert len(r.errors) == 1 and needle in r.errors[0]


def test_plain_text_is_content():
    for fmt in FORMATS:
        r = parse_tool_calls("The capital of France is Paris.", fmt)
        assert (r.content, r.calls, r.errors) == ("The capital of France is Paris.", [], [])
    assert parse_tool_calls("<tool_call>{}</tool_call>", None).calls == []


# ---- llama 3.1 -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "parameters": {"city": "Berlin", "unit": "celsius"}}',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Berlin", "unit": "celsius"}}<|eom_id|>',
    '  {"name":"get_weather",\n  "parameters": {"city": "Berlin",\n "unit": "celsius"}}\n<|eot_id|>',
    '{"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}}',
    '{"type": "function", "function": {"name": "get_weather", "parameters": {"city": "Berlin", "unit": "celsius"}}}',
])
def test_llama3_variants(text):
    r = parse_tool_calls(text, "llama3")
    assert r.errors == [] and r.content == ""
    assert _pairs(r) == [("get_weather", WEATHER["arguments"])]


def test_llama3_parallel_and_invalid():
    text = ('Checking.\n{"name": "get_weather", "parameters": {"city": "Berlin", "unit": "celsius"}}\n'
            '{"name": "get_time", "parameters": {"tz": "Asia/Shanghai"}}; {"name": "get_time", "parameters": {}}')
    r = parse_tool_calls(text, "llama3")
    assert r.content == "Checking." and r.errors == []
    assert [c.name for c in r.calls] == ["get_weather", "get_time", "get_time"]
    bad = parse_tool_calls('{"name": "get_weather", "parameters": {"city": Berlin}}', "llama3")
    assert bad.calls == [] and "not valid" in bad.errors[0]
    # JSON that is not a call is content
    assert parse_tool_calls('{"a": 1}', "llama3").content == '{"a": 1}'


# ---- mistral ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}}]</s>',
    '[TOOL_CALLS][{"name":"get_weather","arguments":{"city":"Berlin","unit":"celsius"}}]',
    '[TOOL_CALLS]  [\n {"name": "get_weather", "arguments": {"city": "Berlin", "unit": "celsius"}, "id": "abc123xyz"}\n]',
    '[TOOL_CALLS]get_weather[ARGS]{"city": "Berlin", "unit": "celsius"}',
])
def test_mistral_variants(text):
    r = parse_tool_calls(text, "mistral")
    assert r.errors == [] and r.content == ""
    assert _pairs(r) == [("get_weather", WEATHER["arguments"])]


def test_mistral_parallel_ids_and_invalid():
    r = parse_tool_calls('Sure. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Berlin", "unit": '
                         '"celsius"}, "id": "a1"}, {"name": "get_time", "arguments": {"tz": "Asia/Shanghai"}}]',
                         "mistral")
    assert r.content == "Sure." and [c.id for c in r.calls][0] == "a1"
    assert _pairs(r) == [("get_weather", WEATHER["arguments"]), ("get_time", TIME["arguments"])]
    bad = parse_tool_calls('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Berlin"]', "mistral")
    assert bad.calls == [] and "not valid JSON" in bad.errors[0]


# ---- glm4 ------------------------------------------------------------------------------------------------------------
def test_glm4():
    r = parse_tool_calls('get_weather\n{"city": "Berlin", "unit": "celsius"}', "glm4")
    assert r.errors == [] and _pairs(r) == [("get_weather", WEATHER["arguments"])]
    r = parse_tool_calls('get_weather \r\n {"city": "Berlin", "unit": "celsius"}<|assistant|>get_time\n'
                         '{"tz": "Asia/Shanghai"}<|user|>', "glm4")
    assert _pairs(r) == [("get_weather", WEATHER["arguments"]), ("get_time", TIME["arguments"])]
    assert parse_tool_calls("\nParis is the capital.", "glm4").content == "Paris is the capital."
    assert parse_tool_calls("Paris is the capital of France.", "glm4").calls == []
    bad = parse_tool_calls("get_weather\n{city: Berlin}", "glm4")
    assert bad.calls == [] and "not valid JSON" in bad.errors[0]


# ---- round trip: what each named template renders, the matching parser reads back -----------------------------------
@pytest.mark.parametrize("name", ["chatml", "qwen", "llama3", "mistral", "glm4", "default", "llama2"])
def test_round_trip_through_named_templates(name, tiny_tokenizer):
    from tuneforge.data import templates

    tok = tiny_tokenizer
    saved = tok.chat_template
    try:
        fmt = templates.install(tok, name)
        tool_format = detect_format(tok.chat_template, name)
        assert tool_format in FORMATS
        tools = [{"type": "function", "function": {"name": n, "description": "d", "parameters": {"type": "object"}}}
                 for n in ("get_weather", "get_time")]
        calls = [{"type": "function", "function": c} for c in (WEATHER, TIME)]
        msgs = [{"role": "user", "content": "Weather and time?"}]
        prompt = fmt.render(tok, msgs, tools, add_generation_prompt=True)
        full = fmt.render(tok, msgs + [{"role": "assistant", "content": "", "tool_calls": calls}], tools)
        assert full.startswith(prompt)
        r = parse_tool_calls(full[len(prompt):], tool_format)
        assert r.errors == [] and r.content == ""
        assert _pairs(r) == [("get_weather", WEATHER["arguments"]), ("get_time", TIME["arguments"])]
    finally:
        tok.chat_template = saved


def test_detect_format_from_own_templates():
    assert detect_format("...{{- '<tool_call>\\n' }}...") == "hermes"
    assert detect_format("{{ '[AVAILABLE_TOOLS]' }}{{ '[TOOL_CALLS]' }}") == "mistral"
    assert detect_format("<|start_header_id|>ipython ... {\"name\": ..., \"parameters\": ...} <|python_tag|>") == "llama3"
    assert detect_format("{% if tools %}<|observation|>{% endif %}") == "glm4"
    plain = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"
    assert detect_format(plain) is None and detect_format(None) is None
    assert detect_format(plain, "chatml") == "hermes"


def test_safe_content_len_holds_back_call_markers():
    assert safe_content_len("Hello there", "hermes") == len("Hello there")
    assert safe_content_len("Hi <tool_c", "hermes") == 3
    assert safe_content_len('Hi <tool_call>{"name"', "hermes") == 3
    assert safe_content_len("Ok [TOOL_", "mistral") == 3
    assert safe_content_len('{"name": "f"', "llama3") == 0
    assert safe_content_len('Sure\n{"na', "llama3") == 4
    assert safe_content_len("get_weather\n{", "glm4") == 0
    assert safe_content_len("\nParis", "glm4") == len("\nParis")
    assert safe_content_len("anything", None) == len("anything")


def test_agent_scoring_is_strict_about_function_arguments_and_json():
    from tuneforge.eval.agent import AgentHeldOut, calls_match, score

    expect = [{"name": "book", "arguments": {"restaurant": "Luigi's", "guests": 4}}]
    assert calls_match([("book", {"guests": 4.0, "restaurant": " luigi's "})], expect)
    assert not calls_match([("book", {"guests": "4", "restaurant": "Luigi's"})], expect)  # a string is not a number
    assert not calls_match([("book", {"restaurant": "Luigi's"})], expect)
    assert not calls_match([("reserve", {"guests": 4, "restaurant": "Luigi's"})], expect)
    two = [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]
    assert calls_match([("b", {}), ("a", {"x": 1})], two) and not calls_match([("a", {"x": 1})], two)
    held = AgentHeldOut(calls=[{"question": "q", "expect": expect}] * 3, chat=[{"question": "c"}] * 2)
    replies = ['<tool_call>{"name": "book", "arguments": {"restaurant": "Luigi\'s", "guests": 4}}</tool_call>',
               '<tool_call>{"name": "book", "arguments": {"restaurant": Luigi, "guests": 4}}</tool_call>',
               "Sure, I booked it."]
    rep = score(held, replies, ["Hello!", '<tool_call>{"name": "book", "arguments": {}}</tool_call>'], "hermes")
    assert (rep.calls_right, rep.parse_errors, rep.chat_plain) == (1, 1, 1)
    assert len(rep.wrong_calls) == 2 and rep.chat_with_calls[0]["question"] == "c"
