"""LoRA and its variants (rsLoRA, DoRA, LoRA+, PiSSA) through peft. The only module that builds LoRA configs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuneforge.adapters.folders import load_adapters, split_list
from tuneforge.config.messages import Msg
from tuneforge.config.registry import Method, register_method
from tuneforge.config.schema import opt, register_group
from tuneforge.config.validate import LAYER_SPEC_HELP, parse_layer_spec
from tuneforge.errors import ConfigError
from tuneforge.utils import log


@dataclass
class LoraArgs:
    """lora: the low-rank update and its variants."""

    lora_rank: int = opt(8, "lora: rank r of the update matrices.")
    lora_alpha: float | None = opt(None, "lora: scaling alpha; default 2 × lora_rank.")
    lora_dropout: float = opt(0.0, "lora: dropout on the adapter input.")
    lora_target: str = opt("all", "lora: modules to adapt (comma list, e.g. q_proj,v_proj) or `all` linear layers.")
    lora_layers: str | None = opt(
        None, "lora: decoder layers that get adapters — a count N (the last N layers; -N: the first N) or indices and "
              "ranges (e.g. 20-29). Default: every layer. Adapting only the upper layers also stops the backward "
              "pass there, which makes each step cheaper.")
    use_rslora: bool = opt(False, "lora: rank-stabilised scaling alpha/sqrt(r) instead of alpha/r.")
    use_dora: bool = opt(False, "lora: weight-decomposed LoRA (DoRA).")
    loraplus_lr_ratio: float | None = opt(None, "lora: LoRA+ — learning rate of B = ratio × learning_rate (e.g. 16).")
    pissa_init: bool = opt(False, "lora: initialise the adapter from the principal singular vectors (PiSSA).")
    pissa_iter: int = opt(16, "lora: fast-SVD iterations for PiSSA; -1 for a full SVD.")
    fused_lora: bool = opt(
        False, "lora: add the adapter's update inside one addmm (no separate scale/add kernels; layers with dropout "
               "or DoRA keep peft's forward). Off by default: on an H200 it moved the time into the matmuls and "
               "gained < 1 % (docs/benchmarks.md).")


register_group("lora", LoraArgs, title=("LoRA options", "LoRA 选项"), zh={
    "lora_rank": ("LoRA 秩", "lora：更新矩阵的秩 r。"),
    "lora_alpha": ("LoRA alpha", "lora：缩放系数 alpha；默认 2 × lora_rank。"),
    "lora_dropout": ("LoRA dropout", "lora：适配器输入上的 dropout。"),
    "lora_target": ("LoRA 目标模块", "lora：要适配的模块（逗号分隔，如 q_proj,v_proj）或 all（全部线性层）。"),
    "lora_layers": ("LoRA 层", "lora：添加适配器的解码层——数字 N 表示最后 N 层（-N 表示前 N 层），或层号与范围（如 "
                              "20-29）。默认：全部层。只适配上层时反向传播也在那里停止，每步更快。"),
    "use_rslora": ("rsLoRA", "lora：使用秩稳定缩放 alpha/sqrt(r)。"),
    "use_dora": ("DoRA", "lora：权重分解 LoRA（DoRA）。"),
    "loraplus_lr_ratio": ("LoRA+ 学习率比", "lora：LoRA+，B 矩阵学习率 = 比值 × learning_rate（如 16）。"),
    "pissa_init": ("PiSSA 初始化", "lora：用主奇异向量初始化适配器（PiSSA）。"),
    "pissa_iter": ("PiSSA 迭代次数", "lora：PiSSA 快速 SVD 的迭代次数；-1 为完整 SVD。"),
    "fused_lora": ("融合 LoRA", "lora：在一次 addmm 中加上适配器更新（带 dropout 或 DoRA 的层仍用 peft 的前向）。默认关闭。"),
})


def validate(cfg, user_set: set[str]) -> list[Msg]:
    """The LoRA settings, before any weights load (the layers and targets are checked against the model later)."""
    a, p = cfg.lora, []
    if a.lora_rank < 1:
        p.append(Msg("ge1", key="lora_rank", got=a.lora_rank))
    if a.lora_alpha is not None and a.lora_alpha <= 0:
        p.append(Msg("gt0", key="lora_alpha", got=a.lora_alpha))
    if not 0 <= a.lora_dropout < 1:
        p.append(Msg("in_range", key="lora_dropout", range="[0, 1)", got=a.lora_dropout))
    if not a.lora_target.strip():
        p.append(Msg("lora_target_empty"))
    if a.lora_layers is not None:
        try:
            parse_layer_spec(a.lora_layers, None)
        except ValueError as e:
            p.append(Msg("lora_layers_bad", value=a.lora_layers, reason=e.args[0], help=LAYER_SPEC_HELP))
    if a.loraplus_lr_ratio is not None and a.loraplus_lr_ratio <= 0:
        p.append(Msg("gt0", key="loraplus_lr_ratio", got=a.loraplus_lr_ratio))
    if a.pissa_init and cfg.model.adapter_name_or_path:
        p.append(Msg("pissa_with_adapter"))
    return p


def linear_module_names(model) -> list[str]:
    """Short names of the linear layers LoRA (and OFT) can target (the output head excluded)."""
    import torch

    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for full, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and mod is not out_emb and "lora_" not in full:
            names.add(full.split(".")[-1])
    return sorted(names)


def module_short_names(model) -> set[str]:
    return {n.split(".")[-1] for n, _ in model.named_modules() if n}


def resolve_targets(model, target: str, key: str = "lora_target") -> list[str]:
    """``target`` (a comma list, or ``all``) as the short names of linear layers; unknown names list the valid ones."""
    available = linear_module_names(model)
    if target.strip() == "all":
        log.choice(f"{key}={','.join(available)}", f"{key}=all adapts every linear layer except the head")
        return available
    wanted = split_list(target)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise ConfigError([Msg("lora_target_missing", key=key, missing=missing, available=", ".join(available))])
    return wanted


def modules_to_save(model, text: str | None) -> list[str] | None:
    """additional_target: modules trained fully and saved with the adapter."""
    extra = split_list(text)
    if extra:
        have = module_short_names(model)
        bad = [m for m in extra if m not in have]
        if bad:
            raise ConfigError([Msg("additional_target_missing", bad=bad)])
    return extra or None


def resolve_layers(model, args: LoraArgs) -> list[int] | None:
    if args.lora_layers is None:
        return None
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    try:
        layers = parse_layer_spec(args.lora_layers, n)
    except ValueError as e:
        raise ConfigError([Msg("lora_layers_bad", value=args.lora_layers, reason=e.args[0], help=LAYER_SPEC_HELP)]) \
            from None
    if layers is not None:
        log.choice(f"lora_layers={layers[0]}..{layers[-1]} ({len(layers)} of {n})",
                   f"asked; the backward pass stops at layer {layers[0]} (nothing below it is trained)")
    return layers


def lora_config(model, cfg):
    from peft import LoraConfig, TaskType

    args = cfg.lora
    extra = modules_to_save(model, cfg.finetune.additional_target)
    alpha = args.lora_alpha if args.lora_alpha is not None else 2 * args.lora_rank
    if args.lora_alpha is None:
        log.choice(f"lora_alpha={alpha:g}", "default is 2 × lora_rank")
    init: bool | str = True
    if args.pissa_init:
        init = "pissa" if args.pissa_iter == -1 else f"pissa_niter_{args.pissa_iter}"
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=args.lora_rank, lora_alpha=alpha, lora_dropout=args.lora_dropout,
        target_modules=resolve_targets(model, args.lora_target), modules_to_save=extra, use_rslora=args.use_rslora,
        use_dora=args.use_dora, init_lora_weights=init, layers_to_transform=llama_pro_layers(model, cfg)
        or resolve_layers(model, args))


def llama_pro_layers(model, cfg) -> list[int] | None:
    """use_llama_pro: adapters on the expanded layers only (the last of each freeze_trainable_layers block)."""
    if not cfg.finetune.use_llama_pro:
        return None
    from tuneforge.adapters.llama_pro import expanded_layers

    return expanded_layers(model.config.num_hidden_layers, cfg.freeze.freeze_trainable_layers)


def apply_lora(model, cfg, adapter_paths: list[str]):
    from peft import get_peft_model

    from tuneforge.compat import patch_lora_forward

    if adapter_paths:
        model = load_adapters(model, adapter_paths, trainable=True)
        log.info(f"continuing training of adapter {adapter_paths[-1]}")
    else:
        model = get_peft_model(model, lora_config(model, cfg))
        if cfg.lora.pissa_init:
            remember_pissa_init(model)
    patch_lora_forward(model, cfg.lora.fused_lora)
    return model


# PiSSA moves the adapter's principal part out of the base weights (W_res = W - s*B0*A0) and trains A, B from there.
# The trained A, B alone are only right on that residual base: loaded onto the original base (chat, export, vLLM)
# the principal part would count twice. So the initial adapter is kept and the final save writes the equivalent
# plain LoRA adapter for the original base (peft's conversion: rank 2r, s*[B | -B0][A ; A0] = s*(BA - B0A0)).
PISSA_INIT_ATTR = "_tuneforge_pissa_init"


def remember_pissa_init(model) -> None:
    import tempfile

    init = Path(tempfile.mkdtemp(prefix="tuneforge-pissa-")) / "pissa_init"
    model.save_pretrained(str(init), safe_serialization=True)
    setattr(model, PISSA_INIT_ATTR, str(init))


def save_lora(model, out: Path, state_dict: dict | None = None) -> None:
    """``model.save_pretrained(out)``; a PiSSA adapter is saved converted to plain LoRA for the original base.
    ``state_dict``: the weights gathered from every rank of a sharded run (train/distributed.py), saved instead of
    the model's own (sharded) tensors."""
    import shutil

    extra = {"state_dict": state_dict} if state_dict is not None else {}
    init = model.__dict__.get(PISSA_INIT_ATTR)
    if not init:
        model.save_pretrained(str(out), safe_serialization=True, **extra)
        return
    model.save_pretrained(str(out), safe_serialization=True, path_initial_model_for_weight_conversion=init, **extra)
    shutil.rmtree(Path(init).parent, ignore_errors=True)
    del model.__dict__[PISSA_INIT_ATTR]
    log.choice("PiSSA adapter saved as plain LoRA (rank 2r)",
               "the trained PiSSA weights only fit the residual base it trained on; the saved adapter is the "
               "equivalent update of the original base, so chat and export load it on the unmodified model")


def lr_scale(name: str, cfg) -> float | None:
    """LoRA+: the B matrices learn ``loraplus_lr_ratio`` × faster."""
    ratio = cfg.lora.loraplus_lr_ratio
    if ratio and ("lora_B" in name or "lora_embedding_B" in name):
        return ratio
    return None


LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def targets_of(shape, target: str) -> list[str]:
    """estimate: the decoder's linear layers a target list names (``all``: every one)."""
    return list(LINEAR) if target.strip() == "all" else [t for t in split_list(target) if t in LINEAR]


def estimate_lora(shape, plan) -> int:
    shapes = shape.linear_shapes()
    r = plan.settings["lora_rank"]
    return r * sum(shapes[t][0] + shapes[t][1] for t in targets_of(shape, plan.settings["lora_target"])) * shape.layers


def preflight(cfg) -> str | None:
    """A fresh LoRA's targets must exist in the model: read from the weights' headers, no loading."""
    if cfg.model.adapter_name_or_path:  # continuing an adapter: its targets are in its adapter_config.json
        return None
    from tuneforge.models.inspect import check_lora_target

    return check_lora_target(cfg.model.model_name_or_path, cfg.lora.lora_target)


def describe(cfg: dict) -> tuple[str, list[str]]:
    variant = [n for k, n in (("use_dora", "DoRA"), ("use_rslora", "rsLoRA"), ("pissa_init", "PiSSA")) if cfg.get(k)]
    name = ("QLoRA" if cfg.get("quantization_bit") else "LoRA") + (f" ({', '.join(variant)})" if variant else "")
    rank = cfg.get("lora_rank")
    settings = [f"rank {rank}", f"alpha {cfg.get('lora_alpha') or 2 * (rank or 0)}",
                f"dropout {cfg.get('lora_dropout')}", f"target `{cfg.get('lora_target')}`"]
    if cfg.get("lora_layers"):
        settings.append(f"layers `{cfg['lora_layers']}`")
    if cfg.get("loraplus_lr_ratio"):
        settings.append(f"LoRA+ ratio {cfg['loraplus_lr_ratio']}")
    if cfg.get("quantization_bit"):
        settings.append(f"{cfg['quantization_bit']}-bit {cfg.get('quantization_type')} base")
    return name, settings


LORA = register_method(Method(
    name="lora", summary="low-rank updates of linear layers (rsLoRA, DoRA, LoRA+, PiSSA; QLoRA with "
                         "quantization_bit)",
    options=(*LoraArgs.__dataclass_fields__, "additional_target"), apply=apply_lora, estimate=estimate_lora,
    validate=validate, continues=True, peft_types=("LORA",), lr_scale=lr_scale, save=save_lora, preflight=preflight,
    describe=describe))
