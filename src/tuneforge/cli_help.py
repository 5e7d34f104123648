"""``tuneforge <command> --help``: each command's own usage and the settings it takes, generated from the config
schema (the same field help the web UI shows), so a setting added to the schema is listed without editing this.
Torch-free and quick: help is printed without importing any model library."""

from __future__ import annotations

import textwrap
from dataclasses import MISSING, fields

WIDTH = 100
# The settings groups each inference command is about (the others are accepted as LLaMA-Factory's chat/export take
# them: config/lf_keys.py); `tuneforge train --help` lists every setting.
CHAT_GROUPS = ("model", "data", "generate")
EXPORT_GROUPS = ("model", "data", "export")


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def settings(groups: tuple[str, ...] | None = None, only: set[str] | None = None) -> list[str]:
    """``--key (default: …; one of …)`` and its wrapped help, for every field of ``groups`` (all when None),
    grouped under each group's one-line title; ``only`` keeps just those keys."""
    from tuneforge.config.schema import GROUPS, field_choices

    out = []
    for group, cls in GROUPS.items():
        if groups is not None and group not in groups:
            continue
        rows = [f for f in fields(cls) if only is None or f.name in only]
        if not rows:
            continue
        out.append(f"{group}: {(cls.__doc__ or group).strip().splitlines()[0]}")
        for f in rows:
            choices = field_choices(f)
            head = f"  --{f.name} (default: {_default(f)!r}" + (f"; one of {', '.join(choices)})" if choices else ")")
            out.append(head)
            out += textwrap.wrap(f.metadata.get("help", ""), WIDTH, initial_indent="      ",
                                 subsequent_indent="      ")
        out.append("")
    return out


def _extra(keys: dict[str, str]) -> list[str]:
    out = []
    for k, v in keys.items():
        out.append(f"  --{k}")
        out += textwrap.wrap(v, WIDTH, initial_indent="      ", subsequent_indent="      ")
    return out + [""]


def command_help(name: str) -> str | None:
    """The help of ``tuneforge <name>``; None for an unknown command."""
    from tuneforge import cli

    if name == "train":
        return cli.train_help()
    if name == "webui":
        return cli.webui_help()
    if name == "chat":
        return "\n".join([
            "usage: tuneforge chat [config.yaml] --model_name_or_path M [--adapter_name_or_path A[,B]]",
            "                      [--prompt TEXT | --prompts FILE] [--system TEXT] [--tools FILE] [generation settings]",
            "",
            "Talk to a model (and its adapters): interactive by default (type `clear` to start over, `exit` to",
            "leave); --prompt prints one reply; --prompts answers a file (one prompt per line, or JSONL rows with",
            "`messages`) as JSON lines. Decoding is greedy unless temperature/top_p/top_k is set.",
            "",
            "chat's own settings:", *_extra(cli.COMMANDS["chat"].extra), *settings(CHAT_GROUPS)])
    if name == "export":
        return "\n".join([
            "usage: tuneforge export [config.yaml] --model_name_or_path M --adapter_name_or_path A[,B]",
            "                        --export_dir D [--export_size GB] [--export_dtype bfloat16|float16|float32]",
            "",
            "Merge the adapter(s), in order, into the base (in float32) and write a standalone Hugging Face folder:",
            "safetensors shards, the tokenizer with the training chat template, generation_config.json, a model card",
            "and an Ollama Modelfile whose TEMPLATE renders the training prompt.",
            "", *settings(EXPORT_GROUPS)])
    if name == "estimate":
        keys = {"model_name_or_path", "finetuning_type", "quantization_bit", "per_device_train_batch_size",
                "cutoff_len", "packing", "gradient_checkpointing", "enable_activation_offloading", "optim",
                "bf16", "fp16", "enable_liger_kernel", "lora_rank", "lora_target", "num_virtual_tokens"}
        return "\n".join([
            "usage: tuneforge estimate [config.yaml] --model_name_or_path M|config.json [training settings]",
            "                          [--method qlora4] [--gpu h100] [--supervised_fraction 0.5]",
            "",
            "Predict the peak GPU memory of a training run from the model's config.json alone (no weights are",
            "read), with a breakdown and a verdict per GPU. Every `tuneforge train` setting is accepted; these",
            "change the estimate most:",
            "", "estimate's own settings:", *_extra(cli.COMMANDS["estimate"].extra), *settings(only=keys),
            "All other settings: `tuneforge train --help`."])
    if name == "score":
        return "\n".join([
            "usage: tuneforge score --model_name_or_path M --adapter_name_or_path RM_RUN --pairs FILE.jsonl",
            "                       [--template T] [--trust_remote_code True]",
            "",
            "Reward-model scores of (prompt, response) rows: each JSONL row has `prompt` and `response` (or",
            "`chosen`/`rejected`, each scored), or a `messages` list ending with the reply; one JSON line per",
            "scored reply is printed, with its `score`.",
            "", *settings(only={"model_name_or_path", "adapter_name_or_path", "template", "trust_remote_code"})])
    if name == "eval":
        return "\n".join([
            "usage: tuneforge eval --task sample_en|NAME [--task_dir DIR] [--model_name_or_path M]",
            "                      [--adapter_name_or_path A [--compare_base True]] [--n_shot 5] [--lang en|zh]",
            "",
            "Multiple-choice benchmarks in the MMLU / CMMLU / C-Eval layout: TASK_DIR/NAME/dev/<subject>_dev.csv",
            "(few-shot examples) and TASK_DIR/NAME/test/<subject>_test.csv (or .json/.jsonl). Each answer is the",
            "choice letter the model rates most likely as the first token of its reply; per-subject and overall",
            "accuracy are printed as a table (and written to --save_dir/results.json). Built-in tiny samples:",
            "sample_en, sample_zh (no download). --lang zh writes the prompts in Chinese (and the errors).",
            "", "eval's own settings:", *_extra(cli.COMMANDS["eval"].extra),
            *settings(only=set(cli.COMMANDS["eval"].keys))])
    if name == "env":
        return ("usage: tuneforge env\n\nVersions of tuneforge and its libraries, the device, the model cache, the "
                "model aliases,\nthe chat templates and the built-in datasets.\n")
    if name == "version":
        return "usage: tuneforge version   (also: tuneforge --version)\n\nThe installed tuneforge version.\n"
    return None
