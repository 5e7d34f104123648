"""`tuneforge train cfg.yaml --dry_run`: every configuration, model, template and data problem at once, without
loading weights or writing anything.

Each key is parsed on its own (a bad value does not hide the others), the resolved config is validated and
preflight-checked, the tokenizer (only) is loaded to install the template, and every dataset is read, converted and
encoded with the run's cutoff_len and truncation — so row problems of every dataset, drops and truncations are
reported in the same round as the config problems."""

from __future__ import annotations

from typing import Any

from tuneforge.config import build_config
from tuneforge.config.messages import Msg
from tuneforge.config.parse import load_yaml, split_argv
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.utils import log


def take_dry_run_flag(argv: list[str]) -> tuple[list[str], bool]:
    """Remove ``--dry_run`` (bare, ``--dry_run True/False`` or ``--dry_run=…``) from argv; say whether it is on."""
    out, dry, i = [], False, 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("--dry_run", "--dry-run"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if nxt.lower() in ("true", "false", "1", "0", "yes", "no"):
                dry, i = nxt.lower() in ("true", "1", "yes"), i + 2
            else:
                dry, i = True, i + 1
            continue
        if tok.startswith(("--dry_run=", "--dry-run=")):
            dry = tok.split("=", 1)[1].lower() in ("true", "1", "yes")
            i += 1
            continue
        out.append(tok)
        i += 1
    return out, dry


def _problems_of(e: TuneforgeError) -> list[str]:
    if isinstance(e, ConfigError):
        return list(e.problems)
    return [Msg("with_hint", message=e.message, hint=e.hint) if e.hint else e.message]


def parse_all(argv: list[str]) -> tuple[Any, list[str]]:
    """The config from every key that parses, and the problems of the others."""
    path, values = split_argv(argv)
    if path is not None:
        values = {**load_yaml(path), **values}
    problems: list[str] = []
    good: dict[str, Any] = {}
    for key, value in values.items():
        try:
            build_config({key: value})
            good[key] = value
        except ConfigError as e:
            problems += e.problems
    return build_config(good), problems


def dry_run(argv: list[str]) -> int:
    from tuneforge.data import templates
    from tuneforge.data.build import encode_items, read_dataset
    from tuneforge.data.catalog import load_catalog, lookup, split_names
    from tuneforge.data.encode import EncodeStats
    from tuneforge.models import load_tokenizer, resolve_model_path
    from tuneforge.recipes.preflight import preflight
    from tuneforge.utils.hub import HubOptions

    cfg, problems = parse_all(argv)
    try:
        preflight(cfg)
    except TuneforgeError as e:
        problems += _problems_of(e)
    report: list[str] = []
    tokenizer = fmt = None
    hub = HubOptions.from_model_args(cfg.model)
    if cfg.model.model_name_or_path:
        try:
            path = resolve_model_path(cfg.model.model_name_or_path, hub)
            tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
            report.append(f"model: {cfg.model.model_name_or_path} ({path}); tokenizer loaded, weights not loaded")
            fmt = templates.install(tokenizer, cfg.data.template, cfg.data.enable_thinking)
            report.append(f"template: {fmt.name}")
        except TuneforgeError as e:
            problems += _problems_of(e)
    stage, d = cfg.finetune.stage, cfg.data
    try:
        catalog = load_catalog(d.dataset_dir)
    except TuneforgeError as e:
        problems += _problems_of(e)
        catalog = None
    for field_name in ("dataset", "eval_dataset"):
        for name in split_names(getattr(d, field_name)) if catalog is not None else []:
            entry = lookup(catalog, name, d.dataset_dir)
            if entry is None:
                continue  # preflight reported it with the known names
            try:
                items, counts = read_dataset(entry, d, stage, hub)
            except TuneforgeError as e:
                problems += _problems_of(e)
                continue
            line = f"{field_name} {name}: {counts['read']} rows read, {counts['used']} used"
            if tokenizer is not None and fmt is not None:
                stats = EncodeStats()
                try:
                    encode_items(items, stage, tokenizer, fmt, d, stats, cfg.generate.max_new_tokens)
                except TuneforgeError as e:
                    problems += _problems_of(e)
                    continue
                dropped = ", ".join(f"{n} × {r}" for r, n in stats.dropped.items()) or "none"
                line += (f"; {stats.samples} samples, {stats.trained_tokens} supervised tokens; truncated "
                         f"{stats.truncated} ({stats.truncated_tokens} tokens, truncation {'turns' if d.truncation == 'auto' else d.truncation}); "
                         f"dropped {dropped}")
            report.append(line)
    for line in report:
        log.info(f"dry run: {line}")
    if problems:
        raise ConfigError(problems)
    log.info("dry run: no problems found; nothing was trained or written")
    return 0
