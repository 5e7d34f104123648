"""The training stages, one record each (config.registry.STAGES): the recipe, the settings only it takes, its checks,
and the model-preparation settings it cannot honour (refused with the reason before any weights load).

Torch-free: validation and the web form read these records; each recipe module is imported when its stage runs.
"""

from __future__ import annotations

import importlib

from tuneforge.config.messages import Msg, register
from tuneforge.config.registry import LOSSES, Stage, register_stage
from tuneforge.config.schema import PpoArgs


def _recipe(module: str):
    def run(cfg):
        return importlib.import_module(f"tuneforge.recipes.{module}").run(cfg)

    run.__name__ = f"run_{module}"
    return run


register({
    "loss_option": ("{keys} applies to pref_loss {losses} only, but pref_loss is {loss}",
                    "{keys} 只适用于 pref_loss {losses}，但当前 pref_loss 为 {loss}"),
    "stage_refuses": ("{setting} does not apply to --stage {stage} ({reason}): remove it",
                      "{setting} 不适用于 --stage {stage}（{reason}）：请删除该设置"),
    "why_pairs_whole": ("each preference sample is scored as a whole sequence", "每个偏好样本要作为完整序列打分"),
    "why_rollouts_per_prompt": ("rollouts are generated from each prompt on its own", "rollout 是针对每个提示单独生成的"),
    "why_shared_prefix_token_loss": ("the shared prefix is computed inside the token loss of sft and pt",
                                     "共享前缀只在 sft 和 pt 的 token 损失中计算"),
    "why_compile_rollouts": ("rollouts are generated with a growing key/value cache, for which compiled decoder layers "
                             "would recompile at every new length",
                             "rollout 生成时键值缓存不断增长，编译后的解码层会在每个新长度上重新编译"),
    "why_rollout_order": ("rollout prompts are drawn in a shuffled order, not in batches of similar length",
                          "rollout 的提示按随机顺序抽取，而不是按相近长度分批"),
    "why_rm_scores": ("a reward model scores replies instead of writing them; score some with `tuneforge score`",
                      "奖励模型给回复打分而不是生成回复；可用 `tuneforge score` 给回复打分"),
    "why_fast_token_loss": ("tuneforge's fast decoder runs inside the token loss of sft and pt",
                            "tuneforge 的快速解码器只在 sft 和 pt 的 token 损失中运行"),
})


def validate_dpo(cfg, user_set: set[str], for_training: bool) -> list[Msg]:
    a, p = cfg.preference, []
    loss = LOSSES[a.pref_loss]  # parse checked the name
    foreign: dict[tuple[str, ...], list[str]] = {}
    for key in sorted({k for lo in LOSSES.values() for k in lo.params} - set(loss.params)):
        if key in user_set:
            owners = tuple(lo.name for lo in LOSSES.values() if key in lo.params)
            foreign.setdefault(owners, []).append(key)
    for owners, keys in foreign.items():
        p.append(Msg("loss_option", keys=", ".join(keys), losses=" / ".join(owners), loss=loss.name))
    if a.pref_beta <= 0:
        p.append(Msg("gt0", key="pref_beta", got=a.pref_beta))
    if not 0 <= a.dpo_label_smoothing < 0.5:
        p.append(Msg("in_range", key="dpo_label_smoothing", range="[0, 0.5)", got=a.dpo_label_smoothing))
    if a.pref_ftx < 0:
        p.append(Msg("pref_ftx", got=a.pref_ftx))
    return p


def validate_kto(cfg, user_set: set[str], for_training: bool) -> list[Msg]:
    a, p = cfg.preference, []
    if a.pref_beta <= 0:
        p.append(Msg("gt0", key="pref_beta", got=a.pref_beta))
    if a.pref_ftx < 0:
        p.append(Msg("pref_ftx", got=a.pref_ftx))
    if a.kto_chosen_weight <= 0 or a.kto_rejected_weight <= 0:
        p.append(Msg("kto_weights", chosen=a.kto_chosen_weight, rejected=a.kto_rejected_weight))
    return p


def validate_ppo(cfg, user_set: set[str], for_training: bool) -> list[Msg]:
    a, p = cfg.ppo, []
    if for_training and not a.reward_model:
        p.append(Msg("ppo_needs_reward"))
    for key in ("ppo_epochs", "ppo_buffer_size", "ppo_kl_horizon"):
        if getattr(a, key) < 1:
            p.append(Msg("ge1", key=key, got=getattr(a, key)))
    for key in ("ppo_target", "ppo_kl_coef", "ppo_missing_eos_penalty"):  # ppo_target 0: a fixed coefficient
        if getattr(a, key) < 0:
            p.append(Msg("ge0", key=key, got=getattr(a, key)))
    if not 0 < a.ppo_cliprange < 1:
        p.append(Msg("in_range", key="ppo_cliprange", range="(0, 1)", got=a.ppo_cliprange))
    return p


TOKEN_LOSS_ONLY = {"shared_prefix": "why_shared_prefix_token_loss", "fast_path": "why_fast_token_loss",
                   "fp8": "why_fast_token_loss"}
ON_PAIRS = {"packing": "why_pairs_whole", **TOKEN_LOSS_ONLY}
DPO_KTO = ("pref_beta", "pref_ftx", "precompute_ref_log_probs")

register_stage(Stage("sft", "supervised fine-tuning on conversations (the replies are trained)", _recipe("sft")))
register_stage(Stage("pt", "continued pre-training on plain text (every token is trained; packed by default)",
                     _recipe("sft")))
register_stage(Stage("rm", "reward model: the LM and a value head, pairwise loss on chosen/rejected pairs",
                     _recipe("rm"), refuses={**ON_PAIRS, "sample_prompts": "why_rm_scores"}))
register_stage(Stage("dpo", "direct preference optimisation and its variants (pref_loss)", _recipe("dpo"),
                     options=(*DPO_KTO, "pref_loss", "simpo_gamma", "dpo_label_smoothing"), validate=validate_dpo,
                     refuses=ON_PAIRS))
register_stage(Stage("kto", "KTO on replies tagged desirable or undesirable", _recipe("dpo"),
                     options=(*DPO_KTO, "kto_chosen_weight", "kto_rejected_weight"), validate=validate_kto,
                     refuses=ON_PAIRS))
register_stage(Stage("ppo", "PPO against a reward model from --stage rm", _recipe("ppo"),
                     options=tuple(PpoArgs.__dataclass_fields__), validate=validate_ppo,
                     refuses={"packing": "why_rollouts_per_prompt", **TOKEN_LOSS_ONLY,
                              "torch_compile": "why_compile_rollouts", "group_by_length": "why_rollout_order"}))
