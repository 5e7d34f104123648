"""OFT — orthogonal fine-tuning (Qiu et al. 2023; peft's ``OFTConfig``): each adapted linear layer's input is
rotated by a learned block-diagonal orthogonal matrix, so the angles between the layer's weight vectors — what
pre-training learned — are kept. LLaMA-Factory's names: ``oft_rank`` (number of blocks r), ``oft_block_size`` (size
b of each block; r × b = the layer's input width, so give one of the two), ``oft_target``, ``module_dropout``,
``additional_target``. The adapter merges into the weights (export, chat) like LoRA's.

This file is the whole method: its options, their checks, how peft builds it and how ``tuneforge estimate``
counts it (the record at the bottom).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

from tuneforge.adapters.folders import load_adapters
from tuneforge.adapters.lora import modules_to_save, resolve_targets, targets_of
from tuneforge.config.messages import Msg, register
from tuneforge.config.registry import Method, register_method
from tuneforge.config.schema import opt, register_group
from tuneforge.utils import log


@dataclass
class OftArgs:
    """oft: the orthogonal rotation blocks."""

    oft_rank: int = opt(0, "oft: number of rotation blocks r per adapted layer (0: follows from oft_block_size). "
                           "Give oft_rank or oft_block_size: r × block size = the layer's input width.")
    oft_block_size: int = opt(32, "oft: size of each rotation block (0: follows from oft_rank). A set oft_rank "
                                  "replaces this default.")
    oft_target: str = opt("all", "oft: modules to adapt (comma list, e.g. q_proj,v_proj) or `all` linear layers.")
    module_dropout: float = opt(0.0, "oft: probability of replacing a rotation block by the identity while "
                                     "training (multiplicative dropout).")


register_group("oft", OftArgs, title=("OFT options", "OFT 选项"), zh={
    "oft_rank": ("OFT 块数", "oft：每个适配层的旋转块数 r（0：由 oft_block_size 决定）。oft_rank 与 oft_block_size 只需"
                            "给一个：r × 块大小 = 该层输入维度。"),
    "oft_block_size": ("OFT 块大小", "oft：每个旋转块的大小（0：由 oft_rank 决定）。设置了 oft_rank 时不使用此默认值。"),
    "oft_target": ("OFT 目标模块", "oft：要适配的模块（逗号分隔，如 q_proj,v_proj）或 all（全部线性层）。"),
    "module_dropout": ("模块 dropout", "oft：训练时把旋转块替换为单位矩阵的概率（乘性 dropout）。"),
})

register({
    "oft_no_size": ("oft_rank and oft_block_size are both 0: give one of them (r × block size = each adapted "
                    "layer's input width), e.g. --oft_block_size 32",
                    "oft_rank 与 oft_block_size 均为 0：请给出其中一个（r × 块大小 = 每个适配层的输入维度），例如 "
                    "--oft_block_size 32"),
    "oft_both_sizes": ("oft_rank={r} and oft_block_size={b} are both set, but r × block size must equal each adapted "
                       "layer's input width: give only one of them",
                       "同时设置了 oft_rank={r} 与 oft_block_size={b}，但 r × 块大小必须等于每个适配层的输入维度："
                       "请只给出其中一个"),
    "oft_target_empty": ("oft_target is empty: give module names (q_proj,v_proj) or `all`",
                         "oft_target 为空：请填写模块名（q_proj,v_proj）或 `all`"),
    "quantization_oft": ("quantization_bit trains on a frozen quantized base, but peft's OFT ({method}) has no "
                         "quantized (bitsandbytes) layers: use --finetuning_type lora for QLoRA, or drop "
                         "quantization_bit",
                         "quantization_bit 需要在冻结的量化基座上训练，但 peft 的 OFT（{method}）没有量化"
                         "（bitsandbytes）层：QLoRA 请使用 --finetuning_type lora，或删除 quantization_bit"),
})


def sizes(cfg, user_set: set[str]) -> tuple[int, int]:
    """(r, block size) as peft takes them: exactly one non-zero. A set oft_rank replaces the default block size."""
    a = cfg.oft
    if a.oft_rank > 0 and "oft_block_size" not in user_set:
        return a.oft_rank, 0
    return a.oft_rank, a.oft_block_size


def validate(cfg, user_set: set[str]) -> list[Msg]:
    a, p = cfg.oft, []
    for key in ("oft_rank", "oft_block_size"):
        if getattr(a, key) < 0:
            p.append(Msg("ge0", key=key, got=getattr(a, key)))
    r, b = sizes(cfg, user_set)
    if r == 0 and b == 0:
        p.append(Msg("oft_no_size"))
    elif r > 0 and b > 0:
        p.append(Msg("oft_both_sizes", r=r, b=b))
    if not 0 <= a.module_dropout < 1:
        p.append(Msg("in_range", key="module_dropout", range="[0, 1)", got=a.module_dropout))
    if not a.oft_target.strip():
        p.append(Msg("oft_target_empty"))
    return p


def oft_config(model, cfg):
    from peft import OFTConfig, TaskType

    r, b = sizes(cfg, cfg.explicit)
    if r and "oft_block_size" not in cfg.explicit:
        log.choice("oft_block_size=0", f"oft_rank={r} given; each layer's block size is its input width / {r}")
    return OFTConfig(task_type=TaskType.CAUSAL_LM, r=r, oft_block_size=b, module_dropout=cfg.oft.module_dropout,
                     target_modules=resolve_targets(model, cfg.oft.oft_target, key="oft_target"),
                     modules_to_save=modules_to_save(model, cfg.finetune.additional_target))


@functools.cache
def peft_applies_module_dropout() -> bool:
    """Whether this peft's OFT layers really drop blocks while training. peft 0.18.0–0.21.2 build the dropout layer
    from module_dropout but never call it in ``Linear.forward`` (probed here on a 16-wide layer, so a later peft
    that applies it is recognised without a version list)."""
    import torch
    from peft import OFTConfig, get_peft_model

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(16, 16)

        def forward(self, x):
            return self.lin(x)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = get_peft_model(One(), OFTConfig(r=0, oft_block_size=4, target_modules=["lin"], module_dropout=0.5,
                                            init_weights=False)).train()
        x = torch.randn(2, 16)
        with torch.no_grad():
            outs = [m(x) for _ in range(6)]
    return not all(torch.equal(outs[0], o) for o in outs[1:])


def apply_oft(model, cfg, adapter_paths: list[str]):
    from peft import get_peft_model

    if cfg.oft.module_dropout > 0 and not peft_applies_module_dropout():
        log.warn(f"module_dropout={cfg.oft.module_dropout}: this peft's OFT layers build the dropout but never apply "
                 "it, so training runs without it (peft 0.18–0.21 do so)")
    if adapter_paths:
        model = load_adapters(model, adapter_paths, trainable=True)
        log.info(f"continuing training of adapter {adapter_paths[-1]}")
        return model
    with warnings.catch_warnings(record=True) as caught:  # peft adjusts a block size that does not divide a layer
        warnings.simplefilter("always")
        model = get_peft_model(model, oft_config(model, cfg))
    for w in {str(w.message) for w in caught if "oft" in str(w.message).lower()}:
        log.choice("oft block size adjusted by peft", w)
    return model


def nearest_divisor(width: int, n: int) -> int:
    """What peft uses when ``n`` (a block size or a block count) does not divide ``width``: the nearest divisor."""
    if n >= width:
        return width
    if width % n == 0:
        return n
    lower, higher = n, n
    while lower > 1 and width % lower:
        lower -= 1
    while higher <= width and width % higher:
        higher += 1
    return lower if n - lower <= higher - n else higher


def estimate_oft(shape, plan) -> int:
    """r blocks of b × b skew-symmetric generators, b(b − 1)/2 numbers each, per adapted layer (peft's count)."""
    settings = plan.settings
    r = settings["oft_rank"]
    b = 0 if r and "oft_block_size" not in plan.explicit else settings["oft_block_size"]
    shapes, total = shape.linear_shapes(), 0
    for t in targets_of(shape, settings["oft_target"]):
        width = shapes[t][0]
        block = nearest_divisor(width, b) if b else width // nearest_divisor(width, r)
        total += (width // block) * block * (block - 1) // 2
    return total * shape.layers


OFT = register_method(Method(
    name="oft", summary="orthogonal fine-tuning: a learned block-diagonal rotation of each adapted layer's input",
    options=(*OftArgs.__dataclass_fields__, "additional_target"), apply=apply_oft, estimate=estimate_oft,
    validate=validate, continues=True, peft_types=("OFT",), quantized_refusal="quantization_oft",
    describe=lambda c: ("OFT", [f"rank {c.get('oft_rank')}", f"block size {c.get('oft_block_size')}",
                                f"target `{c.get('oft_target')}`"])))

