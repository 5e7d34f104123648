"""Export: merge LoRA-family adapters, in order, into the base and write a standalone model folder. Reads top to
bottom; everything that can be checked is checked before weights load."""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.adapters import merge_adapters, merge_refusal, method_of_adapter, split_list
from tuneforge.config import Config
from tuneforge.config.messages import Msg
from tuneforge.data import templates
from tuneforge.errors import ConfigError
from tuneforge.models import load_model, load_tokenizer, resolve_model_path
from tuneforge.models.export import write_export
from tuneforge.recipes.preflight import preflight
from tuneforge.utils import log
from tuneforge.utils.hub import HubOptions


def check_export(cfg: Config) -> list[Msg]:
    e, adapters = cfg.export, split_list(cfg.model.adapter_name_or_path)
    p = []
    if not e.export_dir:
        p.append(Msg("export_dir_required"))
    if e.export_size <= 0:
        p.append(Msg("export_size_positive", got=e.export_size))
    for a in adapters:
        rec = method_of_adapter(a)
        if rec is not None and not rec.merges:
            msg, hint = merge_refusal(a, rec)
            p.append(Msg("export_prompt_adapter", message=msg, hint=hint))
    return p


def run(cfg: Config) -> Path:
    preflight(cfg, for_training=False)
    problems = check_export(cfg)
    if problems:
        raise ConfigError(problems)
    adapters = split_list(cfg.model.adapter_name_or_path)
    path = resolve_model_path(cfg.model.model_name_or_path, HubOptions.from_model_args(cfg.model))
    # The last adapter folder's tokenizer holds the chat template used in training.
    tok_src = next((a for a in reversed(adapters) if (Path(a) / "tokenizer_config.json").is_file()), None) or path
    tokenizer = load_tokenizer(tok_src, cfg.model.trust_remote_code)
    name = cfg.data.template
    if name == "auto":
        name = templates.identify(getattr(tokenizer, "chat_template", None)) or "auto"
    fmt = templates.install(tokenizer, name)
    if cfg.model.quantization_bit:
        log.choice("base loaded in float32 for the merge", f"quantization_bit={cfg.model.quantization_bit} is for "
                   f"training; merging into quantized weights would lose the adapter's precision")
    else:
        log.choice("base loaded in float32 for the merge", f"merged in full precision, then cast to "
                   f"{cfg.export.export_dtype}")
    model = load_model(path, torch.float32, "auto", cfg.model.trust_remote_code)
    if cfg.export.export_device == "auto" and torch.cuda.is_available():
        log.choice("merge on cuda", "export_device=auto and a CUDA device is present")
        model = model.to("cuda")
    model = merge_adapters(model, adapters)
    return write_export(model, tokenizer, fmt.stop, cfg.export.export_dir, cfg.export.export_size,
                        cfg.export.export_dtype)
