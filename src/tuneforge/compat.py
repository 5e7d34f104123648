"""Every workaround of an upstream behaviour, in one place.

Each entry says what it changes and why, the versions it was tested on, and what happens outside them: the
library's own behaviour, never a guess. ``tests/test_compat.py`` checks each one, its fall-backs included.

- **LoRA forward** (:func:`patch_lora_forward`): peft's ``lora.Linear.forward`` multiplies the full-width output
  by ``scaling``; ours scales the rank-r activations (or, with ``fused_lora``, adds the update inside one
  ``addmm``). Tested: peft 0.18.0, 0.20.0, 0.21.x (CPU here), 0.21.0 (H200). Outside: peft's own forward; inside,
  any call it does not cover (a peft ``lora_variant`` such as DoRA, dropout, several adapters) uses peft's forward.
- **LoRA input dtype** (:func:`lora_inputs_in_compute_dtype`): peft casts each adapted layer's input to the
  adapter's float32 under autocast; while training, peft's own ``peft.helpers.disable_input_dtype_casting`` turns
  that off for plain LoRA layers. Tested: peft 0.18.0, 0.20.0, 0.21.x. Outside, or with any variant: peft's cast.
- **Liger kernels** (:func:`liger_patch_instance`): Liger's instance patcher is private
  (``_apply_liger_kernel_to_instance``) and swaps a transformers module function. Tested: liger-kernel 0.8.5 with
  transformers 5.17 (H200). Outside: Liger off when automatic, refused with the reason when asked for.
- **File modes** (:func:`ordinary_modes`): safetensors 0.8 writes every file through a temporary file (mode 0600)
  renamed into place, so weights were readable by their owner only, whatever the umask (safetensors issue #782,
  open). Each folder of weights we write gets the modes a plain ``open()``/``mkdir()`` gives under the umask.
  Tested: safetensors 0.8.0. Applied whatever the version: where safetensors already respects the umask it changes
  nothing.
- **Quiet peft** (:func:`quiet_peft`): two messages that are not the user's business, dropped only while tuneforge
  calls into peft (applying a method, loading adapters), matched by their text — the same warning from anywhere
  else, and every other warning, still shows. (1) peft's ``PeftModel.__init__`` reads the deprecated
  ``is_gradient_checkpointing`` of transformers 5, whose FutureWarning is addressed to peft (tested: peft 0.21.2,
  transformers 5.24). (2) Importing peft imports bitsandbytes when it is installed, which on a CPU with AVX512-BF16
  logs "Failed to load CPU gemm_4bit_forward … pip install kernels" even when nothing is quantized; the kernel it
  wants comes from the model hub, and bitsandbytes falls back to its own (tested: bitsandbytes 0.49). A QLoRA run
  imports bitsandbytes earlier, while loading the quantized base, and still shows it there.
- **Renamed APIs** (:func:`cache_kwarg`, :func:`is_checkpointing`): transformers 5 renamed ``past_key_values`` to
  ``cache`` and ``is_gradient_checkpointing`` to ``is_activation_checkpointing``. Tested: transformers 5.17 and
  5.24. Both names are tried, so there is no range.
- **FSDP2 on CPU processes** (:func:`fsdp_on_cpu`): Accelerate turns its FSDP plugin on only for GPU-like
  devices; on CPU processes (gloo) its state stays ``MULTI_CPU`` and ``prepare`` would wrap the model in DDP, although
  torch's ``fully_shard`` runs there. We set the state to FSDP so that Accelerate's own FSDP2 preparation, clipping,
  ``no_sync`` and state-dict gathering run on CPU processes too (the multi-process tests run on them). Tested:
  accelerate 1.15 and 1.16.0 with torch 2.13 (CPU, gloo; on 1.16 ``distributed_type`` reads ``MULTI_CPU``
  again after ``prepare``, but the model is fully_shard-wrapped: its parameters are DTensors, which the run summary's
  ``engine.sharded_parameters`` counts). Outside the window: refused with the reason (use DDP on CPUs).
- **DeepSpeed optimizer states before the first step** (:func:`deepspeed_init_optimizer_states`): DeepSpeed's
  tensor-fragment API (``safe_set_full_optimizer_state``), which a resumed run uses to restore Adam's moments, needs
  states that its ZeRO optimizer only creates at the first step, and ZeRO-1/2 link them to the parameters lazily
  (private ``_lazy_init_hp_params_optimizer_state``). We take one step with zero gradients at learning rate 0 (no
  weight changes, as torch's distributed-checkpoint helpers do) and call the link. Tested: DeepSpeed 0.19.8 (CPU
  processes through a test harness, and a 1-GPU H200 run). Outside the window: refused with the reason when a
  DeepSpeed run resumes.
- **A whole model beside ZeRO-3** (:func:`whole_model_beside_zero3`): while Accelerate's ZeRO-3 plugin is active,
  transformers' ``from_pretrained`` builds *every* model inside ``deepspeed.zero.Init`` (it reads a global weak
  reference to the plugin's ``HfDeepSpeedConfig``), so a frozen model used outside the DeepSpeed engine — the
  reference of dpo/kto for a full/freeze policy — gets empty partitioned weights and fails in its first forward
  ("Padding_idx must be within num_embeddings", found on the H200 by benchmarks/engines_h200.py). While such a
  model loads, the weak reference is cleared (transformers' own ``unset_hf_deepspeed_config``) and put back after
  (``set_hf_deepspeed_config``), so it loads whole on every process. Tested: transformers 5.24 with DeepSpeed 0.19.8
  (H200) and on CPU with a stand-in config object. Outside the window the run stops where the reference would
  load, with the reason and the fix (LoRA, whose reference is the policy with its adapter off; or ZeRO-2/FSDP2).
- **bitsandbytes' dequantization kernels called directly** (:func:`bnb_native_dequant`): the fast path
  dequantizes every 4-bit weight three times per step (forward, recomputation, backward): 672 weights per step for
  an 8B model, and with double quantization two bitsandbytes ops each. Each op call costs ≈ 37 µs of host time
  (the torch custom-op dispatch, argument checks, a context manager per call; call E's host profile: ≈ 50 ms per
  step) while its kernel runs for ≈ 35 µs, so the batch-1 QLoRA step waits on the host. ``fast/nf4.py`` calls the
  same CUDA kernels of bitsandbytes' native library (``cdequantize_blockwise_fp32`` and
  ``cdequantize_blockwise_{bf16,fp16,fp32}_{nf4,fp4}``, the functions its own CUDA backend calls, with the same
  arguments) through ctypes. Tested: bitsandbytes 0.50.2 on the H200 (``benchmarks/fast_check.py`` compares the
  result with ``bitsandbytes.functional.dequantize_4bit`` bit for bit); window 0.50.x. Outside it, on CPUs, or
  where a function is missing: bitsandbytes' registered ops (the same numbers, its own dispatch).

Every decision is logged with its reason (``log.choice``). The upstream packages are imported inside the functions,
so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import logging
import os
import types
import warnings
from pathlib import Path

from tuneforge.utils import log

# (package, lowest tested version inclusive, first untested version): the window the workaround is used in.
PEFT_LORA = ("peft", "0.18.0", "0.22")
LIGER = ("liger-kernel", "0.8.0", "0.9")
LIGER_TRANSFORMERS = ("transformers", "5.0", "6.0")
ACCELERATE_FSDP_CPU = ("accelerate", "1.15", "1.17")
DEEPSPEED_STATES = ("deepspeed", "0.19", "0.20")
TRANSFORMERS_ZERO3_REF = ("transformers", "5.0", "6.0")


def installed(package: str) -> str | None:
    """The installed version of ``package`` (None when it is not installed)."""
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def outside(window: tuple[str, str, str]) -> str | None:
    """None when the installed package lies in the tested window, else why not (for the log)."""
    from packaging.version import InvalidVersion, Version

    package, low, high = window
    found = installed(package)
    if found is None:
        return f"{package} is not installed"
    try:
        v = Version(found)
    except InvalidVersion:
        return f"{package} {found} is not a version we can compare"
    if Version(low) <= Version(v.base_version) < Version(high):
        return None
    return f"{package} {found} is outside the tested range {low} ≤ version < {high}"


# ---- LoRA forward -------------------------------------------------------------------------------------------------
# peft computes ``result = base(x) + lora_B(lora_A(dropout(x))) * scaling``: the scale multiplies the full-width
# output, forward and backward (4 % of H200 kernel time on the Llama-3.1-8B shape). The map is linear, so
# ``lora_B(lora_A(x) * scaling)`` is the same value with a multiply rank/width the size (always on). ``fused_lora``
# instead adds the update inside one ``addmm`` (cuBLAS adds into the base output in its epilogue; measured: no gain
# on an H200, off by default). Only rounding differs from peft. The patched forward handles exactly one case — one
# active plain adapter (no lora_variant such as DoRA, no dropout, no lora_bias, not merged, no extra arguments) —
# and calls peft's own forward for anything else, per call: a variant peft adds later is never computed as plain
# LoRA.

PEFT_FORWARD = "_tuneforge_peft_forward"  # where the layer's own forward is kept


def _plain_adapter(layer, args, kwargs) -> str | None:
    """The one active adapter's name when this call is a plain LoRA update (what the forwards below compute)."""
    if args or kwargs or layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    variants = getattr(layer, "lora_variant", None)
    if (name not in layer.lora_A or not isinstance(variants, dict) or name in variants
            or layer.use_dora.get(name, False) or getattr(layer, "lora_bias", {}).get(name, False)):
        return None
    import torch

    if not isinstance(layer.lora_dropout[name], torch.nn.Identity):
        return None
    return name


def _adapter_input(layer, name: str, x):
    import torch

    a = layer.lora_A[name]
    return a(x if x.dtype == a.weight.dtype or torch.is_autocast_enabled(x.device.type) else x.to(a.weight.dtype))


def _rank_scaled_forward(self, x, *args, **kwargs):
    name = _plain_adapter(self, args, kwargs)
    if name is None:
        return getattr(self, PEFT_FORWARD)(x, *args, **kwargs)
    result = self.base_layer(x)
    h = _adapter_input(self, name, x)
    return result + self.lora_B[name](h * self.scaling[name]).to(result.dtype)


def _fused_forward(self, x, *args, **kwargs):
    import torch

    name = _plain_adapter(self, args, kwargs)
    if name is None:
        return getattr(self, PEFT_FORWARD)(x, *args, **kwargs)
    result = self.base_layer(x)
    h = _adapter_input(self, name, x)
    b = self.lora_B[name].weight
    flat = result.reshape(-1, result.shape[-1])
    fused = torch.addmm(flat, h.reshape(-1, h.shape[-1]).to(flat.dtype), b.t().to(flat.dtype), beta=1,
                        alpha=float(self.scaling[name]))
    return fused.view(result.shape)


def patch_lora_forward(model, fused: bool | None) -> int:
    """Give every peft LoRA ``Linear`` of ``model`` (instances, never the class) the rank-scaled forward, or the fused
    one when ``fused``. Returns the number of layers patched: 0 outside the tested peft range (peft's forward)."""
    why_not = outside(PEFT_LORA)
    if why_not is not None:
        log.choice("LoRA forward=peft's own", why_not)
        return 0
    from peft.tuners.lora.layer import Linear as LoraLinear

    forward = _fused_forward if fused else _rank_scaled_forward
    n = 0
    for m in model.modules():
        if type(m) is LoraLinear and isinstance(getattr(m, "lora_variant", None), dict) \
                and not hasattr(m, PEFT_FORWARD):
            setattr(m, PEFT_FORWARD, m.forward)
            m.forward = types.MethodType(forward, m)
            n += 1
    if fused and n:
        log.choice("fused_lora=on", f"asked; {n} LoRA layers add their update inside one addmm (no separate "
                   "scale/add kernels); layers with a peft variant (DoRA, …) or dropout keep peft's forward")
    elif n:
        log.choice("fused_lora=off", f"default (no measured gain on an H200); {n} LoRA layers scale their rank-r "
                   "activations instead of the full-width output (same value, rank/width of the elementwise work); "
                   "layers with a peft variant (DoRA, …) or dropout keep peft's forward")
    return n


# ---- LoRA input dtype ----------------------------------------------------------------------------------------------
# peft casts each adapted layer's input to the adapter's dtype (float32: tuneforge keeps trainable weights in
# float32). Training runs under autocast, which casts it straight back to bf16/fp16 for the matmul, so the cast only
# costs two full copies of every adapted activation (H200, Llama-3.1-8B shape: ~14 % of GPU time, 8.5 GiB of saved
# activations). peft ships a switch for exactly this, ``peft.helpers.disable_input_dtype_casting``; it is used for
# the training loop only, and only where every peft layer is plain LoRA (variants such as DoRA compute their own
# terms from the input and were never measured without the cast).

def input_cast_reason(model) -> tuple[bool, str | None]:
    """(turn peft's input cast off?, why not — None when there is nothing to say: no peft layers at all)."""
    try:
        from peft.tuners.lora.layer import LoraLayer
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        return False, None
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    if not layers:
        return False, None
    other = [m for m in layers if not isinstance(m, LoraLayer) or getattr(m, "lora_variant", None)]
    if other:
        return False, (f"{type(other[0]).__name__} layers with a peft variant (DoRA, …) or another method keep peft's "
                       "cast (never measured without it)")
    why_not = outside(PEFT_LORA)
    if why_not is not None:
        return False, why_not
    import peft.helpers

    if not hasattr(peft.helpers, "disable_input_dtype_casting"):
        return False, "this peft has no peft.helpers.disable_input_dtype_casting"
    return True, None


@contextlib.contextmanager
def lora_inputs_in_compute_dtype(model):
    """While training: LoRA layers take their input in the compute dtype (peft's cast off), where that is safe."""
    off, why = input_cast_reason(model)
    if not off:
        if why:
            log.choice("lora input cast=peft's", why)
        yield
        return
    from peft.helpers import disable_input_dtype_casting

    log.choice("lora input cast=off", "autocast runs the adapter matmuls in the compute dtype anyway; the float32 "
               "copy of each activation is pure overhead (peft.helpers.disable_input_dtype_casting, while training)")
    with disable_input_dtype_casting(model):
        yield


# ---- Liger-Kernel -------------------------------------------------------------------------------------------------
# Liger's only way in for RMSNorm/SwiGLU/RoPE on a model that is already built is its private
# ``_apply_liger_kernel_to_instance``: it swaps the forward of this model's norm and MLP modules and — unavoidably —
# the module-level ``apply_rotary_pos_emb`` function of the architecture's transformers module. Its signature and
# what it swaps follow transformers' internals, so it is used only with the versions it was run with. The fused
# linear cross-entropy is Liger's public loss module, called from our own loss (train/loss.py): the model's forward
# is never replaced for it.

def liger_unsupported(model_type: str | None) -> str | None:
    """None when Liger's instance patcher can run here for ``model_type``, else why not."""
    import importlib.util

    if importlib.util.find_spec("liger_kernel") is None:
        return "the liger-kernel package is not installed (pip install liger-kernel)"
    import torch

    if not torch.cuda.is_available():
        return "Liger's Triton kernels need a CUDA device"
    for window in (LIGER, LIGER_TRANSFORMERS):
        why_not = outside(window)
        if why_not is not None:
            return why_not + " (Liger's private instance patcher is only used with the versions it was tested on)"
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        return f"Liger has no kernels for model type {model_type!r}"
    return None


def liger_patch_instance(model) -> None:
    """Liger's RMSNorm, RoPE and SwiGLU kernels on this model instance (check :func:`liger_unsupported` first)."""
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)


# ---- renamed APIs -------------------------------------------------------------------------------------------------

def cache_kwarg(forward) -> str:
    """The key/value-cache argument of a decoder's ``forward``: ``cache`` (transformers 5.x) or
    ``past_key_values`` (earlier releases)."""
    import inspect

    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def is_checkpointing(model) -> bool:
    """Whether activation (gradient) checkpointing is on: ``is_activation_checkpointing`` in recent transformers,
    ``is_gradient_checkpointing`` before."""
    value = getattr(model, "is_activation_checkpointing", None)
    if value is None:
        value = getattr(model, "is_gradient_checkpointing", False)
    return bool(value)


# ---- file modes ---------------------------------------------------------------------------------------------------
# An adapter or exported model is served by another user as often as not (a Docker image, Ollama's or vLLM's system
# user). safetensors 0.8 creates its files 0600 (its temporary-file write), and ``tempfile.mkdtemp`` folders are 0700.

def umask() -> int:
    """The process umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_modes(folder: str | Path, include_folder: bool = False) -> None:
    """Give the ``*.safetensors`` files under ``folder`` (and, with ``include_folder``, the folder itself, e.g. one
    made by ``tempfile.mkdtemp``) the mode a plain ``open()``/``mkdir()`` would have: 0666/0777 less the umask."""
    mask, root = umask(), Path(folder)
    if include_folder:
        os.chmod(root, 0o777 & ~mask)
    for f in root.rglob("*.safetensors"):
        if f.is_file() and not f.is_symlink():
            os.chmod(f, 0o666 & ~mask)


# ---- quiet peft ---------------------------------------------------------------------------------------------------
# Matched by text, so a changed message shows again rather than being lost; scoped to our calls into peft.
PEFT_FUTURE_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)
BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_CPU_MESSAGE = "Failed to load CPU gemm_4bit_forward"


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextlib.contextmanager
def quiet_peft():
    """Context manager (and decorator) for calls into peft: see the module docstring, "Quiet peft"."""
    drop, bnb_logger = _DropMessage(BNB_CPU_MESSAGE), logging.getLogger(BNB_CPU_LOGGER)
    bnb_logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            for pattern in PEFT_FUTURE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
            yield
    finally:
        bnb_logger.removeFilter(drop)


# ---- FSDP2 on CPU processes ---------------------------------------------------------------------------------------

def fsdp_on_cpu(accelerator, plugin) -> str | None:
    """Make Accelerate run its FSDP2 path on CPU (gloo) processes (see the module docstring). Returns None when
    done, else why not (outside the tested Accelerate range: the caller refuses the run with it)."""
    from accelerate.utils import DistributedType

    why = outside(ACCELERATE_FSDP_CPU)
    if why:
        return (f"fsdp on CPU processes is only enabled for accelerate {ACCELERATE_FSDP_CPU[1]} up to "
                f"{ACCELERATE_FSDP_CPU[2]} ({why}): Accelerate itself enables FSDP only on GPUs")
    state = accelerator.state
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    log.choice("fsdp2 on CPU processes", "Accelerate enables FSDP only on GPUs; torch's fully_shard runs on CPU "
               "with gloo, so its state is set to FSDP (compat.fsdp_on_cpu)")
    return None


# ---- DeepSpeed optimizer states before the first step -------------------------------------------------------------

def deepspeed_init_optimizer_states(zero_optimizer) -> str | None:
    """Create (zero) optimizer states in DeepSpeed's ZeRO optimizer so that its fragment API can set them. Returns
    None when done, else why not (outside the tested DeepSpeed range: the caller refuses the resume with it)."""
    import torch

    why = outside(DEEPSPEED_STATES)
    if why:
        return (f"resuming a DeepSpeed run is only enabled for deepspeed {DEEPSPEED_STATES[1]} up to "
                f"{DEEPSPEED_STATES[2]} ({why})")
    base = getattr(zero_optimizer, "optimizer", zero_optimizer)
    flats = getattr(zero_optimizer, "fp32_partitioned_groups_flat", None)
    if flats is not None:  # ZeRO-3: a param group holds a sub-group's flat fp32 partition only during its step
        for i, p in enumerate(flats):
            if base.state.get(p):
                continue
            g = base.param_groups[zero_optimizer.sub_group_to_group_id[i]]
            saved, lr = g["params"], g["lr"]
            g["params"], g["lr"] = [p], 0.0
            p.grad = torch.zeros_like(p)
            base.step()
            p.grad = None
            g["params"], g["lr"] = saved, lr
        return None
    if not base.state or any(not st for st in base.state.values()):
        lrs = [g.get("lr") for g in base.param_groups]
        for g in base.param_groups:
            g["lr"] = 0.0
            for p in g["params"]:
                p.grad = torch.zeros_like(p)
        base.step()
        for g, lr in zip(base.param_groups, lrs):
            g["lr"] = lr
            for p in g["params"]:
                p.grad = None
    link = getattr(zero_optimizer, "_lazy_init_hp_params_optimizer_state", None)
    if link is not None:
        link()
    return None


# ---- a whole model beside ZeRO-3 ----------------------------------------------------------------------------------

def zero3_init_active() -> bool:
    """Whether transformers would build a model inside ``deepspeed.zero.Init`` now."""
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:
        return False
    return bool(is_deepspeed_zero3_enabled())


def whole_model_refusal() -> str | None:
    """Why a whole model cannot be loaded beside the active ZeRO-3 setup here (None: it can, or no ZeRO-3)."""
    if not zero3_init_active():
        return None
    why = outside(TRANSFORMERS_ZERO3_REF)
    from transformers.integrations import deepspeed as hfds

    ref = getattr(hfds, "_hf_deepspeed_config_weak_ref", None)
    if why or ref is None or ref() is None:
        return (f"a frozen reference model cannot be loaded whole beside DeepSpeed ZeRO-3 here "
                f"({why or 'transformers keeps its DeepSpeed config elsewhere'}): it would be partitioned outside "
                f"the engine")
    return None


@contextlib.contextmanager
def whole_model_beside_zero3():
    """Models loaded inside are whole (not ZeRO-3 partitioned) even while a ZeRO-3 run is set up (see the module
    docstring). The caller checks :func:`whole_model_refusal` first."""
    if not zero3_init_active() or whole_model_refusal():
        yield
        return
    from transformers.integrations import deepspeed as hfds

    obj = hfds._hf_deepspeed_config_weak_ref()
    hfds.unset_hf_deepspeed_config()
    log.choice("reference model loaded whole beside ZeRO-3", "transformers would partition it with zero.Init, and "
               "it runs outside the DeepSpeed engine (compat.whole_model_beside_zero3)")
    try:
        yield
    finally:
        hfds.set_hf_deepspeed_config(obj)


# ---- bitsandbytes' dequantization kernels, called directly --------------------------------------------------------

BNB_NATIVE = ("bitsandbytes", "0.50.0", "0.51.0")  # tested: 0.50.2 on the H200 (fast_check: bit-identical)
_NATIVE: list = []


def bnb_native_dequant():
    """bitsandbytes' CUDA dequantization functions by name when they can be called directly (module docstring),
    else None (the reason logged once). Arguments, as bitsandbytes' CUDA backend passes them:
    ``(code, A, absmax, out, blocksize, n, stream)`` — pointers as ``ctypes.c_void_p``, sizes as ``c_int32``."""
    if _NATIVE:
        return _NATIVE[0]
    lib, why = None, outside(BNB_NATIVE)
    if why is None:
        try:
            import torch

            if not torch.cuda.is_available():
                why = "no CUDA device"
            else:
                from bitsandbytes.cextension import lib as bnb_lib

                raw = getattr(bnb_lib, "_lib", None)  # the ctypes CDLL (the wrapper answers any name)
                names = ["cdequantize_blockwise_fp32"] + [f"cdequantize_blockwise_{d}_{q}" for d in
                                                          ("bf16", "fp16", "fp32") for q in ("nf4", "fp4")]
                if raw is None or not getattr(bnb_lib, "compiled_with_cuda", False):
                    why = "bitsandbytes' native library is not its CUDA build"
                else:
                    missing = [n for n in names if getattr(raw, n, None) is None]
                    why = f"its native library has no {missing[0]}" if missing else None
                    lib = None if missing else {n: getattr(raw, n) for n in names}
        except Exception as e:  # noqa: BLE001 - any import problem: bitsandbytes' own ops
            why = f"bitsandbytes' native library did not load ({type(e).__name__})"
    if why:
        log.choice("nf4 dequantization=bitsandbytes ops", why)
    else:
        log.choice("nf4 dequantization=native kernels", "bitsandbytes' CUDA kernels called directly, one absmax "
                   "dequantization per layer (compat.bnb_native_dequant, fast/nf4.py)")
    _NATIVE.append(None if why else lib)
    return _NATIVE[0]
