"""Prompt-based methods through peft: prefix tuning, P-Tuning, P-Tuning v2 and prompt tuning, on any decoder model.

They all learn *virtual tokens* and leave every weight of the model untouched:

* ``prefix``     — prefix tuning (Li & Liang 2021): trainable key/value prefixes in every layer, produced through a
                   reparameterisation MLP while training (``prefix_projection`` on by default);
* ``ptuning_v2`` — P-Tuning v2 / deep prompt tuning (Liu et al. 2022): the same per-layer prefixes, learned directly
                   (``prefix_projection`` off by default; ChatGLM's ``pre_seq_len``);
* ``ptuning``    — P-Tuning (Liu et al. 2021): virtual input embeddings produced by a prompt encoder (an MLP);
* ``prompt``     — prompt tuning (Lester et al. 2021): virtual input embeddings learned directly, optionally
                   initialised from the embeddings of ``prompt_tuning_init_text``.

``prefix``/``ptuning_v2`` act through the attention cache (the logits have the input's length); ``ptuning``/``prompt``
prepend embeddings inside ``PeftModel.forward`` (the logits are ``num_virtual_tokens`` longer than the input). Either
way the model must be called through the PeftModel, never through its decoder directly, and virtual tokens cannot be
merged into weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.config.messages import Msg
from tuneforge.config.registry import Method, register_method
from tuneforge.config.schema import opt, register_group
from tuneforge.utils import log

CACHE_METHODS = ("prefix", "ptuning_v2")  # virtual tokens live in the attention cache, not in the logits


@dataclass
class PromptArgs:
    """prefix / ptuning / ptuning_v2 / prompt: the virtual tokens and how they are produced."""

    num_virtual_tokens: int = opt(20, "prefix/ptuning/ptuning_v2/prompt: number of trainable virtual tokens "
                                      "(alias: pre_seq_len).")
    prefix_projection: bool | None = opt(
        None, "prefix/ptuning_v2: produce the prefixes through a trainable MLP (reparameterisation). Default: on "
              "for prefix, off for ptuning_v2.")
    encoder_hidden_size: int | None = opt(
        None, "ptuning, and prefix/ptuning_v2 with prefix_projection: hidden size of the prompt encoder MLP "
              "(default: the model's hidden size).")
    prompt_tuning_init_text: str | None = opt(
        None, "prompt: initialise the virtual tokens from the embeddings of this text (default: random).")


register_group("prompt", PromptArgs, title=("Prompt-based method options", "提示类方法选项"), zh={
    "num_virtual_tokens": ("虚拟 token 数", "prefix/ptuning/ptuning_v2/prompt：可训练虚拟 token 的数量（即 pre_seq_len）。"),
    "prefix_projection": ("前缀投影", "prefix/ptuning_v2：通过可训练 MLP 生成前缀（重参数化）。默认 prefix 开、ptuning_v2 关。"),
    "encoder_hidden_size": ("编码器隐藏维度", "提示编码器 MLP 的隐藏维度（默认：模型隐藏维度）。"),
    "prompt_tuning_init_text": ("初始化文本", "prompt：用这段文本的嵌入初始化虚拟 token（默认随机）。"),
})


def default_projection(method: str) -> bool:
    return method == "prefix"


def validate(cfg, user_set: set[str]) -> list[Msg]:
    a, method, p = cfg.prompt, cfg.finetune.finetuning_type, []
    if a.num_virtual_tokens <= 0:
        p.append(Msg("virtual_tokens", got=a.num_virtual_tokens))
    if a.encoder_hidden_size is not None and a.encoder_hidden_size < 1:
        p.append(Msg("encoder_hidden_size", got=a.encoder_hidden_size))
    projection = a.prefix_projection if a.prefix_projection is not None else default_projection(method)
    if "encoder_hidden_size" in user_set and method in CACHE_METHODS and not projection:
        p.append(Msg("encoder_needs_projection", method=method))
    return p


def prompt_config(model, cfg):
    """The peft config for ``finetuning_type`` (a prompt-based method), with every automatic choice logged."""
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType

    args, method = cfg.prompt, cfg.finetune.finetuning_type
    n = args.num_virtual_tokens
    hidden = getattr(model.config, "hidden_size", None)
    enc = args.encoder_hidden_size
    if method in CACHE_METHODS:
        proj = args.prefix_projection if args.prefix_projection is not None else default_projection(method)
        if args.prefix_projection is None:
            why = ("prefix tuning reparameterises the prefixes through an MLP while training" if proj else
                   "P-Tuning v2 learns the per-layer prefixes directly")
            log.choice(f"prefix_projection={proj}", why)
        if proj and enc is None:
            enc = hidden
            log.choice(f"encoder_hidden_size={enc}", "default is the model's hidden size")
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, prefix_projection=proj,
                                  encoder_hidden_size=enc)
    if method == "ptuning":
        if enc is None:
            enc = hidden
            log.choice(f"encoder_hidden_size={enc}", "default is the model's hidden size")
        return PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, encoder_hidden_size=enc,
                                   encoder_reparameterization_type="MLP")
    # prompt tuning
    if args.prompt_tuning_init_text:
        log.choice("prompt tuning init=TEXT", f"virtual tokens start from the embeddings of "
                                             f"{args.prompt_tuning_init_text!r} (repeated/cut to {n} tokens)")
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, prompt_tuning_init="TEXT",
                                  prompt_tuning_init_text=args.prompt_tuning_init_text,
                                  tokenizer_name_or_path=str(model.name_or_path))
    log.choice("prompt tuning init=RANDOM", "no prompt_tuning_init_text given")
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, prompt_tuning_init="RANDOM")


def apply_prompt(model, cfg, adapter_paths: list[str]):
    from peft import get_peft_model

    return get_peft_model(model, prompt_config(model, cfg))


def prepended_tokens(model) -> int:
    """How many virtual-token positions the model's logits carry in front of the input's positions:
    ``ptuning``/``prompt`` prepend ``num_virtual_tokens`` embeddings, so logits[:, i + n] belongs to input token i."""
    return int(model.active_peft_config.num_virtual_tokens)


def merge_refusal(path: str) -> tuple[Msg, Msg]:
    from tuneforge.adapters.folders import adapter_peft_type

    return (Msg("adapter_prompt_merge", path=path, method=adapter_peft_type(path)),
            Msg("adapter_prompt_merge_fix", path=path))


def generate(model, input_ids, attention_mask, **kw):
    from tuneforge.infer.prompt_decode import generate_prompt_model

    return generate_prompt_model(model, input_ids, attention_mask, **kw)


# ---- tuneforge estimate: trainable parameters as peft builds them (checked against peft in tests) ----------------

def _encoder(shape, plan) -> int:
    enc = plan.settings["encoder_hidden_size"]
    return enc if enc is not None else shape.d


def estimate_prefix(shape, plan) -> int:
    """PrefixTuning: per layer a key and a value prefix of the key/value width, learned directly or produced by an
    MLP from an embedding (prefix_projection)."""
    n, kv = plan.settings["num_virtual_tokens"], shape.kv_heads * shape.head_dim
    out = shape.layers * 2 * kv
    proj = plan.settings["prefix_projection"]
    if proj if proj is not None else default_projection(plan.method):
        enc = _encoder(shape, plan)
        return n * kv + (kv * enc + enc) + (enc * out + out)
    return n * out


def estimate_ptuning(shape, plan) -> int:
    """P-Tuning: an embedding per virtual token and a three-layer MLP encoder."""
    n, d, enc = plan.settings["num_virtual_tokens"], shape.d, _encoder(shape, plan)
    return n * d + (d * enc + enc) + (enc * enc + enc) + (enc * d + d)


def estimate_prompt(shape, plan) -> int:
    return plan.settings["num_virtual_tokens"] * shape.d


COMMON = dict(validate=validate, merges=False, full_forward="prompt-based methods add their virtual tokens in the "
              "adapter's forward", generate=generate, merge_refusal=merge_refusal,
              keeps_embedding="prompt-based methods look tokens up in the adapter's own forward", apply=apply_prompt)
_VT = "num_virtual_tokens"


def _describe(label: str):
    return lambda cfg: (label, [f"{cfg.get(_VT)} virtual tokens"])


PREFIX = register_method(Method(
    name="prefix", describe=_describe("prefix tuning"), summary="prefix tuning: key/value prefixes in every layer, through an MLP while training",
    options=(_VT, "prefix_projection", "encoder_hidden_size"), estimate=estimate_prefix,
    peft_types=("PREFIX_TUNING",), **COMMON))
PTUNING = register_method(Method(
    name="ptuning", describe=_describe("P-Tuning"), summary="P-Tuning: virtual input tokens produced by a prompt-encoder MLP",
    options=(_VT, "encoder_hidden_size"), estimate=estimate_ptuning, peft_types=("P_TUNING",),
    virtual_tokens=True, logits_offset=prepended_tokens, **COMMON))
PTUNING_V2 = register_method(Method(
    name="ptuning_v2", describe=_describe("P-Tuning v2"), summary="P-Tuning v2 (deep prompt tuning): prefixes in every layer, learned directly",
    options=(_VT, "prefix_projection", "encoder_hidden_size"), estimate=estimate_prefix,
    peft_types=("PREFIX_TUNING",), **COMMON))
PROMPT = register_method(Method(
    name="prompt", describe=_describe("prompt tuning"), summary="prompt tuning: virtual input embeddings learned directly",
    options=(_VT, "prompt_tuning_init_text"), estimate=estimate_prompt, peft_types=("PROMPT_TUNING",),
    virtual_tokens=True, logits_offset=prepended_tokens, **COMMON))
