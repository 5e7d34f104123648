"""One decision for every LLaMA-Factory argument name: implemented, ignored (with why) or refused (with why and fix).

LLaMA-Factory (LF) configs are flat lists of its ``hparams`` dataclass fields plus the
``transformers.Seq2SeqTrainingArguments`` it accepts. tuneforge's schema (config/schema.py) implements the names a
run needs; every other LF name is decided here, so no LF name is ever an "unknown key":

- **implemented** — a field of tuneforge's schema (the test checks that it is one);
- **ignored** — accepted, and the run log says why it changes nothing here;
- **refused** — accepted only at a value that asks for nothing (``None``, ``false``, empty, or LF's own default);
  any other value is a configuration problem that names the reason and what to do instead.

``train``, ``chat`` and ``export`` share this policy (:func:`route`); like LF's own inference commands, ``chat`` and
``export`` refuse the training-loop names (``learning_rate`` …) and accept (and ignore) the fine-tuning ones.

``docs/lf-compat.md`` is generated from this module: ``python -m tuneforge.config.lf_keys > docs/lf-compat.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMPLEMENTED, IGNORED, REFUSED = "implemented", "ignored", "refused"
NO_VALUES = {"", "none", "null", "~", "false", "0", "no", "off", "[]", "{}"}


@dataclass(frozen=True)
class Decision:
    kind: str  # implemented | ignored | refused
    reason: str = ""
    fix: str = ""
    default: Any = None  # LF's default: a refused name at this value asks for nothing


def impl(note: str = "") -> Decision:
    return Decision(IMPLEMENTED, note)


def ign(reason: str) -> Decision:
    return Decision(IGNORED, reason)


def ref(reason: str, fix: str, default: Any = None) -> Decision:
    return Decision(REFUSED, reason, fix, default)


# ---- shared reasons -------------------------------------------------------------------------------------------------
NOT_WIRED = ("this Accelerate/transformers multi-GPU setting is not wired in (tuneforge drives DDP, FSDP2 and DeepSpeed "
             "through its own keys)", "use --nproc_per_node N with fsdp / fsdp_config or deepspeed (README \"Multi-GPU\")")
MULTIMODAL = ("multimodal training is not supported yet: tuneforge trains text-only models",
              "drop the image/video/audio settings and columns, or use LLaMA-Factory for vision/audio models")
MEGATRON = ("Megatron-Bridge / MCA training is not supported (tuneforge trains with its own loop on Accelerate)",
            "drop it to train with tuneforge's loop on one device")
KT = ("KTransformers (CPU-offloaded MoE experts) is not supported", "drop it to train with tuneforge's own loop")
VLLM = ("tuneforge generates with Hugging Face transformers (infer_backend huggingface); vLLM/SGLang are not wired "
        "in", "drop it, or set infer_backend huggingface")
SWANLAB = ("SwanLab logging is not built in", "use report_to tensorboard or wandb; metrics.jsonl is always written")
RAY = ("Ray launching is not supported", "drop it; run `tuneforge train` directly")
PROFILER = ("the torch profiler is not wired into tuneforge's loop", "drop it; steps, tokens/s and peak memory are "
            "logged every logging_steps")
HUB_PUSH = ("pushing to the Hugging Face Hub is not built in", "upload the run folder afterwards with "
            "`hf upload <repo_id> <output_dir>` (huggingface_hub's CLI)")
BADAM = ("BAdam is not available: its package (badam) is a 2025 research release, not a maintained one, and its "
         "block switching would need its own checkpoint state", "drop it; finetuning_type freeze trains a chosen "
         "block of layers")
EVAL_CMD = ("`llamafactory-cli eval` (MMLU/C-Eval/CMMLU) settings belong to tuneforge's own eval command, not to a "
            "training config: `tuneforge eval --task NAME --task_dir DIR --n_shot 5 --lang en|zh`",
            "drop it")

# What each LF group's names are (names and groups only, from LF's hparams dataclasses), used for the chat/export
# policy: LF's own chat/export accept every group except the training loop's (HF TrainingArguments and its
# mix-ins, and the eval command's).
TRAIN_ONLY_GROUPS = ("TrainingArguments", "RayArguments", "Fp8Arguments", "ProfilerArguments", "EvaluationArguments",
                     "MegatronBridgeArguments")

DECISIONS: dict[str, Decision] = {
    # ---- BaseModelArguments -----------------------------------------------------------------------------------------
    "model_name_or_path": impl("a local folder, an alias, or a Hugging Face hub id (ModelScope with "
                               "use_modelscope_hub)"),
    "adapter_name_or_path": impl(),
    "adapter_folder": ref("adapter_folder (LF's folder of several adapters to load by name) is not supported",
                          "list the adapter folders in adapter_name_or_path, comma separated"),
    "cache_dir": impl("where hub models and datasets are downloaded and cached"),
    "model_revision": impl("hub branch, tag or commit of model_name_or_path"),
    "hf_hub_token": impl("token for gated/private hub models and datasets"),
    "ms_hub_token": impl("token for ModelScope (with use_modelscope_hub)"),
    "om_hub_token": ref("the openMind hub is not supported", "use a Hugging Face hub id or a local folder"),
    "trust_remote_code": impl(),
    "flash_attn": impl("auto, sdpa, varlen, fa2, eager, and LF's `disabled` (= eager)"),
    "enable_liger_kernel": impl(),
    "disable_gradient_checkpointing": impl("true forces gradient checkpointing off. LF checkpoints by default; "
                                           "tuneforge only when gradient_checkpointing is true"),
    "use_reentrant_gc": ign("tuneforge always uses non-reentrant checkpointing (the form torch recommends)"),
    "use_unsloth": ign("tuneforge's own fused paths (gathered loss head, Liger, varlen attention) are used instead; "
                       "see docs/benchmarks.md for the comparison with Unsloth"),
    "use_unsloth_gc": ign("gradient checkpointing is tuneforge's own (gradient_checkpointing, "
                          "enable_activation_offloading)"),
    "use_v1_kernels": ign("LF's v1 kernel set; tuneforge picks its kernels itself (enable_liger_kernel, flash_attn) "
                          "and logs each choice"),
    "use_kv_cache": ign("generation always uses the KV cache and training never does"),
    "use_fast_tokenizer": ign("the fast (Rust) tokenizer is always used: supervised spans need its offsets"),
    "split_special_tokens": ref("splitting special tokens into plain text is not supported",
                                "drop it (special tokens stay single tokens)"),
    "low_cpu_mem_usage": ign("transformers always loads weights lazily (low_cpu_mem_usage is its only mode in 5.x)"),
    "offload_folder": ign("weights are not offloaded to disk"),
    "resize_vocab": ref("resizing the vocabulary is not supported", "drop it; add_tokens is not supported either"),
    "add_tokens": ref("adding tokens to the vocabulary is not supported", "drop it"),
    "add_special_tokens": ref("adding special tokens to the vocabulary is not supported", "drop it"),
    "new_special_tokens_config": ref("adding special tokens to the vocabulary is not supported", "drop it"),
    "init_special_tokens": ign("only used when new tokens are added, which tuneforge does not do"),
    "print_param_status": ign("the number of trainable parameters is always logged"),
    "rope_scaling": ref("RoPE scaling (context extension) is not supported", "drop it; train within the model's "
                        "context length"),
    "mixture_of_depths": ref("mixture-of-depths conversion is not supported", "drop it"),
    "moe_aux_loss_coef": ref("setting the MoE router auxiliary loss is not supported", "drop it (the model's "
                             "configured coefficient applies)"),
    "shift_attn": ref("LongLoRA shift short attention (S^2-Attn) is not supported", "drop it"),
    "upcast_layernorm": ign("norms already run in float32 where the precision needs it; QLoRA: see "
                            "upcast_unquantized"),
    "upcast_lmhead_output": ign("the loss is always computed in float32"),
    "train_from_scratch": ref("training from randomly initialised weights is not supported",
                              "drop it to fine-tune the pretrained weights"),
    "infer_backend": impl("huggingface (alias hf); vllm/sglang/ktransformers are refused"),
    "infer_dtype": impl("auto, float16, bfloat16, float32 for chat"),
    # ---- QuantizationArguments ------------------------------------------------------------------------------------
    "quantization_bit": impl(),
    "quantization_method": impl("bnb (bitsandbytes); hqq and eetq are refused"),
    "quantization_type": impl(),
    "double_quantization": impl(),
    "quantization_device_map": ign("quantized weights are placed on the training device; LF's `auto` (spread over "
                                   "GPUs) is for inference only"),
    # ---- ProcessorArguments (vision/audio) --------------------------------------------------------------------------
    **{k: ref(*MULTIMODAL) for k in ("image_max_pixels", "image_min_pixels", "image_do_pan_and_scan", "crop_to_patches",
                                      "video_max_pixels", "video_min_pixels", "video_fps", "video_maxlen",
                                      "use_audio_in_video", "audio_sampling_rate")},
    "freeze_vision_tower": ref(*MULTIMODAL, default=True),
    "freeze_multi_modal_projector": ref(*MULTIMODAL, default=True),
    "freeze_language_model": ref(*MULTIMODAL),
    "media_dir": ref(*MULTIMODAL),
    # ---- ExportArguments --------------------------------------------------------------------------------------------
    "export_dir": impl(),
    "export_size": impl(),
    "export_device": impl("cpu or auto (the merge runs on a GPU when there is one)"),
    "export_legacy_format": impl("false: safetensors; true is refused (the legacy .bin format is a pickle)"),
    "export_hub_model_id": ref(*HUB_PUSH),
    "export_quantization_bit": ref("GPTQ export is not supported", "export at full precision and quantize the folder "
                                   "with a dedicated tool (e.g. llama.cpp for GGUF)"),
    "export_quantization_dataset": ign("only used with export_quantization_bit, which tuneforge refuses"),
    "export_quantization_nsamples": ign("only used with export_quantization_bit, which tuneforge refuses"),
    "export_quantization_maxlen": ign("only used with export_quantization_bit, which tuneforge refuses"),
    # ---- vLLM / SGLang / KTransformers ------------------------------------------------------------------------------
    "vllm_config": ref(*VLLM),
    **{k: ign("only used with infer_backend vllm, which tuneforge refuses") for k in
       ("vllm_enforce_eager", "vllm_gpu_util", "vllm_max_lora_rank", "vllm_maxlen")},
    "sglang_config": ref(*VLLM),
    **{k: ign("only used with infer_backend sglang, which tuneforge refuses") for k in
       ("sglang_lora_backend", "sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size")},
    "use_kt": ref(*KT),
    "kt_config": ref(*KT),
    **{k: ign("only used with use_kt, which tuneforge refuses") for k in
       ("kt_cpu_activation", "kt_expert_checkpoint_path", "kt_lora_expert_intermediate_size", "kt_lora_expert_num",
        "kt_non_expert_weight_path", "kt_use_lora_experts", "kt_weight_path")},
    # ---- DataArguments ----------------------------------------------------------------------------------------------
    "template": impl("every LF template name (docs/lf-compat.md lists them); multimodal ones are refused"),
    "dataset": impl(),
    "eval_dataset": impl(),
    "dataset_dir": impl("a folder with dataset_info.json; LF's `REMOTE:` hub folders are refused"),
    "cutoff_len": impl("long rows: see `truncation` (LF's proportional prompt/reply cut for LF-style configs)"),
    "train_on_prompt": impl(),
    "mask_history": impl(),
    "streaming": ref("streaming datasets are not supported: rows are read, checked and counted before training",
                     "drop it; use max_samples to read a part of a large dataset"),
    "buffer_size": ign("only used with streaming, which tuneforge refuses"),
    "mix_strategy": impl("concat, interleave (round-robin until every dataset is used up) and LF's interleave_under "
                         "(stop with the shortest) / interleave_over (cycle the shorter ones until the longest is "
                         "used up)"),
    "interleave_probs": ref("weighted sampling between datasets is not supported",
                            "drop it; mix_strategy interleave_* takes equal shares, and num_samples in "
                            "dataset_info.json repeats or subsamples one dataset"),
    "overwrite_cache": ign("tuneforge re-encodes data every run (it takes seconds); there is no cache to overwrite"),
    "preprocessing_batch_size": ign("data is encoded in-process, row by row"),
    "preprocessing_num_workers": ign("data is encoded in-process"),
    "max_samples": impl(),
    "eval_num_beams": ign("do_predict decodes with the Generate keys (num_beams, greedy by default)"),
    "ignore_pad_token_for_loss": ign("padding is always left out of the loss"),
    "val_size": impl(),
    "eval_on_each_dataset": ref("per-dataset evaluation losses are not reported", "drop it; the evaluation loss is "
                                "computed over all of eval_dataset / the val_size split"),
    "packing": impl(),
    "neat_packing": impl(),
    "tool_format": ref("choosing a tool-call format independently of the template is not supported",
                       "drop it; the template renders tools in its model's own format"),
    "default_system": impl(),
    "enable_thinking": impl("reasoning templates: false trains and chats with thinking switched off (the "
                            "*_nothink templates do the same)"),
    "preserve_thinking": ref("keeping the reasoning of earlier turns in the history is not supported",
                             "drop it; earlier turns are rendered as the template renders them"),
    "tokenized_path": ref("saving/loading pre-tokenized datasets is not supported: encoding takes seconds here",
                          "drop it"),
    "data_shared_file_system": ign("single-process runs have nothing to share"),
    # ---- FinetuningArguments ----------------------------------------------------------------------------------------
    "stage": impl(),
    "finetuning_type": impl("full, freeze, lora, oft and the prompt-based methods"),
    "pure_bf16": impl("bfloat16 weights, trainable weights and optimizer states; no autocast"),
    "use_llama_pro": impl("freeze/lora: train the last layer of each of freeze_trainable_layers blocks (the "
                          "layers a LLaMA Pro expansion inserted)"),
    "use_adam_mini": impl("pytorch-optimizer's AdamMini (optional extra `galore`)"),
    "use_muon": impl("torch.optim.Muon for the hidden layers' 2-D weights (AdamW-matched scale), AdamW for the "
                     "rest"),
    "use_mca": ref(*MEGATRON),
    "use_megatron_bridge": ref(*MEGATRON),
    "use_dft_loss": ref("the DFT loss (dynamic fine-tuning) is not supported", "drop it to train with cross-entropy"),
    "use_asft_loss": ref("the ASFT loss is not supported", "drop it to train with cross-entropy"),
    "asft_alpha": ign("only used with use_asft_loss, which tuneforge refuses"),
    "use_eaft_loss": ref("the EAFT loss is not supported", "drop it to train with cross-entropy"),
    "eaft_alpha": ign("only used with use_eaft_loss, which tuneforge refuses"),
    "use_hyper_parallel": ref("LLaMA-Factory's hyper-parallel (context/sequence parallel) training is not supported",
                              "use fsdp full_shard (or deepspeed ZeRO-3) to fit long sequences over several GPUs"),
    "hyper_parallel_args": ign("only used with use_hyper_parallel (multi-GPU)"),
    "hyper_parallel_cp_size": ign("only used with use_hyper_parallel (multi-GPU)"),
    "compute_accuracy": ref("token accuracy during evaluation is not reported", "drop it; evaluation reports the "
                            "loss (rm/dpo report pairwise accuracy)"),
    "disable_shuffling": ref("training in file order is not supported", "drop it (batches are shuffled each epoch, "
                             "reproducibly from seed)"),
    "early_stopping_steps": ref("early stopping is not supported", "set max_steps, or watch eval_loss in "
                                "metrics.jsonl"),
    "plot_loss": impl(),
    "include_effective_tokens_per_second": ign("tokens/s of non-padding tokens is always logged"),
    # freeze
    "freeze_trainable_layers": impl(),
    "freeze_trainable_modules": impl(),
    "freeze_extra_modules": impl(),
    # lora
    "additional_target": impl(),
    "lora_alpha": impl(),
    "lora_dropout": impl(),
    "lora_rank": impl(),
    "lora_target": impl(),
    "loraplus_lr_ratio": impl(),
    "loraplus_lr_embedding": ref("a separate LoRA+ learning rate for embedding adapters is not supported",
                                 "drop it; loraplus_lr_ratio scales every B matrix", default=1e-6),
    "use_rslora": impl(),
    "use_dora": impl(),
    "pissa_init": impl(),
    "pissa_iter": impl(),
    "pissa_convert": ign("the run always saves the equivalent plain LoRA adapter for the original base (what LF's "
                         "pissa_convert does)"),
    "create_new_adapter": ref("stacking a fresh adapter on top of loaded ones is not supported",
                              "the adapters in adapter_name_or_path except the last are merged and the last is trained "
                              "further; to start a fresh adapter on a merged base, export first"),
    # oft
    "oft_rank": impl(), "oft_block_size": impl(), "oft_target": impl(), "module_dropout": impl(),
    # rlhf
    "pref_beta": impl(),
    "pref_ftx": impl(),
    "pref_bco_weight": ref("the BCO term of DPO is not supported", "drop it"),
    "pref_loss": impl("sigmoid, ipo, hinge, orpo, simpo"),
    "dpo_label_smoothing": impl(),
    "kto_chosen_weight": impl(),
    "kto_rejected_weight": impl(),
    "simpo_gamma": impl(),
    "ld_alpha": ref("LD-DPO length desensitisation is not supported", "drop it"),
    "ppo_buffer_size": impl(),
    "ppo_epochs": impl(),
    "ppo_score_norm": impl(),
    "ppo_target": impl(),
    "ppo_whiten_rewards": impl(),
    "ref_model": ref("a separate reference model is not supported: the reference is the starting model (the base "
                     "without the trained adapter)", "drop it"),
    "ref_model_adapters": ref("a separate reference model is not supported", "drop it"),
    "ref_model_quantization_bit": ref("a separate reference model is not supported", "drop it"),
    "reward_model": impl(),
    "reward_model_adapters": ref("reward_model is a tuneforge --stage rm run folder (adapter + value head)",
                                 "pass that folder as reward_model"),
    "reward_model_quantization_bit": ref("loading the reward model quantized is not supported", "drop it"),
    "reward_model_type": ref("LF's full/api reward model types are not supported: the reward model is a tuneforge "
                             "--stage rm run (lora or full)", "drop it", default="lora"),
    # galore / apollo / badam
    "use_galore": impl("pytorch-optimizer's GaLore (optional extra `galore`); projector state kept in checkpoints"),
    "galore_rank": impl(), "galore_update_interval": impl(), "galore_scale": impl(), "galore_proj_type": impl(),
    "galore_target": impl(),
    "galore_layerwise": ref("layer-wise GaLore (an optimizer step inside every backward hook) is not supported",
                            "drop it; GaLore then steps once per optimizer step"),
    "use_apollo": impl("pytorch-optimizer's APOLLO (optional extra `galore`), random projections"),
    "apollo_rank": impl(), "apollo_update_interval": impl(), "apollo_scale": impl(), "apollo_proj_type": impl(),
    "apollo_target": impl(), "apollo_scale_type": impl(),
    "apollo_proj": ref("only random projections are available (pytorch-optimizer's APOLLO)", "drop it (or set "
                       "random)", default="random"),
    "apollo_layerwise": ref("layer-wise APOLLO is not supported", "drop it"),
    "apollo_scale_front": ref("APOLLO's scale_front variant is not available in pytorch-optimizer", "drop it"),
    "use_badam": ref(*BADAM),
    **{k: ign("only used with use_badam, which tuneforge refuses") for k in
       ("badam_mask_mode", "badam_mode", "badam_start_block", "badam_switch_interval", "badam_switch_mode",
        "badam_update_ratio", "badam_verbose")},
    # swanlab
    "use_swanlab": ref(*SWANLAB),
    **{k: ign("only used with use_swanlab, which tuneforge refuses") for k in
       ("swanlab_api_key", "swanlab_lark_secret", "swanlab_lark_webhook_url", "swanlab_logdir", "swanlab_mode",
        "swanlab_project", "swanlab_run_name", "swanlab_workspace")},
    # ---- GeneratingArguments ----------------------------------------------------------------------------------------
    "do_sample": impl(), "temperature": impl(), "top_p": impl(), "top_k": impl(), "repetition_penalty": impl(),
    "max_new_tokens": impl(),
    "num_beams": impl(), "length_penalty": impl(), "max_length": impl(), "skip_special_tokens": impl(),
    # ---- EvaluationArguments (llamafactory-cli eval) ----------------------------------------------------------------
    "task": ref(*EVAL_CMD), "task_dir": ign("only used by the eval command's `task`"),
    "batch_size": ign("only used by the eval command's `task`"), "n_shot": ign("only used by the eval command's `task`"),
    "lang": ign("only used by the eval command's `task`"), "save_dir": ign("only used by the eval command's `task`"),
    "download_mode": ign("only used by the eval command's `task`"),
    # ---- Megatron-Bridge ------------------------------------------------------------------------------------------
    **{k: ign("Megatron-Bridge option: only used with use_megatron_bridge, which tuneforge refuses") for k in
       ("account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split", "apply_rope_fusion",
        "bias_activation_fusion", "calculate_per_token_loss", "context_parallel_size", "cross_entropy_loss_fusion",
        "expert_model_parallel_size", "export_hf_on_finish", "extra_config", "masked_softmax_fusion",
        "megatron_pretrained_checkpoint", "mixed_precision", "moe_grouped_gemm", "moe_token_dispatcher_type",
        "overlap_grad_reduce", "overlap_param_gather", "pipeline_model_parallel_size", "recompute_granularity",
        "recompute_method", "recompute_num_layers", "sequence_parallel", "tensor_model_parallel_size",
        "use_distributed_optimizer", "use_packed_sequences", "virtual_pipeline_model_parallel_size")},
    # ---- FP8, Ray, profiler -----------------------------------------------------------------------------------------
    "fp8": impl("LoRA on CUDA 8.9+: the frozen base in FP8 (tuneforge's own path, fast/)"),
    "fp8_backend": ign("fp8 runs tuneforge's own FP8 matmuls; there is no backend to choose"),
    "fp8_enable_fsdp_float8_all_gather": ign("multi-GPU (FSDP) only; single-device runs gather nothing"),
    "ray_num_workers": ref(*RAY, default=1), "ray_init_kwargs": ref(*RAY),
    "master_addr": impl(), "master_port": impl(),
    "enable_torch_profiler": ref(*PROFILER),
    **{k: ign("only used with enable_torch_profiler, which tuneforge refuses") for k in
       ("profile_modules", "profiler_active_steps", "profiler_output_dir", "profiler_profile_memory",
        "profiler_record_shapes", "profiler_repeat", "profiler_wait_steps", "profiler_warmup_steps",
        "profiler_with_stack")},
    # ---- transformers TrainingArguments (the ones LF accepts) -----------------------------------------------------
    "output_dir": impl(), "overwrite_output_dir": impl(), "do_train": impl(),
    "do_eval": ign("evaluation runs every eval_steps whenever val_size > 0 or eval_dataset is set"),
    "do_predict": impl("generates for eval_dataset: generated_predictions.jsonl, BLEU-4 and ROUGE-1/2/L in "
                       "predict_results.json (sft)"),
    "predict_with_generate": impl("do_predict always generates"),
    "prediction_loss_only": ign("evaluation reports the loss only"),
    "learning_rate": impl(), "num_train_epochs": impl(), "max_steps": impl(),
    "per_device_train_batch_size": impl(), "per_device_eval_batch_size": impl(),
    "gradient_accumulation_steps": impl(), "eval_accumulation_steps": ign("evaluation accumulates on the device"),
    "lr_scheduler_type": impl("linear, cosine, constant, constant_with_warmup, cosine_with_restarts, polynomial, "
                              "inverse_sqrt, cosine_with_min_lr, cosine_warmup_with_min_lr, warmup_stable_decay"),
    "lr_scheduler_kwargs": impl("num_cycles, power, lr_end, min_lr, min_lr_rate, num_decay_steps, num_stable_steps, "
                                "min_lr_ratio, timescale — as in transformers' schedules"),
    "warmup_steps": impl(), "max_grad_norm": impl(), "weight_decay": impl(),
    "adam_beta1": impl(), "adam_beta2": impl(), "adam_epsilon": impl(),
    "optim": impl("adamw_torch, adamw_torch_fused, adamw_8bit, adamw_bnb_8bit, paged_adamw_8bit, sgd, adagrad, "
                  "rmsprop, adafactor; others are refused with the reason"),
    "optim_args": ref("optimizer-specific arguments are not supported", "drop it; adam_beta1/2, adam_epsilon and "
                      "weight_decay are the optimizer settings"),
    "optim_target_modules": ign("transformers' GaLore/APOLLO optim names are refused; galore_target / apollo_target "
                                "name the modules"),
    "seed": impl(), "data_seed": ign("data order follows seed"),
    "logging_steps": impl(), "logging_first_step": ign("the first logged step is logging_steps"),
    "logging_strategy": ign("metrics are logged every logging_steps"),
    "logging_nan_inf_filter": ign("a NaN/Inf loss is always reported as it is"),
    "log_level": ign("tuneforge logs at info level"), "log_level_replica": ign("single-process runs have no replicas"),
    "log_on_each_node": ign("single-process runs have one node"),
    "save_steps": impl(), "save_total_limit": impl(),
    "save_strategy": ign("checkpoints are written every save_steps"),
    "save_only_model": impl("checkpoints hold the trainable weights only (no optimizer state; they cannot be resumed "
                            "from)"),
    "save_on_each_node": ign("single-process runs have one node"),
    "eval_steps": impl(), "eval_strategy": ign("evaluation runs every eval_steps whenever there is held-out data"),
    "eval_delay": ign("evaluation starts at the first eval_steps"), "eval_on_start": ign("evaluation runs every "
                                                                                        "eval_steps, not at step 0"),
    "eval_do_concat_batches": ign("evaluation sums the loss over batches; nothing is concatenated"),
    "eval_use_gather_object": ign("single-process runs gather nothing"),
    "batch_eval_metrics": ign("evaluation reports the loss only"), "include_for_metrics": ign("evaluation reports the "
                                                                                             "loss only"),
    "metric_for_best_model": ref("keeping the best checkpoint is not supported", "drop it; metrics.jsonl holds "
                                 "eval_loss per step and each checkpoint is kept up to save_total_limit"),
    "load_best_model_at_end": ref("keeping the best checkpoint is not supported", "drop it; the final weights are "
                                  "saved"),
    "greater_is_better": ign("only used with metric_for_best_model, which tuneforge refuses"),
    "bf16": impl(), "fp16": impl(),
    "bf16_full_eval": ign("evaluation uses the training precision"), "fp16_full_eval": ign("evaluation uses the "
                                                                                          "training precision"),
    "tf32": ign("PyTorch's default matmul precision is used on CUDA"),
    "gradient_checkpointing": impl(),
    "gradient_checkpointing_kwargs": ign("checkpointing is always non-reentrant"),
    "activation_checkpointing": ref(*NOT_WIRED), "activation_checkpointing_kwargs": ref(*NOT_WIRED),
    "enable_jit_checkpoint": ign("tuneforge's checkpoints are written every save_steps"),
    "torch_compile": impl(), "torch_compile_backend": ign("torch_compile uses the inductor backend"),
    "torch_compile_mode": ign("torch_compile uses the default mode"),
    "torch_empty_cache_steps": ign("the CUDA cache is left to PyTorch's allocator"),
    "report_to": impl("none, tensorboard, wandb, all (comma list accepted); other trackers are refused"),
    "run_name": ign("the run is named by output_dir"), "project": ign("trackers use the output_dir name"),
    "trackio_space_id": ref("trackio is not supported", "use report_to tensorboard or wandb"),
    "trackio_bucket_id": ign("trackio is not supported"), "trackio_static_space_id": ign("trackio is not supported"),
    "resume_from_checkpoint": impl(),
    "restore_callback_states_from_checkpoint": ign("tuneforge has no callbacks; checkpoints restore the whole loop "
                                                   "state"),
    "ignore_data_skip": ign("resuming restores the data position exactly"),
    "dataloader_num_workers": ign("batches are built in-process from pre-tokenized data"),
    "dataloader_pin_memory": ign("batches are built in-process"), "dataloader_drop_last": ign("the last partial "
                                                                                             "batch is trained on"),
    "dataloader_persistent_workers": ign("no loader workers"), "dataloader_prefetch_factor": ign("no loader workers"),
    "dataloader_in_order": ign("no loader workers"), "dataloader_multiprocessing_context": ign("no loader workers"),
    "remove_unused_columns": ign("columns are mapped through dataset_info.json"),
    "label_names": ign("labels are built by tuneforge"), "length_column_name": ign("group_by_length measures tokens"),
    "train_sampling_strategy": ign("batches are shuffled each epoch (group_by_length groups similar lengths)"),
    "sortish_sampler": ign("batches are shuffled each epoch (group_by_length groups similar lengths)"),
    "label_smoothing_factor": ref("label smoothing is not supported", "drop it"),
    "neftune_noise_alpha": ref("NEFTune embedding noise is not supported", "drop it"),
    "auto_find_batch_size": ref("automatic batch-size search is not supported", "run `tuneforge estimate` to pick "
                                "per_device_train_batch_size"),
    "full_determinism": ign("runs are seeded (seed); CUDA kernels keep their default determinism"),
    "disable_tqdm": ign("progress is always shown (a bar on a terminal, log lines otherwise)"),
    "include_num_input_tokens_seen": ign("trained tokens are always counted and reported"),
    "debug": ign("use --debug to see tracebacks"), "skip_memory_metrics": ign("peak memory is always reported"),
    "average_tokens_across_devices": ign("the loss is always averaged over all trained tokens of the step"),
    "generation_config": ign("generation settings are the Generate keys (max_new_tokens, temperature, …)"),
    "generation_max_length": ign("do_predict stops at max_new_tokens (the Generate key)"),
    "generation_num_beams": ign("do_predict uses num_beams (the Generate key)"),
    "use_cache": ign("generation always uses the KV cache and training never does"),
    "use_cpu": ign("the device is chosen automatically (CUDA when present) and logged"),
    "use_liger_kernel": ign("use enable_liger_kernel (default: on where liger-kernel supports the model)"),
    "liger_kernel_config": ign("Liger's kernels are chosen by tuneforge per architecture"),
    "push_to_hub": ref(*HUB_PUSH), "hub_model_id": ref(*HUB_PUSH), "hub_token": ign("nothing is pushed to the hub"),
    "hub_strategy": ign("nothing is pushed to the hub"), "hub_private_repo": ign("nothing is pushed to the hub"),
    "hub_always_push": ign("nothing is pushed to the hub"), "hub_revision": ign("nothing is pushed to the hub"),
    "ddp_timeout": impl(),
    "local_rank": ign("each process takes its rank from the launcher (LOCAL_RANK); tuneforge train --nproc_per_node "
                      "N starts the processes"),
    "deepspeed": impl(), "fsdp": impl(), "fsdp_config": impl(), "ddp_backend": impl(),
    **{k: ref(*NOT_WIRED) for k in ("accelerator_config", "parallelism_config")},
    "ddp_broadcast_buffers": ign("DDP runs with broadcast_buffers off: every process loads the same buffers (rotary "
                                 "tables), and a broadcast would make each forward a collective"),
    "ddp_find_unused_parameters": ign("DDP reduces the trained parameters' gradients; every one of them takes part in "
                                      "each step, so unused ones are not searched for"),
    **{k: ign("DDP's own defaults are used (gradient buckets and graph are not tuned)") for k in
       ("ddp_bucket_cap_mb", "ddp_static_graph")},
}

# Values of implemented keys that are refused with a specific reason (the key itself is fine).
REFUSED_VALUES: dict[tuple[str, str], tuple[str, str]] = {
    **{("infer_backend", v): VLLM for v in ("vllm", "sglang", "ktransformers")},
    ("export_legacy_format", "true"): ("the legacy .bin format is a pickle; tuneforge writes safetensors only",
                                       "drop it (every current loader reads safetensors)"),
    ("flash_attn", "fa3"): ("FlashAttention-3 is not wired in", "use --flash_attn auto (SDPA + PyTorch's varlen "
                                                                "FlashAttention kernel) or fa2"),
    ("quantization_method", "hqq"): ("HQQ quantization is not supported", "use quantization_method bnb"),
    ("quantization_method", "eetq"): ("EETQ quantization is not supported", "use quantization_method bnb"),
    **{("report_to", v): (f"the {v} tracker is not built in", "use report_to tensorboard or wandb; metrics.jsonl is "
                          "always written") for v in ("mlflow", "swanlab", "comet_ml", "clearml",
                                                      "dvclive", "neptune",
                                                      "trackio", "azure_ml", "codecarbon", "flyte", "dagshub")},
    **{("optim", v): ("transformers' GaLore optimizers are not wired in", "use use_galore: true (LLaMA-Factory's "
                      "GaLore switch)") for v in ("galore_adamw", "galore_adamw_8bit", "galore_adafactor",
                                                  "galore_adamw_layerwise", "galore_adamw_8bit_layerwise",
                                                  "galore_adafactor_layerwise")},
    **{("optim", v): ("transformers' APOLLO optimizers are not wired in", "use use_apollo: true") for v in
       ("apollo_adamw", "apollo_adamw_layerwise")},
    **{("optim", v): (f"optim {v} is not available here", "use adamw_torch (or adamw_8bit / paged_adamw_8bit on "
                      "CUDA for smaller optimizer states)") for v in
       ("adamw_apex_fused", "adamw_anyprecision", "adamw_torch_xla", "adamw_torch_npu_fused", "adamw_torch_4bit",
        "adamw_torch_8bit", "ademamix", "ademamix_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "lion_8bit",
        "lion_32bit", "paged_lion_8bit", "paged_lion_32bit", "paged_adamw_32bit", "rmsprop_bnb", "rmsprop_bnb_8bit",
        "rmsprop_bnb_32bit", "lomo", "adalomo", "grokadamw", "schedule_free_radam", "schedule_free_adamw",
        "schedule_free_sgd", "stable_adamw", "adamw_hf", "adam")},
    ("lr_scheduler_type", "reduce_lr_on_plateau"): (
        "reduce_lr_on_plateau needs an evaluation metric after every step", "use cosine or linear"),
}


def is_no_value(value: Any, default: Any = None) -> bool:
    """Whether ``value`` asks for nothing: None, false, empty, 0, or LF's own default."""
    if value is None or value is False or value == 0 or value in ([], {}):
        return True
    if isinstance(value, str) and value.strip().lower() in NO_VALUES:
        return True
    if default is None:
        return False
    if isinstance(default, bool):
        return str(value).strip().lower() in ("true", "1", "yes", "on") if default else False
    try:
        return type(default)(value) == default
    except (TypeError, ValueError):
        return str(value) == str(default)


def value_refusal(key: str, value: Any) -> tuple[str, str] | None:
    """(reason, fix) if this value of an implemented key is refused."""
    if isinstance(value, (list, tuple)):
        for v in value:
            found = value_refusal(key, v)
            if found:
                return found
        return None
    text = str(value).strip().lower()
    if key == "report_to":
        for part in text.split(","):
            found = REFUSED_VALUES.get((key, part.strip()))
            if found:
                return found
        return None
    return REFUSED_VALUES.get((key, text))


def infer_accepts(key: str, group: str | None) -> bool:
    """Whether LF's inference commands (chat, export) take ``key``: its LF group is not a training-loop group.
    ``group`` is tuneforge's schema group for implemented keys (every group but `train` holds model, data,
    fine-tuning or generation settings, which LF's inference commands accept)."""
    if group is not None:
        return group != "train" or key in TRAIN_SIDE_INFER_OK
    d = DECISIONS.get(key)
    return d is not None and key not in HF_TRAINING_NAMES and key not in TRAIN_ONLY_NAMES


# Implemented LF names that live in tuneforge's train group but that LF's inference commands accept (they belong to
# LF's model/finetuning groups).
TRAIN_SIDE_INFER_OK = {"disable_gradient_checkpointing", "plot_loss"}

# transformers.Seq2SeqTrainingArguments names LF accepts (names only). LF's chat/export refuse them.
HF_TRAINING_NAMES = frozenset("""
accelerator_config activation_checkpointing activation_checkpointing_kwargs adam_beta1 adam_beta2 adam_epsilon
auto_find_batch_size average_tokens_across_devices batch_eval_metrics bf16 bf16_full_eval data_seed
dataloader_drop_last dataloader_in_order dataloader_multiprocessing_context dataloader_num_workers
dataloader_persistent_workers dataloader_pin_memory dataloader_prefetch_factor ddp_backend ddp_broadcast_buffers
ddp_bucket_cap_mb ddp_find_unused_parameters ddp_static_graph ddp_timeout debug deepspeed disable_tqdm do_eval
do_predict do_train enable_jit_checkpoint eval_accumulation_steps eval_delay eval_do_concat_batches eval_on_start
eval_steps eval_strategy eval_use_gather_object fp16 fp16_full_eval fsdp fsdp_config full_determinism
generation_config generation_max_length generation_num_beams gradient_accumulation_steps gradient_checkpointing
gradient_checkpointing_kwargs greater_is_better hub_always_push hub_model_id hub_private_repo hub_revision
hub_strategy hub_token ignore_data_skip include_for_metrics include_num_input_tokens_seen label_names
label_smoothing_factor learning_rate length_column_name liger_kernel_config load_best_model_at_end local_rank
log_level log_level_replica log_on_each_node logging_first_step logging_nan_inf_filter logging_steps
logging_strategy lr_scheduler_kwargs lr_scheduler_type max_grad_norm max_steps metric_for_best_model
neftune_noise_alpha num_train_epochs optim optim_args optim_target_modules output_dir parallelism_config
per_device_eval_batch_size per_device_train_batch_size predict_with_generate prediction_loss_only project push_to_hub
remove_unused_columns report_to restore_callback_states_from_checkpoint resume_from_checkpoint run_name
save_on_each_node save_only_model save_steps save_strategy save_total_limit seed skip_memory_metrics sortish_sampler
tf32 torch_compile torch_compile_backend torch_compile_mode torch_empty_cache_steps trackio_bucket_id
trackio_space_id trackio_static_space_id train_sampling_strategy use_cache use_cpu use_liger_kernel warmup_steps
weight_decay
""".split())

# LF names outside the TrainingArguments list that belong to its training-only groups (Ray, FP8, profiler, eval,
# Megatron-Bridge, overwrite_output_dir).
TRAIN_ONLY_NAMES = frozenset("""
overwrite_output_dir ray_num_workers ray_init_kwargs master_addr master_port fp8 fp8_backend
fp8_enable_fsdp_float8_all_gather enable_torch_profiler profile_modules profiler_active_steps profiler_output_dir
profiler_profile_memory profiler_record_shapes profiler_repeat profiler_wait_steps profiler_warmup_steps
profiler_with_stack task task_dir batch_size n_shot lang save_dir download_mode
""".split())

# Keys that older LF versions and other tools wrote and that mean nothing here (not in LF's current lists).
LEGACY_IGNORED: dict[str, str] = {
    "evaluation_strategy": "evaluation runs every eval_steps whenever there is held-out data",
    "logging_dir": "metrics go to output_dir",
}


def route(key: str, value: Any, group: str | None, command: str = "train") -> tuple[str, str, str]:
    """How ``command`` treats ``key=value``: ("use" | "ignore" | "refuse" | "unknown", reason, fix).

    ``group`` is the key's tuneforge schema group (None if the schema has no such field)."""
    if command != "train" and not infer_accepts(key, group) and key not in LEGACY_IGNORED:
        if group is not None or key in DECISIONS:
            return "refuse", f"a training setting; {command} does not take it", \
                f"drop it from the {command} command (LLaMA-Factory's {command} refuses it too)"
        return "unknown", "", ""
    if group is not None:
        refusal = value_refusal(key, value)
        if refusal:
            return ("refuse", *refusal)
        if command != "train" and group not in (("model", "data", "generate") + (("export",) if command == "export"
                                                                                   else ())):
            return "ignore", f"a training setting; {command} does not use it", ""
        return "use", "", ""
    if key in LEGACY_IGNORED:
        return "ignore", LEGACY_IGNORED[key], ""
    d = DECISIONS.get(key)
    if d is None:
        return "unknown", "", ""
    if d.kind == IGNORED:
        return "ignore", d.reason, ""
    if d.kind == REFUSED:
        if is_no_value(value, d.default):
            return "ignore", f"set to {value!r}, which asks for nothing ({d.reason})", ""
        return "refuse", d.reason, d.fix
    return "unknown", "", ""  # implemented but not in the schema: a bug the tests catch


# LLaMA-Factory's GeneratingArguments defaults: chat samples unless told otherwise.
LF_GENERATION = {"do_sample": True, "temperature": 0.95, "top_p": 0.7, "top_k": 50, "max_new_tokens": 1024,
                 "repetition_penalty": 1.0}


def lf_style(cfg) -> str | None:
    """Why ``cfg`` reads as an LLaMA-Factory config (None if it does not): it sets a key that every LF training
    (do_train) or inference (infer_backend) config carries and tuneforge's own configs never need."""
    for key in ("do_train", "infer_backend"):
        if key in cfg.explicit:
            return f"{key} is set, as in an LLaMA-Factory config"
    return None


def apply_lf_generation_defaults(cfg) -> None:
    """chat from an LF-style config: the generation settings it leaves unset take LF's defaults (sampling with
    temperature 0.95, top_p 0.7, top_k 50, up to 1024 new tokens), as `llamafactory-cli chat` would decode.
    tuneforge's own default is greedy decoding."""
    why = lf_style(cfg)
    if not why:
        return
    filled = {k: v for k, v in LF_GENERATION.items() if k not in cfg.explicit}
    for k, v in filled.items():
        setattr(cfg.generate, k, v)
    if filled:
        from tuneforge.utils import log

        log.choice("generation: LLaMA-Factory's defaults " + ", ".join(f"{k}={v}" for k, v in filled.items()),
                   f"{why}; set do_sample false for greedy replies")


def normalize(cfg) -> None:
    """Settings LF expresses differently: disable_gradient_checkpointing true turns gradient checkpointing off;
    truncation auto becomes LF's proportional cut for an LF-style config (tuneforge's turn-keeping cut otherwise)."""
    if cfg.train.disable_gradient_checkpointing and cfg.train.gradient_checkpointing:
        cfg.train.gradient_checkpointing = False
    # A config that names truncation itself (a saved config.yaml, the web UI's form) keeps it as written.
    if cfg.data.truncation == "auto" and "truncation" not in cfg.explicit and lf_style(cfg):
        cfg.data.truncation = "lf"  # auto stays auto (= turns) otherwise


def markdown() -> str:
    """docs/lf-compat.md: every LF name with its decision."""
    from tuneforge.config.schema import field_map

    fmap = field_map()
    lines = ["# LLaMA-Factory compatibility: every argument name", "",
             "Generated by `python -m tuneforge.config.lf_keys > docs/lf-compat.md` from "
             "`src/tuneforge/config/lf_keys.py` (a test checks that this file is current).", "",
             "Every name of LLaMA-Factory's `hparams` dataclasses and every `Seq2SeqTrainingArguments` name it accepts "
             "has one of three outcomes in tuneforge:", "",
             "- **implemented** — a tuneforge setting (`tuneforge train --help` documents it);",
             "- **ignored** — accepted; the run log says why it changes nothing here;",
             "- **refused** — accepted only at a value that asks for nothing (`null`, `false`, empty, or LF's "
             "default); any other value stops the run before anything loads, with the reason and the fix.", "",
             "`tuneforge train`, `chat` and `export` share this policy; like LLaMA-Factory's own `chat` and `export`, "
             "the last two refuse training-loop settings (`learning_rate`, …) and accept the fine-tuning ones.", "",
             f"{sum(d.kind == IMPLEMENTED for d in DECISIONS.values())} implemented, "
             f"{sum(d.kind == IGNORED for d in DECISIONS.values())} ignored, "
             f"{sum(d.kind == REFUSED for d in DECISIONS.values())} refused.", "",
             "| name | decision | notes |", "| --- | --- | --- |"]
    for name in sorted(DECISIONS):
        d = DECISIONS[name]
        note = d.reason + (f" — fix: {d.fix}" if d.fix else "")
        if d.kind == IMPLEMENTED:
            help_text = fmap[name][1].metadata.get("help", "") if name in fmap else ""
            note = d.reason or help_text
        lines.append(f"| `{name}` | {d.kind} | {note.replace('|', '/')} |")
    lines += ["", "## Refused values of implemented settings", "", "| setting | value | reason — fix |",
              "| --- | --- | --- |"]
    for (key, value), (reason, fix) in sorted(REFUSED_VALUES.items()):
        lines.append(f"| `{key}` | `{value}` | {reason} — {fix} |")
    return "\n".join(lines + [""] + template_lines()) + "\n"


def template_lines() -> list[str]:
    """The template section of docs/lf-compat.md, from data/templates/lf_templates.json (read as data: config does
    not import the data package)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "data" / "templates" / "lf_templates.json"
    table = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if not k.startswith("_")}
    how = {"slots": "LF's turn formats", "use": "tuneforge template", "own": "the model's own template",
           "multimodal": "refused (multimodal)"}
    out = ["## Templates by LLaMA-Factory's names", "",
           f"All {len(table)} of LLaMA-Factory's template names resolve (`--template NAME`). *LF's turn formats*: "
           "LLaMA-Factory's own user/assistant/system formats, default system prompt and stop words, rendered by "
           "`lf_slots.jinja` and saved with the trained model as its chat template; reasoning templates add an empty "
           "thought to replies without one (trained; with `enable_thinking: false` it moves into the prompt and "
           "thoughts are removed), `*_nothink` templates render none. *tuneforge template*: a hand-written template "
           "of the same format that also renders tool calls. *The model's own template*: newer families whose LF "
           "template reproduces the model's chat template; the tokenizer's is used (`_nothink`: thinking off). "
           "Vision/audio templates are refused: multimodal training is not supported yet.", "",
           "Differences from LLaMA-Factory, on purpose: templates whose replies LF ends without a token in the text "
           "(its `efficient_eos`: glm4_moe, falcon, solar, …) end each reply with the tokenizer's eos token here, so "
           "the model learns where to stop with prefix-rendered masks; `smollm2` uses SmolLM2's own default system "
           "prompt (LF's copy adds a final period the model never saw); tools render in tuneforge's generic "
           "`<tools>`/`<tool_call>` convention unless the template is a tuneforge template.", "",
           "| name | renders with | default system prompt / note |", "| --- | --- | --- |"]
    for name in sorted(table):
        spec = table[name]
        note = spec.get("note") or (f"default system: {spec['default_system']!r}" if spec.get("default_system")
                                    else "")
        if spec.get("reasoning"):
            note = ("reasoning; " + note).strip("; ")
        note = note.replace("|", "/").replace("\n", "\\n")
        lines_ = f"| `{name}` | {how[spec['kind']]}" + (f" ({spec['use']})" if spec["kind"] == "use" else "")
        out.append(f"{lines_} | {note} |")
    return out


if __name__ == "__main__":
    print(markdown(), end="")
