"""An Ollama ``Modelfile`` whose ``TEMPLATE`` renders exactly the prompt the model was trained on.

How Ollama builds a chat prompt (its ``server/routes.go`` and ``template/template.go``): the Modelfile's ``SYSTEM``
text is put first as a system message when the request's first message is not a system message; consecutive
messages of the same role are joined with a blank line; the Go ``text/template`` then runs with ``.Messages`` (every
message, the system ones included) and ``.System`` (the system messages joined). A template that prints ``.System``
*and* ranges over ``.Messages`` therefore prints the system block twice, and one without a ``SYSTEM`` line has no
system block at all when the user gives none — the two ways a hand-written ChatML template drifts from training.

Instead of hand-writing a Go template per chat template, the exact text around each message is *measured*: the
chat template (the Jinja text saved with the run) is rendered for a few conversations of sentinel strings, which
gives the text before the first message for each role, the text between two messages for each pair of roles, and
the generation prompt. The table is checked against the Jinja renders of other conversations (with and without a
system message, several turns, multi-line and non-ASCII text); only if every one matches is a ``TEMPLATE`` written.
The template's default system prompt (SmolLM2's "You are a helpful AI assistant named SmolLM…", Qwen's "You are a
helpful assistant.") is measured too and written as the ``SYSTEM`` line, so ``ollama show`` displays it and a
user's own system message replaces it, as in training. Tool definitions are not rendered (Ollama's ``.Tools``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("system", "user", "assistant")
_S = "QzX{}Qz"  # sentinel contents: no whitespace, no template syntax, nothing a template would change


@dataclass
class PromptTable:
    """The text a chat template puts around message contents: ``start[role]`` before the first message,
    ``sep[(prev, role)]`` between two messages, ``end`` (the generation prompt) after the last user message."""

    start: dict[str, str]
    sep: dict[tuple[str, str], str]
    end: str
    default_system: str | None = None
    bos_dropped: str = ""  # a leading bos token left to the runtime, which adds it itself (add_bos_token)
    notes: list[str] = field(default_factory=list)

    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.start or any(k[1] == r for k in self.sep)]

    def render(self, messages: list[dict]) -> str:
        """What Ollama renders for ``messages`` with this table's template and SYSTEM line (Python mirror)."""
        msgs = [dict(m) for m in messages]
        if self.default_system is not None and (not msgs or msgs[0]["role"] != "system"):
            msgs.insert(0, {"role": "system", "content": self.default_system})
        collated: list[dict] = []
        for m in msgs:  # Ollama joins consecutive messages of one role
            if collated and collated[-1]["role"] == m["role"]:
                collated[-1]["content"] += "\n\n" + m["content"]
            else:
                collated.append(m)
        out, prev = [], ""
        for m in collated:
            r = m["role"]
            if r not in self.roles():  # a role the template has no text for (e.g. it refuses system messages)
                continue
            out.append(self.start.get(r, "") if not prev else self.sep.get((prev, r), ""))
            out.append(m["content"])
            prev = r
        if prev == "user":
            out.append(self.end)
        return "".join(out)


def _render(tokenizer, messages, gen=True) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def _split(text: str, contents: list[str]) -> list[str] | None:
    """``text`` cut at each content in turn: [before c0, between c0 and c1, …, after the last]."""
    parts, rest = [], text
    for c in contents:
        if rest.count(c) != 1:
            return None
        before, rest = rest.split(c)
        parts.append(before)
    return parts + [rest]


def _conv(roles: str) -> list[dict]:
    names = {"s": "system", "u": "user", "a": "assistant"}
    return [{"role": names[r], "content": _S.format(i)} for i, r in enumerate(roles)]


def _measure(tokenizer) -> PromptTable | str:
    def parts(roles):
        conv = _conv(roles)
        try:
            return _split(_render(tokenizer, conv), [m["content"] for m in conv])
        except Exception:  # noqa: BLE001 - a template may refuse a shape (e.g. no system role); then it is unused
            return None

    u, uau = parts("u"), parts("uau")
    if u is None or uau is None:
        return "the chat template does not render a user/assistant conversation with each message's text once"
    start = {"user": u[0]}
    sep = {("user", "assistant"): uau[1], ("assistant", "user"): uau[2]}
    end = u[1]
    if uau[0] != u[0] or uau[3] != end:
        return "the text before the first message or the generation prompt depends on the conversation's length"
    su, suau = parts("su"), parts("suau")
    default_system = None
    if su is not None and suau is not None:
        start["system"], sep[("system", "user")] = su[0], su[1]
        if su[2] != end or suau[:2] != su[:2] or suau[2:4] != uau[1:3]:
            return "the text around a message depends on more than the roles of it and the message before it"
        s, between = su[0], su[1]
        if u[0] != s and u[0].startswith(s) and u[0].endswith(between) and len(u[0]) > len(s) + len(between):
            default_system = u[0][len(s):len(u[0]) - len(between)]  # the template's own system prompt
    return PromptTable(start, sep, end, default_system)


_CHECKS = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "You are Nimbus, made by Orchard Labs."},
     {"role": "user", "content": "Who are you?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Write two lines.\nThen stop."}],
    [{"role": "system", "content": "Answer briefly.\n\nUse English."}, {"role": "user", "content": "你好，你是谁？"},
     {"role": "assistant", "content": "我是一个助手。"}, {"role": "user", "content": " spaces around  "}],
]


def prompt_table(tokenizer, add_bos: bool = False) -> PromptTable | str:
    """Measure the chat template of ``tokenizer``; a reason (str) where no exact table exists."""
    if not getattr(tokenizer, "chat_template", None):
        return "the tokenizer has no chat template"
    table = _measure(tokenizer)
    if isinstance(table, str):
        return table
    bos = getattr(tokenizer, "bos_token", None) or ""
    if add_bos and bos and all(v.startswith(bos) for v in table.start.values()):
        # The runtime puts the bos token first itself (tokenizer_config.json add_bos_token); the template must not.
        table.start = {k: v[len(bos):] for k, v in table.start.items()}
        table.bos_dropped = bos
    for conv in _CHECKS:
        try:
            want = _render(tokenizer, conv)
        except Exception:  # noqa: BLE001 - a shape the template refuses (e.g. a system message) is not checked
            continue
        if table.bos_dropped + table.render(conv) != want:
            return f"the measured template does not reproduce the chat template for {json.dumps(conv)[:120]}…"
    return table


def _go(s: str) -> str:
    """``s`` as a Go string constant: escapes for quotes and control characters, so the Modelfile parser (which
    ends a triple-quoted value at a line ending in three quotes, and drops unprintable characters) keeps it."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append("\\x22")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '{{ "' + "".join(out) + '" }}'


def go_template(table: PromptTable) -> str:
    """The Go text/template that renders ``table`` from Ollama's ``.Messages``. Every literal is a Go string
    constant, so the ``{{-`` trims that lay the template out never touch the prompt's own whitespace."""
    lines = ['{{- $prev := "" }}', "{{- range .Messages }}"]
    first = True
    for role in table.roles():
        branches = [("", table.start.get(role))] + [(p, table.sep.get((p, role))) for p in ROLES]
        branches = [(p, t) for p, t in branches if t is not None]
        lines.append(("{{- if" if first else "{{- else if") + f' eq .Role "{role}" }}}}')
        first = False
        inner = "".join(("{{- if" if i == 0 else "{{- else if") + f' eq $prev "{p}" }}}}' + (_go(t) if t else "")
                        for i, (p, t) in enumerate(branches))
        lines.append("  " + inner + "{{- end }}" + "{{ .Content }}{{ $prev = .Role }}")
    lines += ["{{- end }}", "{{- end }}", '{{- if eq $prev "user" }}' + _go(table.end) + "{{ end }}"]
    return "\n".join(lines)


def _quote(s: str) -> str | None:
    """A Modelfile value in triple quotes, or None where Ollama's parser would not read it back verbatim."""
    ok = '"""' not in s and not s.endswith('"') and all(c in "\n\t" or c.isprintable() for c in s)
    ok = ok and not any(line.rstrip().endswith('"""') for line in s.splitlines())
    return f'"""{s}"""' if ok else None


def modelfile(tokenizer, stops: list[str], name: str, add_bos: bool = False) -> tuple[str, str | None]:
    """The Modelfile text, and the reason no TEMPLATE could be written (None when it was)."""
    lines = [f"# Ollama: ollama create {name} -f Modelfile   (run in this folder)",
             "# Ollama imports the safetensors weights in this folder (supported architectures: Llama, Mistral, "
             "Gemma, Phi3, Qwen2, …).", "FROM ."]
    table = prompt_table(tokenizer, add_bos)
    reason = table if isinstance(table, str) else None
    if reason:
        lines.append(f"# No TEMPLATE: {reason}. Ollama then derives one from chat_template.jinja; check its prompt "
                     f"with `ollama show {name} --template` against the chat template saved here.")
    else:
        lines += ["# TEMPLATE renders exactly the prompt of chat_template.jinja (measured from it and checked):",
                  "# the text before the first message, between messages (by role) and the generation prompt."]
        if table.bos_dropped:
            lines.append(f"# {table.bos_dropped} is not in TEMPLATE: the runtime adds it (add_bos_token).")
        lines.append(f'TEMPLATE """{go_template(table)}"""')
        if table.default_system is not None:
            quoted = _quote(table.default_system)
            if quoted:
                lines += ["# The chat template's default system prompt; a system message of your own replaces it.",
                          f"SYSTEM {quoted}"]
            else:  # the template's first-user-message text already carries it
                lines.append("# The default system prompt is inside TEMPLATE (it cannot be quoted as a SYSTEM line).")
                table.default_system = None
    for s in stops:
        simple = s and '"' not in s and s.isprintable() and s.strip() == s
        quoted = f'"{s}"' if simple else _quote(s)
        lines.append(f"PARAMETER stop {quoted}" if quoted else f"# stop string {s!r} cannot be written as a PARAMETER")
    return "\n".join(lines) + "\n", reason


def add_bos_token(folder: str | Path) -> bool:
    """What Ollama's importer reads to decide whether the runtime puts a bos token first."""
    p = Path(folder) / "tokenizer_config.json"
    try:
        return bool(json.loads(p.read_text(encoding="utf-8")).get("add_bos_token", False))
    except (OSError, ValueError):
        return False
