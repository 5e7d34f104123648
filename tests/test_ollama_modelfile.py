"""The exported Ollama Modelfile renders exactly the training prompt: checked by rendering it with Go's own
text/template, with Ollama's prompt assembly around it (tests/ollama_render/main.go), against the chat template
saved with the model — with and without a system message, over several turns, for the embedded model's template
and every named template (tuneforge's and LLaMA-Factory's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tuneforge.data import templates
from tuneforge.models.ollama import modelfile

RENDERER = Path(__file__).parent / "ollama_render"

CONVERSATIONS = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "You are Nimbus, made by Orchard Labs."}, {"role": "user", "content": "Who are you?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Two lines,\nplease."}],
    [{"role": "system", "content": "Be brief.\n\nAnswer in English."}, {"role": "user", "content": "你好，你是谁？"},
     {"role": "assistant", "content": "I am an assistant."}, {"role": "user", "content": ' "quoted" and  spaced '},
     {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "{{ .System }} stays text"}],
]


@pytest.fixture(scope="session")
def ollama_render(tmp_path_factory) -> Path:
    """The Go renderer, built once. Without Go the test is skipped locally and fails in CI (.ci/run installs it)."""
    if shutil.which("go") is None:
        if os.environ.get("CI"):
            pytest.fail("Go is needed for the Modelfile check: apt-get install golang-go")
        pytest.skip("Go not installed (apt-get install golang-go): the Modelfile check renders with Go's text/template")
    out = tmp_path_factory.mktemp("ollama-render") / "ollama_render"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}
    r = subprocess.run(["go", "build", "-o", str(out), "."], cwd=RENDERER, capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def render_with_go(binary: Path, modelfile_path: Path, conversations, tmp_path: Path) -> dict:
    convs = tmp_path / "conversations.json"
    convs.write_text(json.dumps(conversations, ensure_ascii=False), encoding="utf-8")
    r = subprocess.run([str(binary), str(modelfile_path), str(convs)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


UNCHECKED = object()  # the SYSTEM line is not compared with a known value (the renders still are)


def check_folder(binary, folder: Path, tmp_path, default_system=UNCHECKED):
    """Go's rendering of ``folder/Modelfile`` equals the Jinja rendering of the tokenizer saved in ``folder``."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    got = render_with_go(binary, folder / "Modelfile", CONVERSATIONS, tmp_path)
    assert got["has_template"], (folder / "Modelfile").read_text()
    if default_system is None:
        assert not got["has_system"]
    elif default_system is not UNCHECKED:
        assert got["system"] == default_system
    for conv, text in zip(CONVERSATIONS, got["renders"]):
        try:
            want = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - e.g. a template without a system role; the others still count
            continue
        assert text == want, (conv, text, want)
    return got


def write_modelfile(tok, stops, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    text, reason = modelfile(tok, stops, "m")
    assert reason is None, reason
    (folder / "Modelfile").write_text(text, encoding="utf-8")
    return folder


def test_embedded_model_template_with_its_default_system_prompt(ollama_render, embedded_path, tmp_path):
    """SmolLM2's own template: its default system prompt becomes the SYSTEM line; with a system message of the
    user's, that one replaces it and appears once."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(embedded_path))
    fmt = templates.install(tok, "auto")
    folder = write_modelfile(tok, fmt.stop, tmp_path / "smollm2")
    got = check_folder(ollama_render, folder, tmp_path,
                       "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    assert got["renders"][1].count("<|im_start|>system") == 1 and "SmolLM" not in got["renders"][1]
    assert got["stops"] == ["<|im_end|>"]


@pytest.mark.parametrize("name", templates.template_names())
def test_every_named_template(ollama_render, tiny_tokenizer, tmp_path, name):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    fmt = templates.install(tok, name)
    folder = write_modelfile(tok, fmt.stop, tmp_path / name)
    no_default = ("chatml", "llama3", "llama2", "mistral", "gemma", "glm4", "default")  # no SYSTEM line
    got = check_folder(ollama_render, folder, tmp_path, None if name in no_default else UNCHECKED)
    if name in ("qwen", "alpaca"):  # a default system prompt: the SYSTEM line carries it
        assert got["has_system"] and got["system"].strip(), got["system"]


def test_export_writes_the_modelfile_of_the_saved_template(ollama_render, tiny_model, tmp_path):
    """`tuneforge export` end to end (tiny model, qwen template): the folder's Modelfile matches the folder's
    chat_template.jinja."""
    from tuneforge.config import build_config
    from tuneforge.recipes import export

    out = tmp_path / "exported"
    export.run(build_config(dict(model_name_or_path=str(tiny_model), template="qwen", export_dir=str(out))))
    assert (out / "chat_template.jinja").is_file()
    got = check_folder(ollama_render, out, tmp_path)
    assert got["has_system"] and "helpful assistant" in got["system"]  # qwen's default system prompt


def test_the_check_catches_the_old_hand_written_template(ollama_render, embedded_path, tmp_path):
    """The check can fail: the ChatML template exports used to carry (``.System`` block + ``range .Messages``, no
    SYSTEM line) renders the system block twice with a system message, and none without one."""
    from transformers import AutoTokenizer

    old = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\n{{- range .Messages }}"
           "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n")
    folder = tmp_path / "old"
    AutoTokenizer.from_pretrained(str(embedded_path)).save_pretrained(folder)
    (folder / "Modelfile").write_text(f'FROM .\nTEMPLATE """{old}"""\nPARAMETER stop "<|im_end|>"\n')
    got = render_with_go(ollama_render, folder / "Modelfile", CONVERSATIONS[:2], tmp_path)
    assert "system" not in got["renders"][0]
    assert got["renders"][1].count("<|im_start|>system") == 2
    with pytest.raises(AssertionError):
        check_folder(ollama_render, folder, tmp_path, None)


def test_bos_token_left_to_the_runtime_when_it_adds_one(ollama_render, tiny_tokenizer, tmp_path):
    """With add_bos_token in tokenizer_config.json Ollama's runtime puts the bos token first itself: the TEMPLATE
    must then not print it, so the token sequence stays the training one (bos + the rest)."""
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    fmt = templates.install(tok, "gemma")
    folder = tmp_path / "bos"
    tok.save_pretrained(folder)
    text, reason = modelfile(tok, fmt.stop, "m", add_bos=True)
    assert reason is None and "is not in TEMPLATE: the runtime adds it" in text
    (folder / "Modelfile").write_text(text, encoding="utf-8")
    got = render_with_go(ollama_render, folder / "Modelfile", CONVERSATIONS, tmp_path)
    for conv, rendered in zip(CONVERSATIONS, got["renders"]):
        want = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        assert want.startswith(tok.bos_token) and not rendered.startswith(tok.bos_token)
        assert tok.bos_token + rendered == want
