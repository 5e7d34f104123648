"""How the Train tab is laid out: the dozen settings most runs change first, with friendly labels in English and
中文; everything else in collapsed groups, each shown only while the chosen stage and method take one of its settings.

The groups are the schema's sections (model, quantization, data, each method's options, training arguments, the
preference and PPO options, …) plus one for speed and memory, so a setting added to the schema lands in its
section without touching this module; which stage and method a setting applies to comes from the method and stage
records (``config.registry``), as validation reads them.
"""

from __future__ import annotations

import re

# The settings most runs change, in the order a run is described: what, how, on which data, how long, where to.
MAIN = ("model_name_or_path", "stage", "finetuning_type", "dataset", "dataset_vars", "template", "learning_rate",
        "num_train_epochs", "max_steps", "per_device_train_batch_size", "cutoff_len", "output_dir")
MAIN_LABELS: dict[str, tuple[str, str]] = {
    "model_name_or_path": ("Base model", "底座模型"),
    "stage": ("Training stage", "训练阶段"),
    "finetuning_type": ("Method", "微调方法"),
    "dataset": ("Datasets", "数据集"),
    "dataset_vars": ("Dataset variables", "数据集变量"),
    "template": ("Chat template", "对话模板"),
    "learning_rate": ("Learning rate", "学习率"),
    "num_train_epochs": ("Epochs", "训练轮数"),
    "max_steps": ("Max steps (> 0 overrides epochs)", "最大步数（> 0 时取代轮数）"),
    "per_device_train_batch_size": ("Batch size per device", "每个设备的批大小"),
    "cutoff_len": ("Max length (tokens)", "最大长度（token）"),
    "output_dir": ("Output folder", "输出文件夹"),
}

# Settings that only change speed or memory, not what is learned: their own group (taken out of their sections).
SPEED = ("flash_attn", "enable_liger_kernel", "torch_compile", "gradient_checkpointing",
         "enable_activation_offloading", "offload_embedding", "fused_lora", "upcast_unquantized", "shared_prefix",
         "group_by_length", "packing", "neat_packing")
SPEED_SECTION = "speed"

# Words written the way the field shows them in English labels (the rest: first letter capitalised).
WORDS = {"lora": "LoRA", "dora": "DoRA", "rslora": "rsLoRA", "pissa": "PiSSA", "loraplus": "LoRA+", "ppo": "PPO",
         "dpo": "DPO", "kto": "KTO", "kl": "KL", "lr": "LR", "bf16": "bf16", "fp16": "fp16", "ftx": "SFT mix",
         "simpo": "SimPO", "id": "ID", "dir": "folder", "eos": "EOS", "fa2": "FA2", "oft": "OFT", "len": "length",
         "pref": "preference", "num": "number of", "vf": "value-function", "gae": "GAE"}
KEEP_CASE = {"bf16", "fp16", "rsLoRA"}  # words that stay as written at the start of a label


def humanize(name: str) -> str:
    """``lora_rank`` → ``LoRA rank``: an English label read from the setting's name."""
    parts = [p for p in re.split(r"_+", name) if p]
    words = [WORDS.get(p, p) for p in parts]
    if words and words[0] not in KEEP_CASE:
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def label(name: str, lang: str, zh: tuple[str, str] | None) -> str:
    """A field's label: the friendly name, then the setting name users type on the command line and in YAML."""
    if name in MAIN_LABELS:
        friendly = MAIN_LABELS[name][1 if lang == "zh" else 0]
    elif lang == "zh" and zh:
        friendly = zh[0]
    else:
        friendly = humanize(name)
    return friendly if friendly == name else f"{friendly} · {name}"


def section_of(spec) -> str:
    """The collapsed group a non-main setting goes to."""
    return SPEED_SECTION if spec.name in SPEED else spec.section


def layout(specs: list) -> tuple[list, dict[str, list]]:
    """(the main settings in MAIN order, {group: its settings in schema order}) — groups in the order shown."""
    by_name = {s.name: s for s in specs}
    main = [by_name[n] for n in MAIN if n in by_name]
    groups: dict[str, list] = {}
    for s in specs:
        if s.name not in MAIN:
            groups.setdefault(section_of(s), []).append(s)
    first = ("model", "quantization", "data", "finetune")
    methods = [k for k in groups if k.startswith("method:")]
    rest = [k for k in groups if k not in (*first, *methods, "train", SPEED_SECTION)]
    order = [k for k in (*first, *methods, *rest, "train", SPEED_SECTION) if k in groups]
    return main, {k: groups[k] for k in order}


def applies(spec, method: str, stage: str) -> bool:
    return (spec.methods is None or method in spec.methods) and (spec.stages is None or stage in spec.stages)


def group_visible(specs: list, method: str, stage: str) -> bool:
    """A group is shown while the chosen method and stage take at least one of its settings."""
    return any(applies(s, method, stage) for s in specs)
