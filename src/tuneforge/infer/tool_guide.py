"""Schema-guided tool calls: once a reply opens a call, every next token must keep the call valid for the tools the
request offered — the function name one of theirs, argument keys from that function's ``parameters`` (each at most
once, the ``required`` ones before the object closes), each value of its declared JSON type (a quoted string for
``string``, digits for ``integer``, one of ``enum``), the JSON well formed and the call closed. Text outside calls,
and the choice whether to call at all, stay the model's own — unless a call is required (OpenAI's ``tool_choice``
``"required"`` or a named function): then the reply must open with a call (leading whitespace aside) and cannot end
before one is complete.

This is what OpenAI calls ``strict`` function calling and vLLM guided decoding for tools; here it is a logits
processor for ``model.generate`` (and for tuneforge's own decoders, which take the same callables). It is exact for
greedy decoding and sampling alike: a token is allowed iff the reply with it is still a prefix of a valid call.
Tokens are tried best-first and only as far as needed (the top ``top_k`` for sampling, the first valid one for greedy),
so a step costs a few string checks, not a pass over the vocabulary.

Formats: ``hermes`` (``<tool_call>{"name": …, "arguments": {…}}</tool_call>``: Qwen2.5/Qwen3, Hermes, SmolLM2 and
tuneforge's chatml/qwen/LLaMA-Factory slot templates). Other formats are decoded unguided (:func:`guide_for` returns
None), so their replies are exactly what the model writes.
"""

from __future__ import annotations

import json
from typing import Any

import torch

MARKER, CLOSE = "<tool_call>", "</tool_call>"
WS = " \t\n\r"


class _Vocab:
    """A tokenizer's tokens as text, its special tokens, and each token's first character (as an index into
    ``chars``; ``len(chars)`` for a special or empty token)."""

    def __init__(self, tokenizer):
        self.strs = [tokenizer.decode([i], skip_special_tokens=False) for i in range(len(tokenizer))]
        self.special = set(tokenizer.all_special_ids)
        firsts = sorted({s[0] for i, s in enumerate(self.strs) if s and i not in self.special})
        self.chars = firsts
        where = {c: i for i, c in enumerate(firsts)}
        none = len(firsts)
        self.first = torch.tensor([where[s[0]] if s and i not in self.special else none
                                   for i, s in enumerate(self.strs)], dtype=torch.long)
        self.special_ids = torch.tensor(sorted(self.special), dtype=torch.long)



class _Need(Exception):
    """The text ran out inside the call: it is a valid prefix."""


class _Bad(Exception):
    """The text cannot be continued into a valid call."""


def _tools_map(tools: list[dict] | None) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for t in tools or []:
        f = t.get("function", t) if isinstance(t, dict) else None
        if isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"]:
            params = f.get("parameters")
            out[f["name"]] = params if isinstance(params, dict) else {}
    return out


class _Parser:
    """A prefix checker of one hermes call body (the text after ``<tool_call>``)."""

    def __init__(self, s: str, tools: dict[str, dict]):
        self.s, self.i, self.tools = s, 0, tools

    def peek(self) -> str:
        if self.i >= len(self.s):
            raise _Need
        return self.s[self.i]

    def ws(self, most: int = 4) -> None:
        n = 0
        while self.i < len(self.s) and self.s[self.i] in WS and n < most:
            self.i, n = self.i + 1, n + 1

    def lit(self, text: str) -> None:
        for ch in text:
            if self.peek() != ch:
                raise _Bad
            self.i += 1

    def one_of(self, words: list[str]) -> str:
        rest = self.s[self.i:]
        for w in words:
            if rest.startswith(w):
                self.i += len(w)
                return w
        if any(w.startswith(rest) for w in words):
            raise _Need
        raise _Bad

    def choice_str(self, options: list[str]) -> str:
        """A JSON string whose value is one of ``options``."""
        raw = {json.dumps(o, ensure_ascii=False)[1:-1]: o for o in options}
        self.lit('"')
        start = self.i
        while True:
            c = self.peek()
            sofar = self.s[start:self.i]
            if c == '"' and sofar in raw:
                self.i += 1
                return raw[sofar]
            if not any(r.startswith(sofar + c) for r in raw):
                raise _Bad
            self.i += 1

    def string(self) -> None:
        self.lit('"')
        while True:
            c = self.peek()
            self.i += 1
            if c == '"':
                return
            if c == "\\":
                e = self.peek()
                self.i += 1
                if e == "u":
                    for _ in range(4):
                        if self.peek() not in "0123456789abcdefABCDEF":
                            raise _Bad
                        self.i += 1
                elif e not in '"\\/bfnrt':
                    raise _Bad
            elif ord(c) < 0x20:
                raise _Bad

    def digits(self) -> None:
        if not self.peek().isdigit():
            raise _Bad
        while self.i < len(self.s) and self.s[self.i] in "0123456789":
            self.i += 1
        if self.i >= len(self.s):
            raise _Need  # more digits may come

    def number(self, integer: bool) -> None:
        if self.peek() == "-":
            self.i += 1
        if self.peek() == "0":
            self.i += 1
            if self.i >= len(self.s):
                raise _Need
        else:
            self.digits()
        if integer:
            return
        if self.peek() == ".":
            self.i += 1
            self.digits()
        if self.peek() in "eE":
            self.i += 1
            if self.peek() in "+-":
                self.i += 1
            self.digits()

    def value(self, schema: Any) -> None:
        schema = schema if isinstance(schema, dict) else {}
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            if all(isinstance(e, str) for e in enum):
                self.choice_str(enum)
            else:
                self.one_of([json.dumps(e, ensure_ascii=False) for e in enum])
            return
        t = schema.get("type")
        if t == "string":
            self.string()
        elif t == "integer":
            self.number(True)
        elif t == "number":
            self.number(False)
        elif t == "boolean":
            self.one_of(["true", "false"])
        elif t == "null":
            self.lit("null")
        elif t == "array":
            self.array(schema.get("items"))
        elif t == "object":
            self.obj(schema)
        else:  # no type, or a union: any JSON value
            self.any()

    def any(self) -> None:
        c = self.peek()
        if c == "{":
            self.obj({})
        elif c == "[":
            self.array(None)
        elif c == '"':
            self.string()
        elif c in "-0123456789":
            self.number(False)
        else:
            self.one_of(["true", "false", "null"])

    def array(self, items: Any) -> None:
        self.lit("[")
        self.ws()
        if self.peek() == "]":
            self.i += 1
            return
        while True:
            self.value(items)
            self.ws()
            c = self.peek()
            self.i += 1
            if c == "]":
                return
            if c != ",":
                raise _Bad
            self.ws()

    def obj(self, schema: dict) -> None:
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = {k for k in schema.get("required") or [] if k in props}
        self.lit("{")
        self.ws()
        used: set[str] = set()
        if self.peek() == "}":
            if required:
                raise _Bad
            self.i += 1
            return
        while True:
            if props:
                key = self.choice_str([k for k in props if k not in used])
            else:  # an object with no declared properties: any keys
                start = self.i
                self.string()
                key = self.s[start:self.i]
            used.add(key)
            self.ws()
            self.lit(":")
            self.ws()
            self.value(props.get(key))
            self.ws()
            c = self.peek()
            if c == "}" and not required - used:
                self.i += 1
                return
            if c == "," and (not props or set(props) - used):
                self.i += 1
                self.ws()
                continue
            raise _Bad

    def call(self) -> int:
        """Parse one call body; returns where the call (its ``</tool_call>`` included) ends."""
        self.ws()
        self.lit("{")
        self.ws()
        self.lit('"name"')
        self.ws()
        self.lit(":")
        self.ws()
        name = self.choice_str(list(self.tools))
        self.ws()
        self.lit(",")
        self.ws()
        self.lit('"arguments"')
        self.ws()
        self.lit(":")
        self.ws()
        self.obj(self.tools[name])
        self.ws()
        self.lit("}")
        self.ws()
        self.lit(CLOSE)
        return self.i


def check(text: str, tools: dict[str, dict]) -> bool | None:
    """Is ``text`` (a reply so far) a valid prefix? True: valid and no call is open; None: valid, a call is open
    (end of turn not allowed yet); False: invalid."""
    pos = 0
    while True:
        m = text.find(MARKER, pos)
        if m < 0:
            return True
        p = _Parser(text[m + len(MARKER):], tools)
        try:
            pos = m + len(MARKER) + p.call()
        except _Need:
            return None
        except _Bad:
            return False


class ToolCallGuide:
    """A logits processor ``(input_ids, scores) -> scores`` for one batch whose rows offer ``tools_per_row``
    (``tools_per_row[i]``: row i's tool schemas, OpenAI/HF shape; None or [] → that row is left unguided).
    ``prompt_len``: the (padded) prompt length of the batch; new tokens start there. ``prefix``: reply text already
    in the prompt (an assistant prefill such as ``<tool_call>``), checked with what follows. ``force``: per row,
    whether the reply must be calls (it opens with one and ends only after one is complete)."""

    def __init__(self, tokenizer, tools_per_row: list[list[dict] | None], prompt_len: int, greedy: bool,
                 top_k: int = 48, prefix: str = "", force: list[bool] | None = None):
        self.vocab = getattr(tokenizer, "_tuneforge_guide_vocab", None)
        if self.vocab is None:  # built once per tokenizer (a decode per token), kept on it
            self.vocab = _Vocab(tokenizer)
            tokenizer._tuneforge_guide_vocab = self.vocab
        self.strs, self.special = self.vocab.strs, self.vocab.special
        self.tools = [_tools_map(t) for t in tools_per_row]
        self.prompt_len, self.greedy, self.top_k = prompt_len, greedy, top_k
        self.texts = [prefix for _ in tools_per_row]
        self.force = [bool(f) for f in (force or [False] * len(tools_per_row))]
        self.seen = 0  # new tokens already added to self.texts

    def _call_due(self, row: int) -> bool:
        """Row ``row`` must call and has not opened its call yet."""
        return self.force[row] and MARKER not in self.texts[row]

    def _end_ok(self, row: int, state: bool | None) -> bool:
        """May row ``row`` end its turn now? Only outside a call, and not before the required call."""
        return state is True and not self._call_due(row)

    def _ok_text(self, row: int, s: str, state: bool | None) -> bool:
        """May row ``row`` (whose text so far has check-state ``state``) go on with the text ``s``?"""
        text = self.texts[row]
        if self._call_due(row):
            t = text + s
            head = t.lstrip(WS)
            if len(t) - len(head) > 4:
                return False  # whitespace before the call: a little, not forever
            if len(head) <= len(MARKER):
                return MARKER.startswith(head)
            return head.startswith(MARKER) and check(t, self.tools[row]) is not False
        if state is True and "<" not in s and not any(text.endswith(MARKER[:k]) for k in range(1, len(MARKER))):
            return True  # free text that cannot open a call
        if state is None and not s:
            return False  # inside a call every token must move it on
        return check(text + s, self.tools[row]) is not False

    def _ok(self, row: int, tok: int, state: bool | None) -> bool:
        """May row ``row`` take token ``tok``? An end of turn (any special token) only outside a call, and not
        before the required call."""
        if tok in self.special or tok >= len(self.strs):
            return self._end_ok(row, state)
        return self._ok_text(row, self.strs[tok], state)

    def _candidates(self, row: int, scores: torch.Tensor, state: bool | None) -> list[int]:
        """The tokens worth an exact check, best first: those whose first character may follow (a text that cannot
        be continued with its first character cannot be continued with the whole token), and the special tokens
        where an end of turn is allowed. Exact, and a few hundred string checks instead of one per token."""
        v = self.vocab
        n = min(len(v.first), scores.shape[0])
        first_ok = torch.tensor([self._ok_text(row, c, state) for c in v.chars] + [False], dtype=torch.bool)
        mask = first_ok[v.first[:n]]
        end_ok = self._end_ok(row, state)
        if end_ok:  # special tokens, and ids past the tokenizer's (padded embeddings), as _ok allows them
            mask[v.special_ids[v.special_ids < n]] = True
        mask &= scores[:n] > float("-inf")
        idx = mask.nonzero().squeeze(1)
        if end_ok and scores.shape[0] > n:
            idx = torch.cat([idx, torch.arange(n, scores.shape[0])[scores[n:] > float("-inf")]])
        return idx[scores[idx].argsort(descending=True)].tolist()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        new = input_ids.shape[1] - self.prompt_len
        for r in range(len(self.texts)):  # append the tokens generated since the last step
            for t in input_ids[r, self.prompt_len + self.seen: self.prompt_len + new].tolist():
                self.texts[r] += self.strs[t] if t < len(self.strs) and t not in self.special else ""
        self.seen = new
        for r, tools in enumerate(self.tools):
            if not tools or r >= scores.shape[0]:
                continue
            row = scores[r]
            state = check(self.texts[r], tools)
            best = int(row.argmax())
            if self.greedy and self._ok(r, best, state):
                continue
            allowed, k = [], 0
            for k, tok in enumerate(self._candidates(r, row.float().cpu(), state)):
                if self._ok(r, tok, state):
                    allowed.append(tok)
                    if self.greedy or len(allowed) >= self.top_k:
                        break
                elif k >= 4 * self.top_k and allowed:
                    break
            if not allowed:
                continue  # nothing valid (cannot happen for a well-formed tool list): leave the row as it is
            keep = row[allowed].clone()
            row.fill_(float("-inf"))
            row[allowed] = keep
        return scores


def guide_for(tokenizer, fmt: str | None, tools_per_row: list[list[dict] | None], prompt_len: int,
              greedy: bool, force: list[bool] | None = None) -> ToolCallGuide | None:
    """The guide for a batch, or None where nothing is guided (no tools, or a format other than hermes)."""
    if fmt != "hermes" or not any(tools_per_row):
        return None
    return ToolCallGuide(tokenizer, tools_per_row, prompt_len, greedy, force=force)
