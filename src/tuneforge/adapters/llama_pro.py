"""LLaMA Pro (block expansion, LLaMA-Factory's use_llama_pro): a model expanded by inserting a new decoder layer
after every block of original layers is tuned on the inserted layers only. With freeze_trainable_layers N over a
model of L layers, the trained layers are the last of each of the N blocks (L/N layers each), as LLaMA-Factory
picks them; freeze tunes those layers whole, lora puts its adapters there."""

from __future__ import annotations

from tuneforge.errors import ConfigError
from tuneforge.utils import log


def expanded_layers(num_layers: int, blocks: int) -> list[int]:
    if blocks <= 0 or num_layers % blocks != 0:
        raise ConfigError([f"use_llama_pro: the model's {num_layers} layers must split into freeze_trainable_layers="
                           f"{blocks} equal blocks (one inserted layer each); use a divisor of {num_layers}, e.g. "
                           f"{', '.join(str(d) for d in range(1, num_layers + 1) if num_layers % d == 0 and d < 9)}"])
    stride = num_layers // blocks
    layers = list(range(stride - 1, num_layers, stride))
    log.choice(f"use_llama_pro: training layers {layers}", f"the last layer of each of the {blocks} blocks of "
               f"{stride} (the layers a LLaMA Pro expansion inserted)")
    return layers
