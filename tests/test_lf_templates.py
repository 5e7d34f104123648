"""Templates by LLaMA-Factory's names: every name in LF's list resolves (text templates render prefix-stably with
LF's default system prompt and stop words; vision/audio names refuse), and for families whose tokenizer can be built
here the rendered ids equal the family's official chat template (tests/data/chat_templates/, sources in its README;
SmolLM2's from the embedded model's own tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CORPUS, needs_embedded
from tuneforge.data import templates
from tuneforge.data.encode import EncodeStats, encode_conversation
from tuneforge.data.schema import Conversation, Message
from tuneforge.errors import TuneforgeError

DATA = Path(__file__).parent / "data"
NAMES = [ln.strip() for ln in (DATA / "lf" / "template-names.txt").read_text().splitlines()
         if ln.strip() and not ln.startswith("#")]
LF = templates.load_lf()
TEXT_NAMES = [n for n in NAMES if LF[n]["kind"] != "multimodal"]
MM_NAMES = [n for n in NAMES if LF[n]["kind"] == "multimodal"]

CONVS = {
    "one": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}],
    "system": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who are you?"},
               {"role": "assistant", "content": "Nimbus."}],
    "two": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."},
            {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6."}],
}


def tokenizer_with(specials: list[str], bos: str | None, eos: str, chat_template: str | None = None):
    """A small byte-level BPE tokenizer trained here, with a family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=eos, bos_token=bos, pad_token=eos)
    tok.chat_template = chat_template
    return tok


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.fixture(scope="module")
def chatml_module_tok():
    return tokenizer_with(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", CHATML)


@pytest.fixture()
def chatml_tok(chatml_module_tok):
    chatml_module_tok.chat_template = CHATML  # each test starts from the model's own template
    return chatml_module_tok


def test_the_list_is_lfs():
    assert len(NAMES) == 125 and set(NAMES) == set(LF)
    assert {"qwen3_nothink", "qwen3", "deepseek3", "qwen3_5", "default", "empty", "fewshot"} <= set(TEXT_NAMES)
    assert {"qwen2_vl", "llava", "qwen3_vl_nothink"} <= set(MM_NAMES)


@pytest.mark.parametrize("name", TEXT_NAMES)
def test_every_text_name_renders_prefix_stably(name, chatml_tok):
    assert templates.check_template(name) is None
    fmt = templates.install(chatml_tok, name)
    assert fmt.stop, name
    for conv in CONVS.values():
        for k, m in enumerate(conv):
            if m["role"] != "assistant":
                continue
            prompt = fmt.render(chatml_tok, conv[:k], add_generation_prompt=True)
            upto = fmt.render(chatml_tok, conv[: k + 1])
            full = fmt.render(chatml_tok, conv)
            assert upto.startswith(prompt) and full.startswith(upto), name
            reply = upto[len(prompt):]
            assert m["content"] in reply, (name, reply)
            if name != "empty":  # LF's `empty` writes no end-of-reply token at all
                assert any(s in reply for s in fmt.stop), (name, reply, fmt.stop)
    sample = encode_conversation(fmt, chatml_tok, Conversation([Message("user", "Hi"), Message("assistant", "Yo")]),
                                 4096, EncodeStats())
    assert sample is not None and sample.n_trained > 0


@pytest.mark.parametrize("name", MM_NAMES)
def test_multimodal_names_refuse(name, chatml_tok):
    problem = templates.check_template(name)
    assert "multimodal training is not supported yet" in problem
    with pytest.raises(TuneforgeError):
        templates.install(chatml_tok, name)


def test_lf_default_system_prompts_and_quirks(chatml_tok):
    def text(name, conv, **kw):
        return templates.install(chatml_tok, name, **kw).render(chatml_tok, conv)

    one = CONVS["one"]
    assert text("qwen", one).startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n")
    assert text("chatml_de", one).startswith("<|im_start|>system\nDu bist ein freundlicher")
    assert text("qwen3_nothink", one) == ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                                          "Hello there.<|im_end|>\n")
    # qwen3 (reasoning): a reply without a thought gets an empty one; with thinking off it moves to the prompt
    fmt = templates.install(chatml_tok, "qwen3")
    assert fmt.render(chatml_tok, one) == ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                                           "<think>\n\n</think>\n\nHello there.<|im_end|>\n")
    assert fmt.render(chatml_tok, one[:1], add_generation_prompt=True).endswith("<|im_start|>assistant\n")
    off = templates.install(chatml_tok, "qwen3", thinking=False)
    assert off.render(chatml_tok, one[:1], add_generation_prompt=True).endswith("assistant\n<think>\n\n</think>\n\n")
    # the empty thought is trained with thinking on, not with thinking off
    conv = Conversation([Message("user", "Hi"), Message("assistant", "Hello there.")])
    off_s = encode_conversation(off, chatml_tok, conv, 512, EncodeStats())
    on_s = encode_conversation(templates.install(chatml_tok, "qwen3", thinking=True), chatml_tok, conv, 512,
                               EncodeStats())
    assert on_s.input_ids == off_s.input_ids and on_s.n_trained > off_s.n_trained
    assert text("alpaca", one).startswith("Below is an instruction that describes a task.")
    assert text("default", one) == "Human: Hi<|im_end|>\nAssistant:Hello there.<|im_end|>\n"
    assert text("vicuna", one).startswith("A chat between a curious user and an artificial intelligence assistant.")
    assert text("empty", one) == "HiHello there."
    # a reasoning reply keeps its own thought
    thought = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHey"}]
    assert "<think>\nhm\n</think>\n\nHey<|im_end|>" in text("qwen3", thought)
    assert "hm" not in text("qwen3", thought, thinking=False)


def test_own_template_names_use_the_models_template(chatml_tok):
    fmt = templates.install(chatml_tok, "gemma4")
    assert fmt.render(chatml_tok, CONVS["one"]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there.<|im_end|>\n"
    bare = tokenizer_with(["<eos>"], None, "<eos>")
    with pytest.raises(TuneforgeError) as e:
        templates.install(bare, "gemma4")
    assert "uses the model's own chat template" in e.value.message


def test_a_saved_lf_template_is_recognised_and_kept(chatml_tok):
    templates.install(chatml_tok, "qwen3", thinking=False)
    saved = chatml_tok.chat_template
    assert templates.identify(saved) == "qwen3"
    fmt = templates.install(chatml_tok, "qwen3")  # chat over the saved run: the trained template is kept
    assert chatml_tok.chat_template == saved and "<|im_end|>" in fmt.stop


# ---- rendered ids equal the family's official chat template ---------------------------------------------------------

def _official_equal(name, tok, official: str, convs):
    fmt = templates.install(tok, name)
    for conv in convs:
        for gen in (False, True):
            msgs = conv[:-1] if gen else conv
            ours = fmt.render(tok, msgs, add_generation_prompt=gen)
            theirs = tok.apply_chat_template(msgs, chat_template=official, tokenize=False, add_generation_prompt=gen)
            assert ours == theirs, (name, ours, theirs)
            assert tok(ours, add_special_tokens=False)["input_ids"] == tok(theirs, add_special_tokens=False)["input_ids"]


def test_qwen_equals_qwen2_5s_official_template(chatml_tok):
    official = (DATA / "chat_templates" / "qwen2.5-instruct.jinja").read_text()
    _official_equal("qwen", chatml_tok, official, CONVS.values())


def test_llama3_equals_the_official_template():
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|eom_id|>"]
    tok = tokenizer_with(specials, "<|begin_of_text|>", "<|eot_id|>")
    official = (DATA / "chat_templates" / "llama-3-instruct.jinja").read_text()
    _official_equal("llama3", tok, official, CONVS.values())


def test_gemma_and_gemma2_equal_the_official_template():
    tok = tokenizer_with(["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<eos>")
    official = (DATA / "chat_templates" / "gemma-it.jinja").read_text()
    no_system = [c for c in CONVS.values() if c[0]["role"] != "system"]  # Gemma's own template refuses a system turn
    for name in ("gemma", "gemma2"):
        _official_equal(name, tok, official, no_system)


@needs_embedded
def test_smollm2_equals_the_models_own_template(embedded_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(embedded_path))
    official = tok.chat_template
    _official_equal("smollm2", tok, official, CONVS.values())
    tok.chat_template = official
    _official_equal("smollm", tok, official, [CONVS["system"]])  # SmolLM (v1): no default system of its own
