"""Request bodies of the OpenAI API routes tuneforge serves, with OpenAI's field names. Unknown fields are refused
(422, naming the field) rather than silently ignored; fields OpenAI has that tuneforge does not implement are
accepted only at their neutral value (see ``unsupported``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(Strict):
    type: Literal["text"]
    text: str


class FunctionCall(Strict):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(Strict):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class FunctionDef(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class Sampling(Strict):
    """What every generating route shares."""

    model: str
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # accepted at their neutral value only (``unsupported``)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | int | None = None


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None


class CompletionRequest(Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for /v1/completions
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None


class ScoreItem(Strict):
    prompt: str | None = None
    response: str | None = None
    messages: list[ChatMessage] | None = None


class ScoreRequest(Strict):
    model: str
    input: list[ScoreItem | str] = Field(min_length=1)


def unsupported(req: Sampling) -> list[str]:
    """The OpenAI fields of ``req`` set to something tuneforge does not implement (each a 400, not ignored)."""
    out = []
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name) not in (None, 0, 0.0):
            out.append(name)
    if req.logit_bias:
        out.append("logit_bias")
    if req.logprobs not in (None, False, 0):
        out.append("logprobs")
    if isinstance(req, ChatRequest):
        if req.top_logprobs:
            out.append("top_logprobs")
        if req.response_format and req.response_format.get("type") not in (None, "text"):
            out.append("response_format")
    if isinstance(req, CompletionRequest):
        if req.echo:
            out.append("echo")
        if req.suffix:
            out.append("suffix")
        if req.best_of not in (None, 1):
            out.append("best_of")
    return out
