"""Models: find (alias, folder, GGUF), load, choose precision."""

from tuneforge.models.load import (
    ALIASES, DEFAULT_MODEL, check_model, load_model, load_tokenizer, resolve_model_path,
)
from tuneforge.models.precision import resolve_precision

__all__ = ["ALIASES", "DEFAULT_MODEL", "check_model", "load_model", "load_tokenizer", "resolve_model_path",
           "resolve_precision"]
