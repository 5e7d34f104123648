"""Cross-field checks on a resolved config. Returns every problem at once; nothing is loaded here."""

from __future__ import annotations

import json
import math

import re

from tuneforge.config.messages import Msg
from tuneforge.config.parse import Config
from tuneforge.config.registry import METHODS, PREPARATION, STAGES, methods_taking, stages_taking

QUANT_BITS = (4, 8)


LAYER_SPEC_HELP = Msg("layer_spec_help")


def parse_layer_spec(spec: str | int, num_layers: int | None) -> list[int] | None:
    """`lora_layers` → sorted layer indices (None: every layer). With ``num_layers`` None only the syntax is checked."""
    text = str(spec).strip().replace(" ", "")
    if text in ("", "all"):
        return None
    if re.fullmatch(r"-?\d+", text):
        n = int(text)
        if n == 0:
            raise ValueError(Msg("layers_zero"))
        if num_layers is None:
            return []
        if abs(n) > num_layers:
            raise ValueError(Msg("layers_too_many", n=abs(n), num=num_layers, last=num_layers - 1))
        return list(range(num_layers - n, num_layers)) if n > 0 else list(range(-n))
    out: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(Msg("layers_unreadable", part=part))
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(Msg("layers_backwards", part=part))
        if num_layers is not None and hi >= num_layers:
            raise ValueError(Msg("layer_missing", layer=hi, num=num_layers, last=num_layers - 1))
        out.update(range(lo, hi + 1))
    return sorted(out)


def changed(cfg: Config) -> set[str]:
    """Keys the user set to a non-default value (a saved config.yaml sets every key, mostly to defaults)."""
    defaults = Config().to_flat()
    flat = cfg.to_flat()
    return {k for k in cfg.explicit if flat.get(k) != defaults.get(k)}


def prompt_list(text: str | None) -> list[str]:
    """``sample_prompts``: one question, or a JSON list of questions (what a YAML list becomes)."""
    if not text or not text.strip():
        return []
    if not text.lstrip().startswith("["):
        return [text.strip()]
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(Msg("prompts_bad_json", error=e.msg)) from None
    if not isinstance(items, list) or not all(isinstance(x, str) and x.strip() for x in items):
        raise ValueError(Msg("prompts_not_strings"))
    return [x.strip() for x in items]


def validate(cfg: Config, for_training: bool = True) -> list[Msg]:
    """Every problem of ``cfg``, each a catalogued :class:`Msg` (English as a ``str``; the web UI renders 中文): the
    general settings here, then the fine-tuning method's and the stage's from their records."""
    m, d, t = cfg.model, cfg.data, cfg.train
    p: list[Msg] = []

    def need(cond: bool, msg: Msg) -> None:
        if not cond:
            p.append(msg)

    need(bool(m.model_name_or_path), Msg("model_required"))
    for key, value in cfg.to_flat().items():  # set in code rather than parsed (parse refuses them already)
        if isinstance(value, float) and not math.isfinite(value):
            p.append(Msg("key_problem", key=key, problem=Msg("expect_finite", got=value)))
    need(0 <= t.seed < 2 ** 32, Msg("in_range", key="seed", range="[0, 2**32 - 1] (numpy's seed range)", got=t.seed))
    if for_training:
        need(bool(t.output_dir), Msg("output_dir_required"))
        if t.do_train:
            need(bool(d.dataset), Msg("dataset_required"))
        need(t.learning_rate > 0, Msg("gt0", key="learning_rate", got=t.learning_rate))
        need(t.max_steps > 0 or t.num_train_epochs > 0, Msg("epochs_positive", got=t.num_train_epochs))
        for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            need(getattr(t, key) >= 1, Msg("ge1", key=key, got=getattr(t, key)))
        need(t.warmup_steps >= 0, Msg("ge0", key="warmup_steps", got=t.warmup_steps))
        need(0 <= t.warmup_ratio < 1, Msg("in_range", key="warmup_ratio", range="[0, 1)", got=t.warmup_ratio))
        need(t.max_grad_norm >= 0, Msg("max_grad_norm", got=t.max_grad_norm))
        need(t.weight_decay >= 0, Msg("ge0", key="weight_decay", got=t.weight_decay))
        need(t.logging_steps >= 1, Msg("ge1", key="logging_steps", got=t.logging_steps))
        try:
            prompt_list(t.sample_prompts)
        except ValueError as e:
            p.append(Msg("prompts_json", error=e.args[0]))
        need(t.save_steps >= 0, Msg("save_steps", got=t.save_steps))
        need(t.save_total_limit is None or t.save_total_limit >= 1, Msg("save_total_limit", got=t.save_total_limit))
        need(t.nonfinite_patience >= 0, Msg("ge0", key="nonfinite_patience", got=t.nonfinite_patience))
        need(t.eval_steps is None or t.eval_steps >= 1, Msg("ge1", key="eval_steps", got=t.eval_steps))
        need(not (t.bf16 and t.fp16), Msg("bf16_and_fp16"))
        need(d.cutoff_len >= 8, Msg("cutoff_len", got=d.cutoff_len))
        need(d.max_samples is None or d.max_samples >= 1, Msg("ge1", key="max_samples", got=d.max_samples))
        need(0 <= t.forgetting_threshold <= 1, Msg("forgetting_threshold", got=t.forgetting_threshold))
        need(d.replay_ratio >= 0, Msg("replay_ratio", got=d.replay_ratio))
        need(not d.replay_ratio or cfg.finetune.stage == "sft", Msg("replay_stage", stage=cfg.finetune.stage))
        need(d.val_size >= 0 and (d.val_size < 1 or float(d.val_size).is_integer()), Msg("val_size", got=d.val_size))
        need(not (d.train_on_prompt and d.mask_history), Msg("prompt_vs_history"))
        if "tensorboard" in t.report_to.split(",") or "all" in t.report_to.split(","):
            try:
                import torch.utils.tensorboard  # noqa: F401
            except Exception:
                p.append(Msg("tensorboard_missing"))
    problems_method(cfg, p, for_training)
    problems_stage(cfg, p, for_training)
    return p


def problems_method(cfg: Config, p: list[Msg], for_training: bool) -> None:
    """The fine-tuning method's settings, from its record: options of other methods are refused (grouped by the
    methods they belong to), then the method's own checks."""
    m, name, user_set = cfg.model, cfg.finetune.finetuning_type, changed(cfg)
    rec = METHODS[name]  # parse checked the name
    foreign: dict[tuple[str, ...], list[str]] = {}
    # use_llama_pro counts its blocks with freeze_trainable_layers, with lora too (as LLaMA-Factory does)
    borrowed = {"freeze_trainable_layers"} if cfg.finetune.use_llama_pro else set()
    for key in sorted(user_set - set(rec.options) - borrowed, key=list(cfg.to_flat()).index):
        owners = methods_taking(key)
        if owners:
            foreign.setdefault(owners, []).append(key)
    for owners, keys in foreign.items():
        fix = f"--finetuning_type {owners[0]}" if len(owners) == 1 else Msg("one_of_those_methods")
        p.append(Msg("method_options" if len(keys) > 1 else "method_option", keys=", ".join(keys),
                     methods=" / ".join(owners), method=name, fix=fix))
    p += rec.validate(cfg, user_set)
    if m.adapter_name_or_path and for_training and not rec.continues:
        continuing = " / ".join(r.name for r in METHODS.values() if r.continues)
        p.append(Msg("adapter_cannot_continue", method=name, methods=continuing))
    if m.quantization_bit is not None:
        if m.quantization_bit not in QUANT_BITS:
            p.append(Msg("quantization_bits", got=m.quantization_bit))
        if rec.quantized_refusal:
            p.append(Msg(rec.quantized_refusal, method=name))


def problems_stage(cfg: Config, p: list[Msg], for_training: bool) -> None:
    """The stage's settings, from its record: options of other stages are refused, then the stage's own checks, then
    the model-preparation settings it cannot honour (each with the reason)."""
    name, user_set = cfg.finetune.stage, changed(cfg)
    st = STAGES[name]  # parse checked the name
    foreign: dict[tuple[str, ...], list[str]] = {}
    for key in sorted(user_set - set(st.options), key=list(cfg.to_flat()).index):
        owners = stages_taking(key)
        if owners:
            foreign.setdefault(owners, []).append(key)
    for owners, keys in foreign.items():
        p.append(Msg("stage_only", keys=", ".join(keys), stages=" / ".join(owners), stage=name))
    p += st.validate(cfg, user_set, for_training)
    for setting, why in st.refuses.items():
        if PREPARATION[setting](cfg):
            label = "packing/neat_packing" if setting == "packing" else setting
            p.append(Msg("stage_refuses", setting=label, stage=name, reason=Msg(why)))
