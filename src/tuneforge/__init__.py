"""tuneforge: fine-tune open language models with one resolved config, one recipe, one run folder."""

__version__ = "0.1.0"

# The composition root: the fine-tuning methods, preference losses and stages register their records and option
# groups (config.registry, config.schema) as peft's tuners do, so that every config parsed anywhere knows all of
# them. Torch-free.
from tuneforge import adapters as _adapters, recipes as _recipes  # noqa: E402,F401
