"""Preflight checks of the settings LLaMA-Factory configs bring (config/lf_keys.py decides the names; this checks
values that need more than the schema: schedule options, hub switches)."""

from __future__ import annotations

import importlib.util

from tuneforge.adapters import method
from tuneforge.config import Config
from tuneforge.train import schedules


def lf_problems(cfg: Config, for_training: bool = True) -> list[str]:
    t, m = cfg.train, cfg.model
    p: list[str] = []
    if for_training and (t.lr_scheduler_kwargs or t.lr_scheduler_type in schedules.KWARGS):
        p += schedules.check(t.lr_scheduler_type, t.lr_scheduler_kwargs)
    if for_training and cfg.data.truncation == "lf" and "truncation" not in cfg.explicit:
        from tuneforge.config.lf_keys import lf_style
        from tuneforge.utils import log

        log.choice("truncation=lf", f"{lf_style(cfg)}: long rows are cut in proportion (prompt and reply) as "
                   "LLaMA-Factory does; --truncation turns keeps whole turns instead")
    if for_training and ("wandb" in t.report_to.split(",") or "all" in t.report_to.split(",")) \
            and importlib.util.find_spec("wandb") is None:
        p.append("report_to wandb needs the wandb package: pip install wandb (or tuneforge[wandb]), or drop wandb "
                 "from report_to")
    low_rank = [k for k in ("use_galore", "use_apollo", "use_muon", "use_adam_mini") if getattr(t, k)]
    if len(low_rank) > 1:
        p.append(f"{' and '.join(low_rank)} are alternative optimizers: choose one")
    for k in ("use_galore", "use_apollo", "use_adam_mini"):
        if getattr(t, k) and k != "use_adam_mini" and method(cfg.finetune.finetuning_type).adapter:
            p.append(f"{k} projects the gradients of full weight matrices: use --finetuning_type full (or freeze), "
                     f"not {cfg.finetune.finetuning_type}")
        if getattr(t, k) and importlib.util.find_spec("pytorch_optimizer") is None:
            p.append(f"{k} needs the pytorch-optimizer package: pip install 'tuneforge[galore]' (or pip install "
                     "pytorch-optimizer)")
    if m.use_modelscope_hub and importlib.util.find_spec("modelscope") is None:
        p.append("use_modelscope_hub needs the modelscope package: pip install modelscope (or drop "
                 "use_modelscope_hub to use the Hugging Face hub)")
    return p
