"""Cross-field checks on a resolved config. Returns every problem at once; nothing is loaded here."""

from __future__ import annotations

import re

from tuneforge.config.parse import Config

LORA_ONLY = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target", "lora_layers", "additional_target",
             "use_rslora", "use_dora", "loraplus_lr_ratio", "pissa_init", "pissa_iter")
FREEZE_ONLY = ("freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules")
PROMPT_METHODS = ("prefix", "ptuning", "ptuning_v2", "prompt")
PROMPT_ONLY = {"num_virtual_tokens": PROMPT_METHODS, "prefix_projection": ("prefix", "ptuning_v2"),
               "encoder_hidden_size": ("prefix", "ptuning", "ptuning_v2"), "prompt_tuning_init_text": ("prompt",)}
QUANT_BITS = (4, 8)


LAYER_SPEC_HELP = ("give a count N (the last N layers), -N (the first N layers), or indices and ranges such as "
                   "20-29 or 0,2,4-6")


def parse_layer_spec(spec: str | int, num_layers: int | None) -> list[int] | None:
    """`lora_layers` → sorted layer indices (None: every layer). With ``num_layers`` None only the syntax is checked."""
    text = str(spec).strip().replace(" ", "")
    if text in ("", "all"):
        return None
    if re.fullmatch(r"-?\d+", text):
        n = int(text)
        if n == 0:
            raise ValueError("0 layers would train nothing")
        if num_layers is None:
            return []
        if abs(n) > num_layers:
            raise ValueError(f"asks for {abs(n)} layers but the model has {num_layers} (0–{num_layers - 1})")
        return list(range(num_layers - n, num_layers)) if n > 0 else list(range(-n))
    out: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"cannot read {part!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"range {part!r} runs backwards")
        if num_layers is not None and hi >= num_layers:
            raise ValueError(f"layer {hi} does not exist: the model has {num_layers} layers (0–{num_layers - 1})")
        out.update(range(lo, hi + 1))
    return sorted(out)


def changed(cfg: Config) -> set[str]:
    """Keys the user set to a non-default value (a saved config.yaml sets every key, mostly to defaults)."""
    defaults = Config().to_flat()
    flat = cfg.to_flat()
    return {k for k in cfg.explicit if flat.get(k) != defaults.get(k)}


def validate(cfg: Config, for_training: bool = True) -> list[str]:
    m, d, ft, t = cfg.model, cfg.data, cfg.finetune, cfg.train
    p: list[str] = []
    user_set = changed(cfg)

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    need(bool(m.model_name_or_path), "model_name_or_path is required: a local model folder or an alias such as "
                                     "`smollm2-135m-instruct` (`tuneforge env` lists them)")
    if for_training:
        need(bool(t.output_dir), "output_dir is required: the folder the run writes to, e.g. saves/my-run")
        if t.do_train:
            need(bool(d.dataset), "dataset is required: a name from dataset_info.json or a built-in such as "
                                  "`identity` (comma list for several)")
        need(t.learning_rate > 0, f"learning_rate must be > 0, got {t.learning_rate}")
        need(t.max_steps > 0 or t.num_train_epochs > 0,
             f"num_train_epochs must be > 0 (got {t.num_train_epochs}) unless max_steps > 0")
        need(t.per_device_train_batch_size >= 1,
             f"per_device_train_batch_size must be ≥ 1, got {t.per_device_train_batch_size}")
        need(t.per_device_eval_batch_size >= 1,
             f"per_device_eval_batch_size must be ≥ 1, got {t.per_device_eval_batch_size}")
        need(t.gradient_accumulation_steps >= 1,
             f"gradient_accumulation_steps must be ≥ 1, got {t.gradient_accumulation_steps}")
        need(t.warmup_steps >= 0, f"warmup_steps must be ≥ 0, got {t.warmup_steps}")
        need(0 <= t.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
        need(t.max_grad_norm >= 0, f"max_grad_norm must be ≥ 0 (0 disables clipping), got {t.max_grad_norm}")
        need(t.weight_decay >= 0, f"weight_decay must be ≥ 0, got {t.weight_decay}")
        need(t.logging_steps >= 1, f"logging_steps must be ≥ 1, got {t.logging_steps}")
        need(t.save_steps >= 0, f"save_steps must be ≥ 0 (0 = no checkpoints), got {t.save_steps}")
        need(t.save_total_limit is None or t.save_total_limit >= 1,
             f"save_total_limit must be ≥ 1 or None, got {t.save_total_limit}")
        need(t.eval_steps is None or t.eval_steps >= 1, f"eval_steps must be ≥ 1, got {t.eval_steps}")
        need(not (t.bf16 and t.fp16), "bf16 and fp16 are both True: choose one (or neither for float32)")
        need(d.cutoff_len >= 8, f"cutoff_len must be ≥ 8 tokens, got {d.cutoff_len}")
        need(d.max_samples is None or d.max_samples >= 1, f"max_samples must be ≥ 1, got {d.max_samples}")
        need(d.val_size >= 0 and (d.val_size < 1 or float(d.val_size).is_integer()),
             f"val_size must be a fraction in [0, 1) or a whole number of rows, got {d.val_size}")
        need(not (d.train_on_prompt and d.mask_history),
             "train_on_prompt and mask_history contradict each other: choose one")
        if t.report_to == "tensorboard":
            try:
                import torch.utils.tensorboard  # noqa: F401
            except Exception:
                p.append("report_to=tensorboard needs the tensorboard package: pip install tensorboard "
                         "(or set report_to none)")
    # Method options.
    if ft.finetuning_type == "lora":
        need(ft.lora_rank >= 1, f"lora_rank must be ≥ 1, got {ft.lora_rank}")
        need(ft.lora_alpha is None or ft.lora_alpha > 0, f"lora_alpha must be > 0, got {ft.lora_alpha}")
        need(0 <= ft.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {ft.lora_dropout}")
        need(bool(ft.lora_target.strip()), "lora_target is empty: give module names (q_proj,v_proj) or `all`")
        if ft.lora_layers is not None:
            try:
                parse_layer_spec(ft.lora_layers, None)
            except ValueError as e:
                p.append(f"lora_layers={ft.lora_layers!r}: {e}; {LAYER_SPEC_HELP}")
        need(ft.loraplus_lr_ratio is None or ft.loraplus_lr_ratio > 0,
             f"loraplus_lr_ratio must be > 0, got {ft.loraplus_lr_ratio}")
        if ft.pissa_init and m.adapter_name_or_path:
            p.append("pissa_init initialises a new adapter; it cannot be combined with adapter_name_or_path")
    else:
        set_lora = [k for k in LORA_ONLY if k in user_set]
        if set_lora:
            p.append(f"{', '.join(set_lora)} only apply to finetuning_type lora, but finetuning_type is "
                     f"{ft.finetuning_type}: remove them or use --finetuning_type lora")
        if m.adapter_name_or_path and for_training:
            p.append(f"adapter_name_or_path continues a LoRA adapter, but finetuning_type is {ft.finetuning_type}: "
                     f"use --finetuning_type lora, or pass the trained model folder as model_name_or_path")
    problems_prompt_and_quant(cfg, p)
    problems_preference(cfg, p, for_training)
    if ft.finetuning_type != "freeze":
        set_freeze = [k for k in FREEZE_ONLY if k in user_set]
        if set_freeze:
            p.append(f"{', '.join(set_freeze)} only apply to finetuning_type freeze, but finetuning_type is "
                     f"{ft.finetuning_type}")
    else:
        need(ft.freeze_trainable_layers != 0, "freeze_trainable_layers must not be 0 (positive: last N layers, "
                                              "negative: first N layers)")
    return p


def problems_prompt_and_quant(cfg: Config, p: list[str]) -> None:
    m, ft = cfg.model, cfg.finetune
    method = ft.finetuning_type
    user_set = changed(cfg)
    for key, methods in PROMPT_ONLY.items():
        if key in user_set and method not in methods:
            p.append(f"{key} only applies to finetuning_type {' / '.join(methods)}, but finetuning_type is {method}: "
                     f"remove it or choose one of those methods")
    if method in PROMPT_METHODS:
        if ft.num_virtual_tokens <= 0:
            p.append(f"num_virtual_tokens (pre_seq_len) must be ≥ 1, got {ft.num_virtual_tokens}: it is the number "
                     f"of trainable virtual tokens, e.g. 20")
        if ft.encoder_hidden_size is not None and ft.encoder_hidden_size < 1:
            p.append(f"encoder_hidden_size must be ≥ 1 (or unset for the model's hidden size), got "
                     f"{ft.encoder_hidden_size}")
        projection = ft.prefix_projection if ft.prefix_projection is not None else method == "prefix"
        if "encoder_hidden_size" in user_set and method in ("prefix", "ptuning_v2") and not projection:
            p.append(f"encoder_hidden_size sizes the prefix_projection MLP, which is off for {method}: "
                     f"add --prefix_projection True or drop encoder_hidden_size")
    if m.quantization_bit is not None:
        if m.quantization_bit not in QUANT_BITS:
            p.append(f"quantization_bit must be 4 or 8 (bitsandbytes), got {m.quantization_bit}; "
                     f"leave it unset to load the model unquantized")
        if method in ("full", "freeze"):
            p.append(f"quantization_bit (QLoRA) trains an adapter on a frozen quantized base, but finetuning_type is "
                     f"{method}, which updates the base weights themselves and cannot update quantized weights: use "
                     f"--finetuning_type lora (or a prompt-based method), or drop quantization_bit")


PREFERENCE_STAGES = ("rm", "dpo", "kto", "ppo")
PPO_ONLY = ("reward_model", "ppo_epochs", "ppo_buffer_size", "ppo_target", "ppo_kl_horizon", "ppo_kl_coef",
            "ppo_score_norm", "ppo_whiten_rewards", "ppo_cliprange", "ppo_gamma", "ppo_lam", "ppo_vf_coef")
DPO_ONLY = ("pref_loss", "simpo_gamma", "dpo_label_smoothing")
KTO_ONLY = ("kto_chosen_weight", "kto_rejected_weight")


def problems_preference(cfg: Config, p: list[str], for_training: bool) -> None:
    """The rm/dpo/kto/ppo settings (the reward model's value head is checked on disk by preflight)."""
    ft, d, user_set = cfg.finetune, cfg.data, changed(cfg)
    stage = ft.stage
    for keys, stages in ((PPO_ONLY, ("ppo",)), (DPO_ONLY, ("dpo",)), (KTO_ONLY, ("kto",)),
                         (("pref_beta", "pref_ftx", "precompute_ref_log_probs"), ("dpo", "kto"))):
        wrong = [k for k in keys if k in user_set and stage not in stages]
        if wrong:
            p.append(f"{', '.join(wrong)} only apply to --stage {' / '.join(stages)}, but stage is {stage}: remove "
                     f"them or change the stage")
    if stage not in PREFERENCE_STAGES:
        return
    if stage == "ppo" and for_training and not ft.reward_model:
        p.append("--stage ppo needs a reward model: add --reward_model <output_dir of a --stage rm run> (train one "
                 "with --stage rm on a preference dataset such as format_pref)")
    if ft.pref_beta <= 0:
        p.append(f"pref_beta must be > 0, got {ft.pref_beta}")
    if not 0 <= ft.dpo_label_smoothing < 0.5:
        p.append(f"dpo_label_smoothing must be in [0, 0.5), got {ft.dpo_label_smoothing}")
    if "dpo_label_smoothing" in user_set and ft.pref_loss != "sigmoid":
        p.append(f"dpo_label_smoothing applies to pref_loss sigmoid only, but pref_loss is {ft.pref_loss}")
    if "simpo_gamma" in user_set and ft.pref_loss != "simpo":
        p.append(f"simpo_gamma applies to pref_loss simpo only, but pref_loss is {ft.pref_loss}")
    if ft.pref_ftx < 0:
        p.append(f"pref_ftx must be ≥ 0 (0 = no SFT loss mixed in), got {ft.pref_ftx}")
    if ft.kto_chosen_weight <= 0 or ft.kto_rejected_weight <= 0:
        p.append(f"kto_chosen_weight and kto_rejected_weight must be > 0, got {ft.kto_chosen_weight} and "
                 f"{ft.kto_rejected_weight}")
    for key in ("ppo_epochs", "ppo_buffer_size"):
        if getattr(ft, key) < 1:
            p.append(f"{key} must be ≥ 1, got {getattr(ft, key)}")
    if ft.ppo_kl_horizon < 1:
        p.append(f"ppo_kl_horizon must be ≥ 1 (rollouts), got {ft.ppo_kl_horizon}")
    if ft.ppo_target < 0 or ft.ppo_kl_coef < 0:
        p.append(f"ppo_target and ppo_kl_coef must be ≥ 0 (ppo_target 0 keeps the coefficient fixed), got "
                 f"{ft.ppo_target} and {ft.ppo_kl_coef}")
    if not 0 < ft.ppo_cliprange < 1:
        p.append(f"ppo_cliprange must be in (0, 1), got {ft.ppo_cliprange}")
    if d.packing or d.neat_packing:
        p.append(f"packing does not apply to --stage {stage} (each preference sample is scored as a whole "
                 f"sequence): drop packing/neat_packing")
