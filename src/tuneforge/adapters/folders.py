"""Adapter folders (peft's ``adapter_config.json`` + weights) of any method: check, identify, load, merge.

Which method wrote a folder comes from its ``peft_type``, looked up in the method records (``config.registry``), so
loading and merging never name a method: a record that does not merge (prompt-based methods) says why.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.compat import quiet_peft
from tuneforge.config.messages import Msg
from tuneforge.config.registry import Method, for_peft_type
from tuneforge.errors import ModelError
from tuneforge.models.inspect import pickle_only
from tuneforge.utils import log


def split_list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def check_adapter_dir(path: str) -> str | None:
    p = Path(path)
    if not p.is_dir():
        return Msg("adapter_missing", path=path)
    if not (p / "adapter_config.json").is_file():
        return Msg("adapter_no_config", path=path)
    return pickle_only(p, "adapter_model.safetensors")



def adapter_peft_type(path: str | Path) -> str | None:
    """The peft_type in an adapter folder's adapter_config.json (None if unreadable)."""
    try:
        return json.loads((Path(path) / "adapter_config.json").read_text()).get("peft_type")
    except (OSError, ValueError):
        return None


def method_of_adapter(path: str | Path) -> Method | None:
    """The record of the method that wrote the adapter folder at ``path`` (None: unknown or unreadable)."""
    return for_peft_type(adapter_peft_type(path))


def merge_refusal(path: str, method: Method) -> tuple[Msg, Msg]:
    """(message, hint) for trying to merge an adapter of a method that cannot be merged."""
    return method.merge_refusal(path)


@quiet_peft()
def load_adapters(model, paths: list[str], trainable: bool):
    """Apply adapters in order. All but the last are merged into the base; the last stays a live adapter
    (trainable when ``trainable``)."""
    from peft import PeftModel

    for i, path in enumerate(paths):
        problem = check_adapter_dir(path)
        if problem:
            raise ModelError(problem, Msg("adapter_dir_fix"))
        last = i == len(paths) - 1
        method = method_of_adapter(path)
        if not last and method is not None and not method.merges:
            msg, _ = merge_refusal(path, method)
            raise ModelError(Msg("adapter_not_last", reason=msg), Msg("adapter_not_last_fix"))
        model = PeftModel.from_pretrained(model, path, is_trainable=trainable and last)
        if not last:
            model = model.merge_and_unload()
            log.info(f"merged adapter {path} into the base")
    return model


def merge_adapters(model, paths: list[str]):
    """Merge adapters into ``model``, in order, and return the plain model; refused for a method that cannot merge."""
    for p in paths:
        method = method_of_adapter(p)
        if method is not None and not method.merges:
            raise ModelError(*merge_refusal(p, method))
    if not paths:
        return model
    model = load_adapters(model, paths, trainable=False).merge_and_unload()
    log.info(f"merged adapter {paths[-1]} into the base")
    return model


@quiet_peft()
def load_named_adapters(model, named: dict[str, str]):
    """Serve several adapters on one base at once (``tuneforge api --lora_modules``): each folder loaded under its
    name, unmerged; pick one per forward with :func:`use_adapter`. Methods that cannot be merged (prompt-based) are
    refused: their decoding cannot be switched per batch."""
    from peft import PeftModel

    for name, path in named.items():
        problem = check_adapter_dir(path)
        if problem:
            raise ModelError(problem, Msg("adapter_dir_fix"))
        method = method_of_adapter(path)
        if method is not None and not method.merges:
            raise ModelError(f"--lora_modules {name}={path}: a {method.name} adapter cannot be served next to others",
                             "serve it alone with --adapter_name_or_path")
        if isinstance(model, PeftModel):
            model.load_adapter(path, adapter_name=name, is_trainable=False)
        else:
            model = PeftModel.from_pretrained(model, path, adapter_name=name, is_trainable=False)
        log.info(f"serving adapter {name} from {path}")
    return model.eval()


def use_adapter(model, name: str | None):
    """A context in which ``model`` (from :func:`load_named_adapters`) runs adapter ``name``, or the base alone."""
    import contextlib

    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return contextlib.nullcontext()
    if name is None:
        return model.disable_adapter()
    model.set_adapter(name)
    return contextlib.nullcontext()
