"""Score one QLoRA (4-bit) identity adapter three ways: the bare 4-bit base, the adapter on the 4-bit base, and the
adapter on the full-precision base (what `tuneforge export` merges). Retention is against the full-precision base.

    python benchmarks/qlora_bases.py ADAPTER_DIR [BASE_REPLIES_JSON]

BASE_REPLIES_JSON: the cache benchmarks/methods.py writes (OUT/base_replies.json); computed when not given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tuneforge.eval.identity import HeldOut, base_replies, evaluate, score
from tuneforge.infer.engine import ChatEngine
from tuneforge.models.quantization import quantization_config

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
MODEL, NAME = "smollm2-135m-instruct", "Nimbus"


def main() -> None:
    adapter = sys.argv[1]
    held = HeldOut.load(DATA)
    base = (json.loads(Path(sys.argv[2]).read_text())["replies"] if len(sys.argv) > 2
            else base_replies(ChatEngine(MODEL), held))
    q4 = quantization_config(4, "nf4", True, torch.float32)
    base4 = base_replies(ChatEngine(MODEL, quantization=q4), held)
    print("4-bit base, no adapter:", score(NAME, [], [], held.general, base, base4).line())
    print("adapter on the 4-bit base:", evaluate(ChatEngine(MODEL, adapter, quantization=q4), NAME, held, base).line())
    print("  against the 4-bit base's own answers:",
          evaluate(ChatEngine(MODEL, adapter, quantization=q4), NAME, held, base4).line())
    print("adapter on the full-precision base:", evaluate(ChatEngine(MODEL, adapter), NAME, held, base).line())


if __name__ == "__main__":
    main()
