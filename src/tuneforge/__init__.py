"""tuneforge: fine-tune open language models with one resolved config, one recipe, one run folder."""

__version__ = "0.1.0"
