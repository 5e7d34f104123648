"""Write a standalone model folder: sharded safetensors, tokenizer with its chat template, a generation config whose
eos ids stop at the end of a reply, and an Ollama ``Modelfile``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from tuneforge.utils import log

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# Ollama's Go-template form of ChatML (<|im_start|>role\n…<|im_end|>), the format of Qwen, SmolLM2, Hermes, …
CHATML_GO = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def stop_token_ids(tokenizer, stops: list[str]) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids |= {vocab[s] for s in stops if s in vocab}
    return sorted(ids)


def modelfile(tokenizer, stops: list[str], name: str) -> str:
    lines = [f"# Ollama: ollama create {name} -f Modelfile   (run in this folder)",
             "# Ollama imports the safetensors weights in this folder (supported architectures: Llama, Mistral, "
             "Gemma, Phi3, Qwen2, …).", "FROM ."]
    template = getattr(tokenizer, "chat_template", None) or ""
    if "<|im_start|>" in template:
        lines.append(f'TEMPLATE """{CHATML_GO}"""')
    else:
        lines.append("# TEMPLATE: Ollama derives it from chat_template in tokenizer_config.json/chat_template.jinja")
    for s in stops:
        lines.append(f'PARAMETER stop "{s}"')
    return "\n".join(lines) + "\n"


def write_export(model: torch.nn.Module, tokenizer, stops: list[str], export_dir: str | Path, size_gb: float,
                 dtype_name: str) -> Path:
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
        (tmp / "Modelfile").write_text(modelfile(tokenizer, stops, dest.name.lower()), encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shards = sorted(p.name for p in dest.glob("*.safetensors"))
    log.info(f"exported {dest}: {len(shards)} safetensors shard(s) of ≤ {size_gb:g} GB, dtype {dtype_name}, tokenizer with "
             f"chat template, generation_config.json (eos ids {gen.eos_token_id}), Modelfile")
    return dest
