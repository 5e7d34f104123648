"""English and Chinese text for every label and message of the web UI.

UI strings live in ``STRINGS`` (key → {en, zh}). Form labels and help come from the config schema: English is the
schema's own help; ``FIELD_ZH`` holds the Chinese label and help of every field (a test checks none is missing).
Messages produced by the training core (validation details, logs) name the settings by their flag names and are
shown as they are.
"""

from __future__ import annotations

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
    "sec_method_lora": {"en": "LoRA options", "zh": "LoRA 选项"},
    "sec_method_freeze": {"en": "Freeze options", "zh": "冻结微调选项"},
    "sec_method_prompt": {"en": "Prompt-based method options", "zh": "提示类方法选项"},
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
    "chat_model": {"en": "Base model", "zh": "基座模型"},
    "chat_adapters": {"en": "Adapters", "zh": "适配器"},
    "chat_template": {"en": "Chat template", "zh": "对话模板"},
    "btn_refresh_adapters": {"en": "Refresh", "zh": "刷新"},
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
    "msg_problems": {"en": "{n} configuration problem(s):", "zh": "配置有 {n} 个问题："},
    "hint": {"en": "hint", "zh": "提示"},
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
}

# Chinese label and help for every config field shown in the UI (English comes from the schema itself).
FIELD_ZH: dict[str, tuple[str, str]] = {
    # model
    "model_name_or_path": ("模型", "本地 Hugging Face 模型目录，或别名如 smollm2-135m-instruct（内置模型）。"),
    "adapter_name_or_path": ("继续训练的适配器", "起始适配器目录，可多个（逗号分隔）；训练时最后一个继续训练，其余合并进基座。"),
    "trust_remote_code": ("信任远程代码", "允许运行模型目录中附带的代码。默认关闭。"),
    "flash_attn": ("注意力实现", "注意力实现方式：auto 在可用时选择 sdpa。"),
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
    # finetune
    "stage": ("训练阶段", "sft（有监督微调）或 pt（继续预训练）。"),
    "finetuning_type": ("微调方法", "full、freeze（只训练最后几层）、lora，或提示类方法 prefix、ptuning、ptuning_v2、prompt。"),
    "freeze_trainable_layers": ("可训练层数", "freeze：可训练层数；正数为最后 N 层，负数为最前 N 层。"),
    "freeze_trainable_modules": ("可训练模块", "freeze：可训练层内要训练的模块名（逗号分隔，如 mlp,self_attn）或 all。"),
    "freeze_extra_modules": ("额外可训练模块", "freeze：额外训练的顶层模块（逗号分隔，如 embed_tokens,norm）。"),
    "lora_rank": ("LoRA 秩", "lora：更新矩阵的秩 r。"),
    "lora_alpha": ("LoRA alpha", "lora：缩放系数 alpha；默认 2 × lora_rank。"),
    "lora_dropout": ("LoRA dropout", "lora：适配器输入上的 dropout。"),
    "lora_target": ("LoRA 目标模块", "lora：要适配的模块（逗号分隔，如 q_proj,v_proj）或 all（全部线性层）。"),
    "additional_target": ("额外全量训练模块", "lora：完整训练并随适配器保存的模块（如 embed_tokens,lm_head）。"),
    "use_rslora": ("rsLoRA", "lora：使用秩稳定缩放 alpha/sqrt(r)。"),
    "use_dora": ("DoRA", "lora：权重分解 LoRA（DoRA）。"),
    "loraplus_lr_ratio": ("LoRA+ 学习率比", "lora：LoRA+，B 矩阵学习率 = 比值 × learning_rate（如 16）。"),
    "pissa_init": ("PiSSA 初始化", "lora：用主奇异向量初始化适配器（PiSSA）。"),
    "pissa_iter": ("PiSSA 迭代次数", "lora：PiSSA 快速 SVD 的迭代次数；-1 为完整 SVD。"),
    "num_virtual_tokens": ("虚拟 token 数", "prefix/ptuning/ptuning_v2/prompt：可训练虚拟 token 的数量（即 pre_seq_len）。"),
    "prefix_projection": ("前缀投影", "prefix/ptuning_v2：通过可训练 MLP 生成前缀（重参数化）。默认 prefix 开、ptuning_v2 关。"),
    "encoder_hidden_size": ("编码器隐藏维度", "提示编码器 MLP 的隐藏维度（默认：模型隐藏维度）。"),
    "prompt_tuning_init_text": ("初始化文本", "prompt：用这段文本的嵌入初始化虚拟 token（默认随机）。"),
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
    "eval_steps": ("评估间隔", "每 N 步在验证集上评估（默认等于 logging_steps）。"),
    "bf16": ("bf16", "以 bfloat16 混合精度训练（需要设备支持）。"),
    "fp16": ("fp16", "以 float16 混合精度训练（仅 CUDA；否则回退到 float32）。"),
    "gradient_checkpointing": ("梯度检查点", "反向传播时重算激活以节省显存。"),
    "enable_activation_offloading": ("激活卸载", "把反向传播所需的张量移到固定 CPU 内存，需要时再取回。仅 CUDA。"),
    "group_by_length": ("按长度分组", "把长度相近的样本放进同一批以减少填充；批次顺序仍随机。"),
    "torch_compile": ("torch.compile", "用 torch.compile 编译每个解码层（CUDA）。"),
    "report_to": ("记录到", "额外记录到：none 或 tensorboard。"),
    "resume_from_checkpoint": ("从检查点恢复", "要恢复的检查点目录。不填则使用输出目录中最新的检查点。"),
    "plot_loss": ("绘制损失曲线", "结束时写出 training_loss.png（原始与平滑）。"),
    "ddp_timeout": ("DDP 超时", "多 GPU 训练时等待其他进程的秒数。"),
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
    """The text for ``key`` in ``lang`` (English if the language is unknown)."""
    entry = STRINGS.get(key)
    if entry is None:  # a section of a schema group added later: show its name rather than fail
        return key.removeprefix("sec_").replace("_", " ")
    text = entry.get(lang) or entry["en"]
    return text.format(**kw) if kw else text


def field_label(name: str, lang: str) -> str:
    if lang == "zh" and name in FIELD_ZH:
        return f"{FIELD_ZH[name][0]} · {name}"
    return name


def field_help(spec, lang: str) -> str:
    if lang == "zh" and spec.name in FIELD_ZH:
        return FIELD_ZH[spec.name][1]
    return spec.help
