"""The configuration schema: one small dataclass per concern.

Field names are LLaMA-Factory's flat argument names, so their commands and YAML files run unchanged. Each field's
``help`` metadata is the documentation shown by the CLI and the web UI; ``choices`` restricts string values.
Defaults live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable


def opt(default: Any, help: str, choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
        **extra: Any) -> Any:
    """A setting: its default, its help, and (for strings) its valid values — a tuple, or a function returning them
    when the values are records registered by the modules that implement them (methods, losses, stages)."""
    meta = {"help": help, **extra}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def field_choices(f) -> tuple[str, ...] | None:
    """The valid values of a dataclass field made with :func:`opt` (None: any value of its type)."""
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def _method_names() -> tuple[str, ...]:
    from tuneforge.config.registry import METHODS

    return tuple(METHODS)


def _stage_names() -> tuple[str, ...]:
    from tuneforge.config.registry import STAGES

    return tuple(STAGES)


def _loss_names() -> tuple[str, ...]:
    from tuneforge.config.registry import LOSSES

    return tuple(LOSSES)


SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial",
              "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "sgd", "adagrad",
              "rmsprop", "adafactor")
REPORTERS = ("none", "tensorboard", "wandb", "all")
ATTENTION = ("auto", "sdpa", "varlen", "fa2", "eager", "disabled")


@dataclass
class ModelArgs:
    """Which model to start from and how to load it."""

    model_name_or_path: str | None = opt(
        None, "A local Hugging Face model folder, an alias such as `smollm2-135m-instruct` (see `tuneforge env`), or "
              "a Hugging Face hub id such as `Qwen/Qwen2.5-7B-Instruct` (downloaded and cached by huggingface_hub; "
              "HF_HUB_OFFLINE=1 uses the cache only).")
    adapter_name_or_path: str | None = opt(
        None, "Adapter folder(s) to start from, comma separated. For training, the last one is trained further.")
    trust_remote_code: bool = opt(False, "Allow model code shipped inside the model folder to run. Off by default.")
    flash_attn: str = opt("auto", "Attention implementation: auto picks sdpa, plus PyTorch's variable-length "
                           "FlashAttention for packed rows on CUDA (varlen).", ATTENTION)
    enable_liger_kernel: bool | None = opt(
        None, "Liger-Kernel fused RMSNorm, RoPE, SwiGLU and linear+cross-entropy (CUDA). Default: on where "
              "liger-kernel is installed and supports the architecture.")
    # QLoRA
    quantization_bit: int | None = opt(
        None, "Load the frozen base weights quantized to 4 or 8 bits (QLoRA; needs bitsandbytes).")
    quantization_method: str = opt("bnb", "Quantization backend: bnb (bitsandbytes).", ("bnb",))
    quantization_type: str = opt("nf4", "4-bit data type: nf4 (normal float) or fp4.", ("nf4", "fp4"))
    double_quantization: bool = opt(True, "4-bit: also quantize the quantization constants (saves ~0.4 bit/param).")
    # Hub ids (models/hub.py): LLaMA-Factory's names.
    model_revision: str = opt("main", "Hub branch, tag or commit of model_name_or_path.")
    cache_dir: str | None = opt(None, "Where hub models and datasets are cached (default: the Hugging Face cache, "
                                      "HF_HOME).")
    hf_hub_token: str | None = opt(None, "Hugging Face token for gated or private models and datasets (default: the "
                                         "logged-in token, HF_TOKEN).")
    use_modelscope_hub: bool = opt(False, "Resolve hub ids on ModelScope (needs `pip install modelscope`); "
                                          "LLaMA-Factory's USE_MODELSCOPE_HUB=1 does the same.")
    ms_hub_token: str | None = opt(None, "ModelScope token (with use_modelscope_hub).")
    infer_backend: str = opt("huggingface", "chat/eval generation engine: huggingface (transformers' generate).",
                             ("huggingface", "hf"))
    infer_dtype: str = opt("auto", "chat: dtype of the weights; auto = bfloat16 on a CUDA GPU that supports it, "
                                   "else float32.", ("auto", "float16", "bfloat16", "float32"))



@dataclass
class DataArgs:
    """Which data to train on and how to turn it into tokens."""

    dataset: str | None = opt(None, "Dataset name(s) from dataset_info.json or the built-ins, comma separated.")
    dataset_dir: str = opt("data", "Folder holding dataset_info.json and the data files. Built-in datasets "
                                    "(identity, general, …) are found even if this folder does not exist.")
    eval_dataset: str | None = opt(None, "Dataset name(s) used only for evaluation, comma separated.")
    template: str = opt("auto", "Chat template: `auto` uses the tokenizer's own; or a named template — every "
                                "LLaMA-Factory name (qwen, qwen3, qwen3_nothink, llama3, gemma, deepseek3, default, "
                                "alpaca, …; `tuneforge env` lists them, docs/lf-compat.md says how each renders).")
    cutoff_len: int = opt(2048, "Maximum tokens per sample; longer samples are truncated (and counted).")
    max_samples: int | None = opt(None, "Read at most this many rows from each dataset.")
    val_size: float = opt(0.0, "Hold out this fraction (0–1) or this many rows (≥ 1) for evaluation.")
    train_on_prompt: bool = opt(False, "Also compute the loss on prompt tokens (system, user, tool).")
    mask_history: bool = opt(False, "Train only on the last assistant turn of each conversation.")
    dataset_vars: dict = opt({}, "Values for {{placeholders}} in the data, e.g. `name=Nimbus,author=Orchard Labs`.")
    default_system: str | None = opt(None, "System prompt used for rows that have none (overrides the template's).")
    mix_strategy: str = opt("concat", "How several datasets are combined: concat; interleave (round-robin until "
                                      "every dataset is used up); interleave_under (round-robin, stop when the "
                                      "shortest is used up); interleave_over (round-robin, the shorter ones repeat "
                                      "until the longest is used up).",
                            ("concat", "interleave", "interleave_under", "interleave_over"))
    packing: bool | None = opt(
        None, "Pack several samples into each row of cutoff_len tokens, padding-free: each sample keeps its own "
              "position ids and never attends to another. Batch size then counts rows. Default: on for pt, off "
              "for sft.")
    neat_packing: bool = opt(False, "Packing without attention across samples (implies packing; tuneforge's "
                                    "packing never lets samples attend to each other).")
    truncation: str = opt(
        "auto", "Rows longer than cutoff_len: `turns` keeps whole turns (cuts at the last reply that fits, cuts the "
                "reply itself otherwise, and drops rows whose prompt alone is too long); `lf` cuts prompt and reply "
                "in proportion as LLaMA-Factory does (its infer_seqlen), so no row is dropped. Default auto: `lf` "
                "when the config sets do_train (an LLaMA-Factory-style config), else `turns`. Counted either way.",
        ("auto", "turns", "lf"))
    replay_ratio: float = opt(0.0, "Replay: before training the base model answers a pool of general prompts "
                                   "(once, cached), and that many of its own answers per training row are mixed into "
                                   "the data (0.5: one replay row for every two rows), so general behaviour is "
                                   "anchored. sft only.")
    replay_prompts: str | None = opt(None, "Replay pool: a JSON/JSONL file of prompts (strings or {\"instruction\"} "
                                           "rows). Default: the built-in pool (the `general` set's prompts).")
    enable_thinking: bool = opt(True, "Reasoning templates (qwen3, deepseekr1, …): false renders replies with "
                                      "thinking switched off, as the *_nothink templates do.")



@dataclass
class FinetuneArgs:
    """What is trained: the stage and the fine-tuning method (each method's options are a group of their own)."""

    stage: str = opt("sft", "Training stage (`tuneforge train --help` lists the stages): sft (supervised "
                            "fine-tuning), pt (continued pre-training), rm (reward model), dpo (direct preference "
                            "optimisation and its variants, see pref_loss), kto, or ppo (reinforcement learning "
                            "against a reward model).", _stage_names)
    finetuning_type: str = opt(
        "lora", "Fine-tuning method: what is trained (`tuneforge train --help` lists the methods). Each method's "
                "own options form a group of their own; options of another method are refused.", _method_names)
    additional_target: str | None = opt(
        None, "Adapter methods: modules trained fully and saved with the adapter (comma list, e.g. "
              "embed_tokens,lm_head).")
    # GPU-memory savers for adapter training
    offload_embedding: bool | None = opt(
        None, "Keep the frozen input-embedding table in CPU memory (CUDA; ~1 GiB for Llama-3-8B). Default: on for "
              "quantized (QLoRA) bases with an untied embedding.")
    upcast_unquantized: bool = opt(
        False, "QLoRA: cast the unquantized weights (norms, embedding, head) to float32 as peft's "
               "prepare_model_for_kbit_training does (+2 GiB on Llama-3-8B). Off: they stay in the compute dtype.")
    pure_bf16: bool = opt(
        False, "Train purely in bfloat16: weights, trainable weights and optimizer states in bfloat16, no float32 "
               "master copy and no autocast (LLaMA-Factory's pure_bf16; half the memory of trainable weights, less "
               "precise updates). Also on a CPU when asked.")
    use_llama_pro: bool = opt(
        False, "freeze/lora: LLaMA Pro — train only the last layer of each of freeze_trainable_layers equal blocks "
               "(the layers a block expansion inserted), as LLaMA-Factory does.")


@dataclass
class PreferenceArgs:
    """dpo / kto: the preference loss and the reference model."""

    pref_loss: str = opt("sigmoid", "dpo: preference loss (`tuneforge train --help` lists them): sigmoid (DPO), "
                                    "ipo, hinge, orpo or simpo (the last two need no reference model).", _loss_names)
    pref_beta: float = opt(0.1, "dpo/kto: beta, the strength of the pull towards the reference model (orpo: "
                                "weight of the odds-ratio term; simpo: reward scale).")
    simpo_gamma: float = opt(0.5, "dpo with pref_loss simpo: target reward margin gamma.")
    dpo_label_smoothing: float = opt(0.0, "dpo with pref_loss sigmoid: assumed share of flipped labels "
                                          "(conservative DPO), in [0, 0.5).")
    pref_ftx: float = opt(0.0, "dpo/kto: weight of the supervised (SFT) loss on the chosen replies mixed in.")
    precompute_ref_log_probs: bool = opt(
        False, "dpo/kto: compute the reference model's log-probs of every sample once before training, so no "
               "reference forward runs per step.")
    kto_chosen_weight: float = opt(1.0, "kto: weight of the loss on desirable samples (kto_tag true).")
    kto_rejected_weight: float = opt(1.0, "kto: weight of the loss on undesirable samples (kto_tag false).")


@dataclass
class PpoArgs:
    """ppo: the reward model, rollouts, the KL penalty and the clipped objective."""

    reward_model: str | None = opt(
        None, "ppo: the reward model, a run folder written by --stage rm (a LoRA adapter or a full model, with "
              "value_head.safetensors).")
    ppo_epochs: int = opt(4, "ppo: optimisation passes over each batch of rollouts.")
    ppo_buffer_size: int = opt(1, "ppo: optimiser steps per pass over a step's rollouts. A step generates "
                                  "per_device_train_batch_size × gradient_accumulation_steps × ppo_buffer_size "
                                  "rollouts, then each of ppo_epochs passes takes one optimiser step per "
                                  "per_device_train_batch_size × gradient_accumulation_steps of them (mini-batches "
                                  "of per_device_train_batch_size, as in LLaMA-Factory and TRL).")
    ppo_target: float = opt(6.0, "ppo: target KL (nats per reply) for the adaptive KL-penalty coefficient; 0 keeps "
                                 "ppo_kl_coef fixed.")
    ppo_kl_horizon: int = opt(10000, "ppo: horizon of the adaptive KL controller, in rollouts: each step moves the "
                                     "coefficient by up to ±20% × (rollouts per step) / horizon. 10,000 (TRL, "
                                     "LLaMA-Factory) suits long runs; a short run needs about its rollouts per step.")
    ppo_kl_coef: float = opt(0.05, "ppo: initial coefficient of the per-token KL penalty to the reference.")
    ppo_score_norm: bool = opt(False, "ppo: normalise reward-model scores with their running mean and std.")
    ppo_whiten_rewards: bool = opt(False, "ppo: whiten the per-token rewards of each rollout batch.")
    ppo_missing_eos_penalty: float = opt(
        0.0, "ppo: subtracted from the reward-model score of a rollout that does not finish within max_new_tokens "
             "(TRL's missing_eos_penalty). A reward model never shown cut-off replies may score them above short "
             "finished ones, and PPO then learns to ramble to the limit; 0 = off.")
    ppo_cliprange: float = opt(0.2, "ppo: clip range of the policy ratio (and of the value update).")
    ppo_gamma: float = opt(1.0, "ppo: discount factor of the generalised advantage estimation.")
    ppo_lam: float = opt(0.95, "ppo: lambda of the generalised advantage estimation.")
    ppo_vf_coef: float = opt(0.1, "ppo: weight of the value loss.")


@dataclass
class TrainArgs:
    """How training runs: optimisation, schedule, precision, logging, checkpoints."""

    output_dir: str | None = opt(None, "Run folder: adapter/model, checkpoints, metrics, plots and summary go here.")
    overwrite_output_dir: bool = opt(False, "Start over even if output_dir holds checkpoints or a finished run.")
    do_train: bool = opt(True, "Train (LLaMA-Factory compatibility; `False` only validates and prepares data).")
    learning_rate: float = opt(5e-5, "Peak learning rate.")
    num_train_epochs: float = opt(3.0, "Epochs to train (fractions allowed).")
    max_steps: int = opt(-1, "If > 0: total optimiser steps, overriding num_train_epochs.")
    per_device_train_batch_size: int = opt(8, "Samples per micro-batch on each device.")
    per_device_eval_batch_size: int = opt(8, "Samples per evaluation batch on each device.")
    gradient_accumulation_steps: int = opt(1, "Micro-batches per optimiser step; the loss is averaged over all "
                                              "trained tokens of the accumulated micro-batches.")
    lr_scheduler_type: str = opt("linear", "Learning-rate schedule.", SCHEDULERS)
    warmup_steps: int = opt(0, "Linear warm-up steps (overrides warmup_ratio when > 0).")
    warmup_ratio: float = opt(0.0, "Warm-up as a fraction of all steps.")
    max_grad_norm: float = opt(1.0, "Clip gradients to this global norm (0 disables).")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    adam_beta1: float = opt(0.9, "AdamW beta1.")
    adam_beta2: float = opt(0.999, "AdamW beta2.")
    adam_epsilon: float = opt(1e-8, "AdamW epsilon.")
    optim: str = opt("adamw_torch", "Optimiser.", OPTIMIZERS)
    seed: int = opt(42, "Random seed for data order, dropout and adapter initialisation.")
    logging_steps: int = opt(10, "Log loss, lr, grad norm and speed every N optimiser steps.")
    save_steps: int = opt(500, "Write a resumable checkpoint every N optimiser steps (0 = never).")
    save_total_limit: int | None = opt(None, "Keep at most this many checkpoints (oldest deleted first).")
    nonfinite_patience: int = opt(3, "Stop the run after this many optimiser steps in a row whose loss or gradient "
                                     "norm is NaN/Inf (each such step is skipped: no weight update; 0 = skip, never "
                                     "stop). Non-finite weights are never saved.")
    eval_steps: int | None = opt(None, "Evaluate on the held-out split every N steps (default: logging_steps).")
    bf16: bool | None = opt(None, "Train in bfloat16 mixed precision. Default (unset): on where the GPU supports "
                                  "bfloat16 (logged); False = float32 there.")
    fp16: bool | None = opt(None, "Train in float16 mixed precision (CUDA only). Default (unset): on where the GPU "
                                  "lacks bfloat16 (logged); False = float32 there.")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass to save memory.")
    enable_activation_offloading: bool = opt(
        False, "Move tensors saved for the backward pass to pinned CPU memory (with gradient_checkpointing: the "
               "layer inputs) and bring them back when needed. CUDA only.")
    group_by_length: bool = opt(False, "Batch samples of similar length together (unpacked runs) to keep padding "
                                       "small; batch order stays shuffled.")
    shared_prefix: bool | None = opt(
        None, "Run the prefix that every row of an unpacked batch shares (e.g. the system prompt) through the model "
              "once per batch instead of once per row; exact, same loss and gradients. Default: on where supported "
              "(full attention in every layer, no gradient checkpointing).")
    torch_compile: bool = opt(False, "Compile each decoder layer with torch.compile (CUDA).")
    fast_path: bool | None = opt(
        None, "tuneforge's own forward and backward for LoRA/QLoRA on Llama, Mistral and Qwen2 decoders (fewer "
              "kernels, in-place gradients, exact; fast/). Default: on for single-process CUDA runs where it "
              "applies (no torch_compile, plain LoRA without dropout or DoRA); True runs it on a CPU too.")
    fp8: bool = opt(False, "LoRA: hold the frozen base weights in FP8 (e4m3, per-row scales) and run their matmuls "
                           "on FP8 tensor cores; the adapter stays bf16. CUDA compute capability 8.9+ (Hopper, Ada).")
    report_to: str = opt("none", "Also log to: none, tensorboard, wandb (needs `pip install wandb`; W&B's own "
                                 "settings such as WANDB_PROJECT and WANDB_MODE apply), a comma list, or all.",
                         REPORTERS, choice_list=True)
    resume_from_checkpoint: str | None = opt(
        None, "Checkpoint folder to resume from. Without it, the latest checkpoint in output_dir is used.")
    plot_loss: bool = opt(False, "Write training_loss.png (raw and smoothed) at the end.")
    sample_prompts: str | None = opt(None, "Questions the tuned model answers (greedy, in the training process) when "
                                     "training ends: one question, or a JSON list of them. Replies are printed and "
                                     "saved in run_summary.json.", json_list=True)
    do_predict: bool = opt(False, "Generate a reply for every row of eval_dataset (after training, or alone with "
                                  "do_train False and the adapter to evaluate) and write generated_predictions.jsonl "
                                  "with BLEU-4 and ROUGE-1/2/L in predict_results.json (LLaMA-Factory's do_predict).")
    predict_with_generate: bool = opt(False, "LLaMA-Factory compatibility: do_predict always generates.")
    # ---- the forgetting guard (eval/guard.py; README "Did the tuning cost anything?") ---------------------------
    forgetting_guard: bool = opt(True, "Ask general probes (facts, arithmetic, short instructions; English and "
                                       "Chinese) to the base model before training and to the tuned model after; the "
                                       "summary shows the share of the base model's right answers kept (retention). "
                                       "Base answers are cached per model. sft/dpo/kto/ppo.")
    forgetting_probes: str | None = opt(None, "Your own probes for the forgetting guard: a JSONL file of "
                                              "{\"question\": ..., \"answers\": [...]} rows (default: the built-in set).")
    forgetting_threshold: float = opt(0.9, "Retention (0–1) below which the run ends with a warning naming the "
                                           "settings to change (epochs, learning rate, replay_ratio).")
    # ---- several processes (train/distributed.py; README "Multi-GPU") ------------------------------------------
    nproc_per_node: int | None = opt(
        None, "Processes to start on this machine (one per GPU) through torch's elastic launcher. Default: one "
              "process; not needed under torchrun or accelerate launch, which start the processes themselves.")
    nnodes: int = opt(1, "Machines taking part in the run (each runs the same command with its own node_rank).")
    node_rank: int = opt(0, "This machine's index among the nnodes machines (0 = the one at master_addr).")
    master_addr: str | None = opt(None, "Address of the node_rank 0 machine (several machines; default 127.0.0.1).")
    master_port: int | None = opt(None, "Free TCP port on the master_addr machine (default: 29500 with several "
                                        "machines, a free port on one machine).")
    fsdp: str | None = opt(
        None, "Shard the model with FSDP2 (torch fully_shard, through Accelerate): full_shard (parameters, "
              "gradients and optimizer states), shard_grad_op (keep parameters gathered between forward and "
              "backward), offload (parameters and optimizer states in CPU memory); `auto_wrap` is accepted "
              "(decoder layers are always their own shard unit). E.g. `full_shard auto_wrap`.")
    fsdp_config: str | None = opt(
        None, "FSDP2 options, as a mapping in the YAML file, JSON text or a .json/.yaml file: "
              "activation_checkpointing, reshard_after_forward, offload_params, cpu_ram_efficient_loading, "
              "transformer_layer_cls_to_wrap, fsdp_version (2).", json_value=True)
    deepspeed: str | None = opt(
        None, "DeepSpeed config (a .json file such as examples/deepspeed/ds_z3_config.json, or a mapping): ZeRO "
              "stage 0-3 with optional CPU offload. `auto` values are filled from this config (batch size, "
              "accumulation, clipping, precision). Needs CUDA GPUs and `pip install deepspeed`.", json_value=True)
    ddp_timeout: int = opt(1800, "Seconds a process waits for the others (a collective that takes longer fails "
                                 "the run with a timeout instead of hanging).")
    ddp_backend: str | None = opt(None, "Process-group backend: nccl (CUDA default) or gloo (CPU default).",
                                  ("nccl", "gloo"))
    save_only_model: bool = opt(False, "Checkpoints hold the trainable weights only, without optimizer state and "
                                       "schedule: smaller, but a run cannot resume from them.")
    disable_gradient_checkpointing: bool = opt(
        False, "Force gradient checkpointing off (LLaMA-Factory's name; LLaMA-Factory checkpoints by default, "
               "tuneforge only when gradient_checkpointing is true).")
    # Memory-saving optimizers (train/optimizers.py), LLaMA-Factory's names.
    use_muon: bool = opt(False, "Optimise the hidden layers' weight matrices with Muon (torch.optim.Muon, update "
                                "scaled to AdamW's RMS) and everything else with AdamW, as LLaMA-Factory's use_muon.")
    use_adam_mini: bool = opt(False, "Adam-mini: one second-moment value per parameter block instead of per "
                                     "parameter (pytorch-optimizer's AdamMini; pip install 'tuneforge[galore]').")
    use_galore: bool = opt(False, "full/freeze: GaLore — low-rank projections of the gradients of the target weight "
                                  "matrices (pytorch-optimizer's GaLore; pip install 'tuneforge[galore]').")
    galore_target: str = opt("all", "GaLore: modules whose weight matrices are projected (comma list) or `all`.")
    galore_rank: int = opt(16, "GaLore: rank of the gradient projection.")
    galore_update_interval: int = opt(200, "GaLore: steps between recomputing the projection.")
    galore_scale: float = opt(2.0, "GaLore: scale of the projected update.")
    galore_proj_type: str = opt("std", "GaLore: projection type.", ("std", "reverse_std", "right", "left", "full"))
    use_apollo: bool = opt(False, "full/freeze: APOLLO — SGD-like memory with AdamW-level updates through random "
                                  "low-rank projections (pytorch-optimizer's APOLLO; pip install 'tuneforge[galore]').")
    apollo_target: str = opt("all", "APOLLO: modules whose weight matrices are projected (comma list) or `all`.")
    apollo_rank: int = opt(16, "APOLLO: rank of the projection.")
    apollo_update_interval: int = opt(200, "APOLLO: steps between new random projections.")
    apollo_scale: float = opt(32.0, "APOLLO: scale of the update.")
    apollo_proj_type: str = opt("std", "APOLLO: projection type.", ("std", "reverse_std", "right", "left", "full"))
    apollo_scale_type: str = opt("channel", "APOLLO: scaling per channel or per tensor.", ("channel", "tensor"))
    lr_scheduler_kwargs: dict = opt({}, "Options of lr_scheduler_type, e.g. `num_cycles=2` (cosine_with_restarts), "
                                        "`power=2,lr_end=1e-7` (polynomial), `min_lr=1e-6` or `min_lr_rate=0.1` "
                                        "(cosine_with_min_lr), `num_decay_steps=100` (warmup_stable_decay).")



@dataclass
class GenerateArgs:
    """Decoding settings for chat and evaluation. Greedy unless sampling settings are given."""

    max_new_tokens: int = opt(256, "Maximum tokens to generate per reply.")
    do_sample: bool | None = opt(None, "Sample instead of greedy decoding (on automatically when temperature/top_p "
                                       "is given).")
    temperature: float | None = opt(None, "Sampling temperature.")
    top_p: float | None = opt(None, "Nucleus sampling probability mass.")
    top_k: int | None = opt(None, "Sample from the k most likely tokens.")
    repetition_penalty: float | None = opt(None, "Penalty > 1 discourages repeating tokens.")
    num_beams: int = opt(1, "Beam search width (1 = no beam search).")
    length_penalty: float = opt(1.0, "Beam search: exponent of the length normalisation of scores.")
    max_length: int | None = opt(None, "Maximum prompt + reply tokens (max_new_tokens still applies).")
    skip_special_tokens: bool = opt(True, "Drop special tokens from the decoded reply.")
    guided_tool_calls: bool = opt(True, "When tools are offered: decode a tool call schema-guided (a function "
                                        "offered, its own argument names and types, valid JSON), as OpenAI's strict "
                                        "function calling; false: the model's free text.")



@dataclass
class ExportArgs:
    """`tuneforge export`: merge LoRA adapters into the base and write a standalone model folder."""

    export_dir: str | None = opt(None, "export: folder to write the merged model to.")
    export_size: float = opt(5.0, "export: maximum size of one safetensors shard, in GB.")
    export_dtype: str = opt("bfloat16", "export: dtype of the written weights.", ("bfloat16", "float16", "float32"))
    export_device: str = opt("cpu", "export: where the merge runs: cpu, or auto (a CUDA GPU when there is one).",
                             ("cpu", "auto"))
    export_legacy_format: bool = opt(False, "export: must stay false; weights are written as safetensors.")



GROUPS: dict[str, type] = {
    "model": ModelArgs,
    "data": DataArgs,
    "finetune": FinetuneArgs,
    "preference": PreferenceArgs,
    "ppo": PpoArgs,
    "train": TrainArgs,
    "generate": GenerateArgs,
    "export": ExportArgs,
}


@dataclass(frozen=True)
class GroupInfo:
    """What the web form shows for a group registered by the module that owns it (a method's options)."""

    title: tuple[str, str]  # (English, Chinese) section title
    zh: dict[str, tuple[str, str]]  # field name -> (Chinese label, Chinese help); English is the field's own help
    section: str  # the web form's section: "method:<name>" for a method's options (shown for that method only)


GROUP_INFO: dict[str, GroupInfo] = {}


def register_group(name: str, cls: type, title: tuple[str, str], zh: dict[str, tuple[str, str]],
                   after: str = "finetune", method_options: bool = True) -> type:
    """Add the settings dataclass ``cls`` as group ``name`` (placed after ``after``, in registration order). Its
    field names join the one flat namespace of settings (LLaMA-Factory's names), so they must be new. ``title`` and
    ``zh`` are what the web form shows; ``method_options``: the group holds a fine-tuning method's options."""
    if name in GROUPS:
        if GROUPS[name] is cls:
            return cls
        raise ValueError(f"settings group {name!r} registered twice")
    taken = {f.name for g in GROUPS.values() for f in fields(g)}
    clash = sorted(taken & {f.name for f in fields(cls)})
    if clash:
        raise ValueError(f"settings group {name!r} repeats existing setting names {clash}")
    missing = sorted({f.name for f in fields(cls)} - set(zh))
    if missing:
        raise ValueError(f"settings group {name!r}: no Chinese label and help for {missing}")
    items = list(GROUPS.items())
    at = [k for k, _ in items].index(after) + 1
    while at < len(items) and items[at][0] in GROUP_INFO:  # after the groups registered before this one
        at += 1
    items.insert(at, (name, cls))
    GROUPS.clear()
    GROUPS.update(items)
    section = f"method:{name}" if method_options else name
    GROUP_INFO[name] = GroupInfo(title, dict(zh), section)
    from tuneforge.config.messages import register

    register({"sec_" + section.replace(":", "_"): title})  # the form's section title, in the one catalogue
    return cls

def field_map() -> dict[str, tuple[str, Any]]:
    """Map each flat key to (group name, dataclasses.Field)."""
    out: dict[str, tuple[str, Any]] = {}
    for group, cls in GROUPS.items():
        for f in fields(cls):
            out[f.name] = (group, f)
    return out
