"""English and Chinese text for every label and message of the web UI.

UI strings live in ``STRINGS`` (key → {en, zh}), registered into the one message catalogue of
``tuneforge.config.messages``; the UI's own errors are ``Msg`` objects with these ids. Messages produced by the
configuration checks (parse, validate, preflight) are ``Msg`` objects from that catalogue too, so ``tr(msg, lang)``
shows every problem in the page's language. Form labels and help come from the config schema: English is the
schema's own help; ``FIELD_ZH`` holds the Chinese label and help of every field of the core groups, and a group
registered by its owner (a method's options, ``config.schema.register_group``) carries its own (a test checks none
is missing).
The raw training log is shown as the CLI writes it (English); the status line above it is rendered here.
"""

from __future__ import annotations

from tuneforge.config.messages import CATALOG, Msg, register, tr  # noqa: F401  (tr: re-exported for the UI)
from tuneforge.config.schema import GROUP_INFO

LANGS = {"en": "English", "zh": "中文"}

STRINGS: dict[str, dict[str, str]] = {
    "title": {"en": "## tuneforge — fine-tune, chat, evaluate, export",
              "zh": "## tuneforge — 微调、对话、评估、导出"},
    "tab_train": {"en": "Train", "zh": "训练"},
    "tab_chat": {"en": "Chat", "zh": "对话"},
    "tab_eval": {"en": "Evaluate", "zh": "评估"},
    "tab_export": {"en": "Export", "zh": "导出"},
    "sec_model": {"en": "Model", "zh": "模型"},
    "sec_quantization": {"en": "Quantization (QLoRA)", "zh": "量化（QLoRA）"},
    "sec_data": {"en": "Data", "zh": "数据"},
    "sec_finetune": {"en": "Method", "zh": "微调方法"},
    "sec_preference": {"en": "Preference options (dpo, kto)", "zh": "偏好训练选项（dpo、kto）"},
    "sec_ppo": {"en": "PPO options", "zh": "PPO 选项"},
    "sec_train": {"en": "Training arguments", "zh": "训练参数"},
    "sec_generate": {"en": "Sampling", "zh": "采样设置"},
    "sec_export": {"en": "Export", "zh": "导出"},
    "btn_refresh_data": {"en": "Refresh lists", "zh": "刷新列表"},
    "btn_preview_data": {"en": "Preview data", "zh": "预览数据"},
    "args_file": {"en": "Arguments file (YAML)", "zh": "参数文件（YAML）"},
    "btn_save_args": {"en": "Save arguments", "zh": "保存参数"},
    "btn_load_args": {"en": "Load arguments", "zh": "载入参数"},
    "btn_preview_cmd": {"en": "Preview command", "zh": "预览命令"},
    "btn_start": {"en": "Start", "zh": "开始"},
    "btn_abort": {"en": "Abort", "zh": "中止"},
    "command": {"en": "Command that reproduces this run", "zh": "复现本次训练的命令"},
    "log": {"en": "Log", "zh": "日志"},
    "log_empty": {"en": "(no run yet)", "zh": "（尚未运行）"},
    "sec_speed": {"en": "Speed and memory", "zh": "速度与显存"},
    "more_settings": {"en": "More settings — each group applies to the chosen stage and method",
                      "zh": "更多设置——每组只在适用于所选阶段和方法时显示"},
    "chat_model": {"en": "Base model", "zh": "基座模型"},
    "chat_adapters": {"en": "Adapters", "zh": "适配器"},
    "chat_template": {"en": "Chat template", "zh": "对话模板"},
    "btn_refresh_adapters": {"en": "Refresh", "zh": "刷新"},
    "btn_refresh_export": {"en": "Refresh", "zh": "刷新"},
    "chat_system": {"en": "System prompt", "zh": "系统提示词"},
    "side_by_side": {"en": "Side by side with the base model", "zh": "与基座模型并排对比"},
    "btn_load_model": {"en": "Load model", "zh": "加载模型"},
    "chat_tuned": {"en": "Tuned model (base + adapters)", "zh": "微调后模型（基座 + 适配器）"},
    "chat_base": {"en": "Base model", "zh": "基座模型"},
    "chat_input": {"en": "Message", "zh": "消息"},
    "btn_send": {"en": "Send", "zh": "发送"},
    "btn_clear": {"en": "Clear", "zh": "清空"},
    "eval_hint": {"en": "Ask the base and the tuned model (loaded in the Chat tab) the same questions.",
                  "zh": "用同样的问题分别询问基座模型和微调后模型（在“对话”页加载）。"},
    "eval_questions": {"en": "Questions (one per line)", "zh": "问题（每行一个）"},
    "eval_file": {"en": "…or a questions file (text or JSONL, inside the working folder)",
                  "zh": "……或问题文件（文本或 JSONL，须在工作目录内）"},
    "eval_name": {"en": "Expected name (identity hit rate; default: dataset_vars name)",
                  "zh": "期望的名字（身份命中率；默认取 dataset_vars 中的 name）"},
    "btn_eval": {"en": "Run evaluation", "zh": "运行评估"},
    "export_hint": {"en": "Merge LoRA adapters into the base model and write a standalone folder "
                          "(runs `tuneforge export`).",
                    "zh": "将 LoRA 适配器合并进基座模型并写出独立的模型目录（调用 `tuneforge export`）。"},
    "export_model": {"en": "Base model", "zh": "基座模型"},
    "export_adapters": {"en": "Adapters to merge (in order)", "zh": "要合并的适配器（按顺序）"},
    "btn_export": {"en": "Export", "zh": "导出"},
    "export_log": {"en": "Export output", "zh": "导出输出"},
    "msg_command_ok": {"en": "The configuration is valid. Run the command from the working folder to reproduce it.",
                       "zh": "配置有效。在工作目录中运行该命令即可复现。"},
    "msg_saved": {"en": "Arguments saved to {path}", "zh": "参数已保存到 {path}"},
    "msg_loaded": {"en": "Arguments loaded from {path}", "zh": "已从 {path} 载入参数"},
    "msg_started": {"en": "Training started (pid {pid}) into {out}", "zh": "训练已开始（进程 {pid}），输出到 {out}"},
    "msg_aborted": {"en": "Aborted. Last complete checkpoint: {ckpt} (Start again to resume from it).",
                    "zh": "已中止。最后一个完整检查点：{ckpt}（再次点击“开始”即可从它继续）。"},
    "msg_no_job": {"en": "No training job is running.", "zh": "没有正在运行的训练任务。"},
    "none": {"en": "none", "zh": "无"},
    "msg_need_model": {"en": "choose a model first", "zh": "请先选择模型"},
    "msg_need_dataset": {"en": "choose at least one dataset", "zh": "请至少选择一个数据集"},
    "preview_head": {"en": "First rows rendered with template {template}; supervised tokens are highlighted.",
                     "zh": "前几行数据按模板 {template} 渲染；高亮部分为参与训练（监督）的 token。"},
    "preview_counts": {"en": "{tokens} tokens · {supervised} supervised", "zh": "{tokens} 个 token · {supervised} 个监督"},
    "col_question": {"en": "Question", "zh": "问题"},
    "col_base": {"en": "Base model", "zh": "基座模型"},
    "col_tuned": {"en": "Tuned model", "zh": "微调后模型"},
    "col_hit": {"en": "Name hit", "zh": "命中名字"},
    "msg_model_loaded": {"en": "Loaded {model} with adapters: {adapters}", "zh": "已加载 {model}，适配器：{adapters}"},
    "msg_load_first": {"en": "No model loaded", "zh": "尚未加载模型"},
    "msg_load_first_hint": {"en": "choose a model (and adapters) in the Chat tab and press Load model",
                            "zh": "请在“对话”页选择模型（及适配器）并点击“加载模型”"},
    "msg_reload_for_base": {"en": "Side by side needs the base model too: press Load model again",
                            "zh": "并排对比还需要加载基座模型：请再次点击“加载模型”"},
    "msg_replied": {"en": "Replied in {seconds} s", "zh": "已回复，用时 {seconds} 秒"},
    "msg_no_questions": {"en": "No questions: type some (one per line) or give a file",
                         "zh": "没有问题：请输入问题（每行一个）或指定文件"},
    "msg_hit_rate": {"en": "Identity hit rate for “{name}”: {hits}/{n} ({rate}) tuned; base: {base_hits}/{n}",
                     "zh": "“{name}”的身份命中率：微调后 {hits}/{n}（{rate}）；基座 {base_hits}/{n}"},
    "msg_eval_done": {"en": "Answered {n} questions", "zh": "已回答 {n} 个问题"},
    "msg_export_need_adapter": {"en": "Choose at least one adapter to merge", "zh": "请至少选择一个要合并的适配器"},
    "msg_export_ok": {"en": "Export finished.", "zh": "导出完成。"},
    "msg_export_failed": {"en": "Export failed (exit code {rc}); see the output above.",
                          "zh": "导出失败（退出码 {rc}），请查看上方输出。"},
    "state_idle": {"en": "No job", "zh": "无任务"},
    "state_running": {"en": "Running", "zh": "训练中"},
    "state_finished": {"en": "Finished", "zh": "已完成"},
    "state_failed": {"en": "Failed (see the log)", "zh": "失败（见日志）"},
    "state_aborted": {"en": "Aborted", "zh": "已中止"},
    "progress_steps": {"en": "step {step}/{total}", "zh": "第 {step}/{total} 步"},
    "progress_speed": {"en": "{tps} tokens/s", "zh": "{tps} token/秒"},
    "progress_eta": {"en": "ETA {eta}", "zh": "预计剩余 {eta}"},
    "progress_ckpt": {"en": "last checkpoint {name}", "zh": "最新检查点 {name}"},
    "loss_title": {"en": "training loss", "zh": "训练损失"},
    "loss_empty": {"en": "The loss curve appears after the first logged step.", "zh": "记录第一步后将显示损失曲线。"},
    "eval_loss": {"en": "evaluation loss", "zh": "验证损失"},
    "step": {"en": "step", "zh": "步"},
    "eta_format": {"en": "{m}m{s:02d}s", "zh": "{m} 分 {s:02d} 秒"},
    "eta_unknown": {"en": "?", "zh": "未知"},
    # errors the UI itself raises (webui/paths.py, runner.py, actions.py)
    "what_path": {"en": "path", "zh": "路径"},
    "what_dataset_file": {"en": "the file_name of dataset {name!r} in dataset_info.json",
                          "zh": "dataset_info.json 中数据集 {name!r} 的 file_name"},
    "what_args_file": {"en": "arguments file", "zh": "参数文件"},
    "what_questions_file": {"en": "questions file", "zh": "问题文件"},
    "what_model": {"en": "model", "zh": "模型"},
    "what_adapter": {"en": "adapter", "zh": "适配器"},
    "msg_path_empty": {"en": "{what} is empty", "zh": "{what}为空"},
    "msg_path_empty_fix": {"en": "give a path inside {root}", "zh": "请填写 {root} 内的路径"},
    "msg_path_nul": {"en": "{what} {path!r} contains a NUL byte", "zh": "{what} {path!r} 含有 NUL 字节"},
    "msg_path_nul_fix": {"en": "type a plain path", "zh": "请输入普通路径"},
    "msg_path_outside": {"en": "{what} {path!r} is outside the working folder {root}",
                         "zh": "{what} {path!r} 位于工作目录 {root} 之外"},
    "msg_path_outside_fix": {"en": "use a path inside {root} (e.g. saves/my-run), or restart with "
                                   "`tuneforge webui --root <folder>`",
                             "zh": "请使用 {root} 内的路径（如 saves/my-run），或用 `tuneforge webui --root <目录>` "
                                   "重新启动"},
    "msg_job_running": {"en": "a training job (pid {pid}) is already writing to {out}",
                        "zh": "已有训练任务（进程 {pid}）正在写入 {out}"},
    "msg_job_running_fix": {"en": "wait for it to finish, abort it, or choose another output_dir",
                            "zh": "请等待它结束、中止它，或换一个 output_dir"},
    "msg_run_finished_exists": {"en": "{out} already holds a finished run", "zh": "{out} 中已有一次完成的训练"},
    "msg_run_finished_exists_fix": {"en": "tick overwrite_output_dir to train again there, or choose another "
                                          "output_dir",
                                    "zh": "勾选 overwrite_output_dir 以在此重新训练，或换一个 output_dir"},
    "msg_preview_unknown_dataset": {"en": "unknown dataset {name!r}; known: {known}",
                                    "zh": "未知的数据集 {name!r}；已知：{known}"},
    "msg_questions_missing": {"en": "questions file {path!r}: no such file", "zh": "问题文件 {path!r}：文件不存在"},
    "msg_questions_missing_fix": {"en": "one question per line", "zh": "每行一个问题"},
    "msg_questions_bad_json": {"en": "{file}: invalid JSON on line {line}: {error}",
                               "zh": "{file}：第 {line} 行不是合法的 JSON：{error}"},
    "msg_questions_bad_json_fix": {"en": "fix the line", "zh": "请修正该行"},
    "msg_questions_no_question": {"en": "{file}:{line}: no question in this row",
                                  "zh": "{file}:{line}：这一行没有问题"},
    "msg_questions_no_question_fix": {"en": 'use {{"question": "…"}} or {{"messages": [{{"role": "user", '
                                            '"content": "…"}}]}}',
                                      "zh": '请使用 {{"question": "…"}} 或 {{"messages": [{{"role": "user", '
                                            '"content": "…"}}]}}'},
    "msg_generation_failed": {"en": "generation failed: {error}", "zh": "生成失败：{error}"},
}
register(STRINGS)

# Chinese label and help for every config field shown in the UI (English comes from the schema itself).
FIELD_ZH: dict[str, tuple[str, str]] = {
    # model
    "model_name_or_path": ("模型", "本地 Hugging Face 模型目录，或别名如 smollm2-135m-instruct（内置模型）。"),
    "adapter_name_or_path": ("继续训练的适配器", "起始适配器目录，可多个（逗号分隔）；训练时最后一个继续训练，其余合并进基座。"),
    "trust_remote_code": ("信任远程代码", "允许运行模型目录中附带的代码。默认关闭。"),
    "flash_attn": ("注意力实现", "注意力实现方式：auto 选择 sdpa，并在 CUDA 上对打包的行使用 PyTorch 的变长 FlashAttention（varlen）。"),
    "enable_liger_kernel": ("Liger 内核", "Liger-Kernel 融合算子（CUDA）。默认：已安装且支持该架构时开启。"),
    "quantization_bit": ("量化位数", "以 4 或 8 位量化加载冻结的基座权重（QLoRA，需要 bitsandbytes）。"),
    "quantization_method": ("量化后端", "量化后端：bnb（bitsandbytes）。"),
    "quantization_type": ("4 位数据类型", "4 位数据类型：nf4 或 fp4。"),
    "double_quantization": ("双重量化", "4 位时对量化常数再量化（每参数约省 0.4 位）。"),
    # data
    "dataset": ("数据集", "dataset_info.json 或内置数据集中的名称，可多选。"),
    "dataset_dir": ("数据目录", "存放 dataset_info.json 和数据文件的目录。内置数据集（identity、general 等）即使目录不存在也可用。"),
    "eval_dataset": ("验证数据集", "仅用于评估的数据集名称，逗号分隔。"),
    "template": ("对话模板", "auto 使用分词器自带模板；或指定命名模板（qwen、chatml、llama3 等）。"),
    "cutoff_len": ("截断长度", "每个样本的最大 token 数；超长样本会被截断并计数。"),
    "max_samples": ("最大样本数", "每个数据集最多读取的行数。"),
    "val_size": ("验证集大小", "留出用于评估的比例（0–1）或行数（≥1）。"),
    "train_on_prompt": ("在提示上训练", "对提示部分（system、user、tool）也计算损失。"),
    "mask_history": ("遮盖历史", "只训练每段对话最后一轮助手回复。"),
    "dataset_vars": ("数据变量", "数据中 {{占位符}} 的取值，例如 name=Nimbus,author=Orchard Labs（身份数据集的名字与作者）。"),
    "default_system": ("默认系统提示词", "没有系统提示的样本所用的系统提示（覆盖模板默认值）。"),
    "mix_strategy": ("混合策略", "多个数据集的组合方式。"),
    "packing": ("序列打包", "把多个样本打包进 cutoff_len 长的一行，无填充且样本间互不注意。默认：pt 开启，sft 关闭。"),
    "neat_packing": ("整洁打包", "样本间无注意力的打包（隐含开启 packing）。"),
    # LLaMA-Factory settings (config/lf_keys.py)
    "model_revision": ("模型版本", "model_name_or_path 为模型仓库名时所用的分支、标签或提交。"),
    "cache_dir": ("缓存目录", "仓库模型和数据集的下载缓存目录（默认：Hugging Face 缓存，HF_HOME）。"),
    "hf_hub_token": ("Hugging Face 令牌", "访问需授权或私有的模型和数据集所用的令牌（默认：已登录的令牌，HF_TOKEN）。"),
    "use_modelscope_hub": ("使用 ModelScope", "在 ModelScope 上解析仓库名（需要 pip install modelscope）；与 LLaMA-Factory 的 USE_MODELSCOPE_HUB=1 相同。"),
    "ms_hub_token": ("ModelScope 令牌", "ModelScope 的访问令牌（配合 use_modelscope_hub）。"),
    "infer_backend": ("推理后端", "对话/评估的生成引擎：huggingface（transformers 的 generate）。"),
    "infer_dtype": ("推理精度", "对话时权重的数据类型；auto 表示支持的 CUDA GPU 上用 bfloat16，否则 float32。"),
    "truncation": ("长样本截断", "超过 cutoff_len 的样本：turns 保留完整轮次（提示本身过长的样本会被丢弃并计数）；lf 像 LLaMA-Factory 一样按比例截断提示和回复，不丢弃样本。auto：配置设置了 do_train（LLaMA-Factory 风格）时用 lf，否则用 turns。"),
    "enable_thinking": ("启用思考", "推理模板（qwen3、deepseekr1 等）：false 表示关闭思考来渲染回复，与 *_nothink 模板相同。"),
    "pure_bf16": ("纯 bfloat16", "纯 bfloat16 训练：所有权重、可训练权重和优化器状态都为 bfloat16，没有 float32 主权重，也不使用 autocast（LLaMA-Factory 的 pure_bf16）。"),
    "use_muon": ("Muon 优化器", "隐藏层的二维权重矩阵用 Muon（torch.optim.Muon，更新按 AdamW 的 RMS 缩放）优化，其余参数用 AdamW，与 LLaMA-Factory 的 use_muon 相同。"),
    "use_adam_mini": ("Adam-mini", "Adam-mini：每个参数块只保存一个二阶矩值，而不是每个参数一个（pytorch-optimizer 的 AdamMini）。"),
    "use_galore": ("GaLore", "full/freeze：GaLore——对目标权重矩阵的梯度做低秩投影（pytorch-optimizer 的 GaLore；pip install 'tuneforge[galore]'）。"),
    "galore_target": ("GaLore 目标模块", "GaLore：做投影的权重矩阵所在模块（逗号分隔）或 `all`。"),
    "galore_rank": ("GaLore 秩", "GaLore：梯度投影的秩。"),
    "galore_update_interval": ("GaLore 更新间隔", "GaLore：重新计算投影的间隔步数。"),
    "galore_scale": ("GaLore 缩放", "GaLore：投影后更新的缩放系数。"),
    "galore_proj_type": ("GaLore 投影类型", "GaLore：投影类型。"),
    "use_apollo": ("APOLLO", "full/freeze：APOLLO——通过随机低秩投影以接近 SGD 的显存获得 AdamW 级别的更新（pytorch-optimizer 的 APOLLO）。"),
    "apollo_target": ("APOLLO 目标模块", "APOLLO：做投影的权重矩阵所在模块（逗号分隔）或 `all`。"),
    "apollo_rank": ("APOLLO 秩", "APOLLO：投影的秩。"),
    "apollo_update_interval": ("APOLLO 更新间隔", "APOLLO：生成新随机投影的间隔步数。"),
    "apollo_scale": ("APOLLO 缩放", "APOLLO：更新的缩放系数。"),
    "apollo_proj_type": ("APOLLO 投影类型", "APOLLO：投影类型。"),
    "apollo_scale_type": ("APOLLO 缩放方式", "APOLLO：按通道或按张量缩放。"),
    "use_llama_pro": ("LLaMA Pro", "freeze/lora：只训练 freeze_trainable_layers 个等长块中每块的最后一层（块扩展插入的层），与 LLaMA-Factory 相同。"),
    "save_only_model": ("检查点只存模型", "检查点只保存可训练权重，不含优化器状态和学习率调度：更小，但无法从中恢复训练。"),
    "disable_gradient_checkpointing": ("禁用梯度检查点", "强制关闭梯度检查点（LLaMA-Factory 的名称；LLaMA-Factory 默认开启，tuneforge 仅在 gradient_checkpointing 为 true 时开启）。"),
    "lr_scheduler_kwargs": ("学习率调度参数", "lr_scheduler_type 的选项，例如 num_cycles=2（cosine_with_restarts）、power=2,lr_end=1e-7（polynomial）、min_lr_rate=0.1（cosine_with_min_lr）、num_decay_steps=100（warmup_stable_decay）。"),
    "num_beams": ("束搜索宽度", "束搜索的束数（1 表示不使用束搜索）。"),
    "length_penalty": ("长度惩罚", "束搜索：得分按长度归一化的指数。"),
    "max_length": ("最大总长度", "提示加回复的最大 token 数（max_new_tokens 仍然生效）。"),
    "skip_special_tokens": ("跳过特殊 token", "解码回复时去掉特殊 token。"),
    "export_device": ("合并设备", "导出：合并在哪里进行：cpu，或 auto（有 CUDA GPU 时用 GPU）。"),
    "export_legacy_format": ("旧格式导出", "导出：必须为 false；权重以 safetensors 格式写出。"),
    # finetune
    "stage": ("训练阶段", "sft（有监督微调）、pt（继续预训练）、rm（奖励模型）、dpo（直接偏好优化及其变体，见 pref_loss）、kto，或 ppo（基于奖励模型的强化学习）。"),
    "finetuning_type": ("微调方法", "训练什么（`tuneforge train --help` 列出全部方法）。每种方法的选项自成一组；其他方法的选项会被拒绝。"),
    "additional_target": ("额外全量训练模块", "适配器方法（lora、oft）：完整训练并随适配器保存的模块（如 embed_tokens,lm_head）。"),
    # train
    "output_dir": ("输出目录", "运行目录：适配器/模型、检查点、指标、曲线图与摘要都写在这里。"),
    "overwrite_output_dir": ("覆盖输出目录", "即使输出目录已有检查点或已完成的训练，也从头开始。"),
    "do_train": ("执行训练", "是否训练（False 只校验配置并准备数据）。"),
    "learning_rate": ("学习率", "峰值学习率。"),
    "num_train_epochs": ("训练轮数", "训练的轮数（可为小数）。"),
    "max_steps": ("最大步数", "大于 0 时为优化总步数，覆盖训练轮数。"),
    "per_device_train_batch_size": ("批大小", "每个设备每个微批次的样本数。"),
    "per_device_eval_batch_size": ("评估批大小", "每个设备每个评估批次的样本数。"),
    "gradient_accumulation_steps": ("梯度累积步数", "每次优化步的微批次数；损失按累积的全部监督 token 平均。"),
    "lr_scheduler_type": ("学习率调度", "学习率调度方式。"),
    "warmup_steps": ("预热步数", "线性预热步数（>0 时覆盖 warmup_ratio）。"),
    "warmup_ratio": ("预热比例", "预热占总步数的比例。"),
    "max_grad_norm": ("梯度裁剪", "把梯度全局范数裁剪到该值（0 表示不裁剪）。"),
    "weight_decay": ("权重衰减", "AdamW 权重衰减。"),
    "adam_beta1": ("Adam beta1", "AdamW beta1。"),
    "adam_beta2": ("Adam beta2", "AdamW beta2。"),
    "adam_epsilon": ("Adam epsilon", "AdamW epsilon。"),
    "optim": ("优化器", "优化器。"),
    "seed": ("随机种子", "数据顺序、dropout 与适配器初始化的随机种子。"),
    "logging_steps": ("日志间隔", "每 N 个优化步记录一次损失、学习率、梯度范数和速度。"),
    "save_steps": ("保存间隔", "每 N 个优化步写一个可恢复的检查点（0 表示从不）。"),
    "save_total_limit": ("检查点上限", "最多保留的检查点数（先删最旧的）。"),
    "nonfinite_patience": ("NaN/Inf 容忍步数", "连续这么多个优化步的损失或梯度范数为 NaN/Inf 时停止训练（每个这样的步都被跳过，不更新权重；0 = 只跳过、不停止）。非有限的权重永远不会被保存。"),
    "eval_steps": ("评估间隔", "每 N 步在验证集上评估（默认等于 logging_steps）。"),
    "bf16": ("bf16", "以 bfloat16 混合精度训练。默认（不设）：GPU 支持 bfloat16 时自动开启（会记录原因）；False = 在这类 GPU 上用 float32。"),
    "fp16": ("fp16", "以 float16 混合精度训练（仅 CUDA）。默认（不设）：GPU 不支持 bfloat16 时自动开启（会记录原因）；False = 用 float32。"),
    "gradient_checkpointing": ("梯度检查点", "反向传播时重算激活以节省显存。"),
    "enable_activation_offloading": ("激活卸载", "把反向传播所需的张量移到固定 CPU 内存，需要时再取回。仅 CUDA。"),
    "group_by_length": ("按长度分组", "把长度相近的样本放进同一批以减少填充；批次顺序仍随机。"),
    "shared_prefix": ("共享前缀", "未打包的批次中所有行共有的前缀（如系统提示）每批只计算一次；结果与逐行计算完全一致。默认：支持时开启（每层全注意力、未开启梯度检查点）。"),
    "torch_compile": ("torch.compile", "用 torch.compile 编译每个解码层（CUDA）。"),
    "fast_path": ("快速路径", "tuneforge 自己的 LoRA/QLoRA 前向与反向（Llama、Mistral、Qwen2）：更少的内核、原地梯度，结果一致。"
                  "默认：在适用处开启（单进程、未用 torch_compile、无 dropout/DoRA 的普通 LoRA）。"),
    "fp8": ("FP8 基座", "LoRA：冻结的基座权重以 FP8（e4m3，按行缩放）保存并在 FP8 张量核上计算，适配器保持 bf16。"
            "需要计算能力 8.9 以上的 CUDA GPU（Hopper、Ada）。"),
    "report_to": ("记录到", "额外记录到：none 或 tensorboard。"),
    "resume_from_checkpoint": ("从检查点恢复", "要恢复的检查点目录。不填则使用输出目录中最新的检查点。"),
    "plot_loss": ("绘制损失曲线", "结束时写出 training_loss.png（原始与平滑）。"),
    "sample_prompts": ("训练后提问", "训练结束时由微调后的模型（贪心解码，在训练进程内）回答的问题：一个问题，或问题的 JSON 列表。回答会打印并保存到 run_summary.json。"),
    "ddp_timeout": ("DDP 超时", "一个进程等待其他进程的秒数（超时的集合通信会让运行报错结束，而不是一直挂起）。"),
    "nproc_per_node": ("GPU 数量（每台机器的进程数）", "在本机启动的进程数（每个 GPU 一个），通过 torch 的弹性启动器。默认一个进程；在 torchrun 或 accelerate launch 下无需设置。"),
    "nnodes": ("机器数", "参与训练的机器数（每台运行同一命令，各自的 node_rank）。"),
    "node_rank": ("本机序号", "本机在 nnodes 台机器中的序号（0 = master_addr 所在的机器）。"),
    "master_addr": ("主节点地址", "node_rank 0 机器的地址（多台机器时；默认 127.0.0.1）。"),
    "master_port": ("主节点端口", "master_addr 机器上的空闲 TCP 端口（多台机器默认 29500，单机时自动选空闲端口）。"),
    "fsdp": ("FSDP 分片", "用 FSDP2（torch fully_shard，经 Accelerate）切分模型：full_shard（参数、梯度和优化器状态）、shard_grad_op（前向到反向之间保留完整参数）、offload（放在 CPU 内存）；接受 auto_wrap（每个解码层总是单独一个分片单元）。"),
    "fsdp_config": ("FSDP 选项", "FSDP2 选项：YAML 中的映射、JSON 文本或 .json/.yaml 文件：activation_checkpointing、reshard_after_forward、offload_params、cpu_ram_efficient_loading、transformer_layer_cls_to_wrap、fsdp_version（2）。"),
    "deepspeed": ("DeepSpeed 配置", "DeepSpeed 配置（.json 文件，如 examples/deepspeed/ds_z3_config.json，或映射）：ZeRO 0-3，可选 CPU 卸载。auto 值由本配置填写（批大小、累积、裁剪、精度）。需要 CUDA GPU 和 pip install deepspeed。"),
    "ddp_backend": ("进程组后端", "进程组后端：nccl（CUDA 默认）或 gloo（CPU 默认）。"),
    # fields other branches add (issue 4: preference/RLHF stages; issue 6: GPU memory savers). Harmless until then.
    "pref_loss": ("偏好损失", "dpo：偏好损失 sigmoid（DPO）、ipo、hinge、orpo 或 simpo（后两者不需要参考模型）。"),
    "pref_beta": ("偏好 beta", "dpo/kto：beta，向参考模型靠拢的强度（orpo：几率比项权重；simpo：奖励缩放）。"),
    "simpo_gamma": ("SimPO gamma", "pref_loss 为 simpo 时的目标奖励间隔 gamma。"),
    "dpo_label_smoothing": ("DPO 标签平滑", "pref_loss 为 sigmoid 时假定被翻转标签的比例（保守 DPO），取值 [0, 0.5)。"),
    "pref_ftx": ("SFT 损失权重", "dpo/kto：混入的对被选回复的有监督（SFT）损失权重。"),
    "precompute_ref_log_probs": ("预计算参考概率", "dpo/kto：训练前一次性计算参考模型对每个样本的对数概率，训练中不再逐步前向参考模型。"),
    "kto_chosen_weight": ("KTO 正样本权重", "kto：期望样本（kto_tag 为 true）损失的权重。"),
    "kto_rejected_weight": ("KTO 负样本权重", "kto：非期望样本（kto_tag 为 false）损失的权重。"),
    "reward_model": ("奖励模型", "ppo：奖励模型，即 --stage rm 写出的运行目录（LoRA 适配器或完整模型，含 value_head.safetensors）。"),
    "ppo_epochs": ("PPO 轮数", "ppo：每批 rollout 的优化遍数。"),
    "ppo_buffer_size": ("PPO 缓冲批数", "ppo：每轮遍历一步的 rollout 时的优化器步数。每步生成 per_device_train_batch_size × gradient_accumulation_steps × ppo_buffer_size 条 rollout，ppo_epochs 的每一轮对每 per_device_train_batch_size × gradient_accumulation_steps 条做一次优化器更新（小批为 per_device_train_batch_size，与 LLaMA-Factory、TRL 相同）。"),
    "ppo_target": ("PPO 目标 KL", "ppo：自适应 KL 惩罚系数的目标 KL（每条回复的 nats）；0 表示固定 ppo_kl_coef。"),
    "ppo_kl_horizon": ("KL 控制视野", "ppo：自适应 KL 控制器的视野（以 rollout 数计）：每步系数最多变化 ±20% × 每步 rollout 数 / 视野。10000（TRL、LLaMA-Factory）适合长训练；短训练应约等于每步 rollout 数。"),
    "ppo_kl_coef": ("PPO KL 系数", "ppo：对参考模型逐 token KL 惩罚的初始系数。"),
    "ppo_score_norm": ("奖励归一化", "ppo：用滑动均值和标准差归一化奖励模型分数。"),
    "ppo_whiten_rewards": ("奖励白化", "ppo：对每批 rollout 的逐 token 奖励做白化。"),
    "ppo_cliprange": ("PPO 裁剪范围", "ppo：策略比率（及价值更新）的裁剪范围。"),
    "ppo_gamma": ("PPO gamma", "ppo：广义优势估计的折扣因子。"),
    "ppo_lam": ("PPO lambda", "ppo：广义优势估计的 lambda。"),
    "ppo_vf_coef": ("价值损失权重", "ppo：价值损失的权重。"),
    "ppo_missing_eos_penalty": ("未结束惩罚", "ppo：在 max_new_tokens 内没有结束的 rollout，从其奖励模型得分中减去该值（TRL 的 missing_eos_penalty）。没见过被截断回复的奖励模型可能给截断回复更高分，PPO 便学会写满长度上限；0 表示关闭。"),
    "offload_embedding": ("卸载嵌入表", "把冻结的输入嵌入表放在 CPU 内存（CUDA）。默认：量化（QLoRA）且嵌入未共享时开启。"),
    "upcast_unquantized": ("未量化权重升精度", "QLoRA：把未量化的权重（norm、嵌入、输出头）转为 float32，同 peft 的 prepare_model_for_kbit_training。"),
    # generate
    "max_new_tokens": ("最大生成长度", "每条回复最多生成的 token 数。"),
    "do_sample": ("采样", "采样而非贪心解码（给出 temperature/top_p 时自动开启）。"),
    "temperature": ("温度", "采样温度。"),
    "top_p": ("top_p", "核采样的概率质量。"),
    "top_k": ("top_k", "从概率最高的 k 个 token 中采样。"),
    "repetition_penalty": ("重复惩罚", "大于 1 时抑制重复。"),
    # export
    "export_dir": ("导出目录", "export：合并后模型的写出目录。"),
    "export_size": ("分片大小", "export：单个 safetensors 分片的最大大小（GB）。"),
    "export_dtype": ("导出精度", "export：写出权重的数据类型。"),
}


def t(key: str, lang: str, **kw) -> str:
    """The text for ``key`` in ``lang`` (English if the language is unknown); Msg params render in ``lang`` too."""
    if key not in CATALOG:  # a section of a schema group added later: show its name rather than fail
        return key.removeprefix("sec_").replace("_", " ")
    return Msg(key, **kw).render(lang)


def field_zh(name: str) -> tuple[str, str] | None:
    """(Chinese label, Chinese help) of a setting: here for the core groups, with its group for a registered one."""
    if name in FIELD_ZH:
        return FIELD_ZH[name]
    return next((info.zh[name] for info in GROUP_INFO.values() if name in info.zh), None)


def field_label(name: str, lang: str) -> str:
    """A friendly name in the page's language, then the setting's own name (``Learning rate · learning_rate``)."""
    from tuneforge.webui.train_layout import label

    return label(name, lang, field_zh(name) if lang == "zh" else None)


def field_help(spec, lang: str) -> str:
    zh = field_zh(spec.name) if lang == "zh" else None
    return zh[1] if zh else spec.help
