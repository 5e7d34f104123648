"""Write a standalone model folder: sharded safetensors, tokenizer with its chat template, a generation config whose
eos ids stop at the end of a reply, and an Ollama ``Modelfile``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from tuneforge.compat import ordinary_modes
from tuneforge.models.ollama import add_bos_token, modelfile
from tuneforge.utils import log

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def stop_token_ids(tokenizer, stops: list[str]) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids |= {vocab[s] for s in stops if s in vocab}
    return sorted(ids)


def write_export(model: torch.nn.Module, tokenizer, stops: list[str], export_dir: str | Path, size_gb: float,
                 dtype_name: str, card: str | None = None) -> Path:
    """Write everything under a temporary name and rename it into place, so ``export_dir`` is always whole."""
    dest = Path(export_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        model = model.to(DTYPES[dtype_name])
        model.config.use_cache = True
        gen = model.generation_config
        gen.eos_token_id = stop_token_ids(tokenizer, stops) or gen.eos_token_id
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        shard = max(1, int(size_gb * 1e9))  # bytes
        model.save_pretrained(tmp, max_shard_size=shard, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        text, no_template = modelfile(tokenizer, stops, dest.name.lower(), add_bos_token(tmp))
        (tmp / "Modelfile").write_text(text, encoding="utf-8")
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        if no_template:
            log.warn(f"Modelfile without TEMPLATE: {no_template}")
        ordinary_modes(tmp, include_folder=True)  # mkdtemp's 0700 and safetensors' 0600 (compat.py)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shards = sorted(p.name for p in dest.glob("*.safetensors"))
    log.info(f"exported {dest}: {len(shards)} safetensors shard(s) of ≤ {size_gb:g} GB, dtype {dtype_name}, tokenizer with "
             f"chat template, generation_config.json (eos ids {gen.eos_token_id}), Modelfile")
    return dest
