"""Check everything that can be checked before any weights load, and report all problems together."""

from __future__ import annotations

from pathlib import Path

from tuneforge.adapters import check_adapter_dir, method, method_of_adapter, split_list
from tuneforge.config import Config, validate
from tuneforge.config.messages import Msg
from tuneforge.config.registry import STAGES
from tuneforge.data.catalog import check_datasets
from tuneforge.data.templates import check_template
from tuneforge.errors import ConfigError
from tuneforge.models import check_model
from tuneforge.models.quantization import check_bitsandbytes
from tuneforge.utils import log
from tuneforge.utils.hub import HubOptions


def preflight(cfg: Config, for_training: bool = True) -> None:
    problems = validate(cfg, for_training=for_training)
    if for_training:
        from tuneforge.train import distributed

        problems += distributed.problems(cfg)
    from tuneforge.recipes.lf_checks import lf_problems

    problems += lf_problems(cfg, for_training)
    for p in (check_model(cfg.model.model_name_or_path, HubOptions.from_model_args(cfg.model)),
              check_template(cfg.data.template)):
        if p:
            problems.append(p)
    paths = split_list(cfg.model.adapter_name_or_path)
    for path in paths:
        p = check_adapter_dir(path)
        if p:
            problems.append(p)
    rec, last = method(cfg.finetune.finetuning_type), paths[-1] if paths else None
    found = method_of_adapter(last) if last and for_training and rec.continues else None
    if found is not None and not set(found.peft_types) & set(rec.peft_types):  # training continues the last one
        problems.append(Msg("adapter_other_method", path=last, found=found.name, method=rec.name))
    if "reward_model" in STAGES[cfg.finetune.stage].options and cfg.ppo.reward_model:
        from tuneforge.train.value_head import check_value_head

        p = check_value_head(cfg.ppo.reward_model)
        if p:
            problems.append(p)
    if for_training and cfg.model.quantization_bit in (4, 8):
        p = check_bitsandbytes()
        if p:
            problems.append(p)
    if for_training:
        problems += [p for p in (check_folder_path("output_dir", cfg.train.output_dir),) if p]
        if cfg.train.forgetting_guard and cfg.train.forgetting_probes:
            from tuneforge.eval.probes import check as check_probes

            problems += [p for p in (check_probes(cfg.train.forgetting_probes),) if p]
        p = rec.preflight(cfg) if rec.preflight else None
        if p:
            problems.append(p)
    elif cfg.export.export_dir:
        problems += [p for p in (check_folder_path("export_dir", cfg.export.export_dir),) if p]
    if for_training and cfg.train.fp8:
        from tuneforge.fast.fp8 import fp8_problems

        problems += fp8_problems(cfg)
    if for_training and cfg.train.do_train:
        problems += check_datasets(cfg.data.dataset, cfg.data.dataset_dir)
        if cfg.data.eval_dataset:
            problems += check_datasets(cfg.data.eval_dataset, cfg.data.dataset_dir)
    if problems:
        raise ConfigError(problems)
    for key, reason in cfg.ignored.items():
        log.choice(f"ignored {key}", reason)


def check_folder_path(key: str, path: str | None) -> Msg | None:
    """A folder the run will create or write into, named where a file is (checked before anything is written)."""
    if not path:
        return None
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        return Msg("output_dir_is_file", key=key, path=path)
    for parent in p.parents:
        if parent.exists():
            return None if parent.is_dir() else Msg("output_dir_parent_is_file", key=key, path=path,
                                                    parent=str(parent))
    return None
