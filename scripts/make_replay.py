"""Write a replay set: the general prompts of the built-in `general` set answered by a model itself (greedy).

Mixing a model's own answers into a small fine-tuning run anchors its general behaviour (self-distillation /
replay): the hand-written `general` answers teach a new, terser style as a side effect, the model's own do not.

    python scripts/make_replay.py smollm2-135m-instruct src/tuneforge/data/builtin/general_replay_smollm2.json
    python scripts/make_replay.py smollm2-135m-instruct OUT.json 4    # answered by the 4-bit NF4 base (QLoRA)

With a third argument (4 or 8) the answers come from the base quantized the way `quantization_bit` 4 (NF4, double
quantization) or 8 loads it in training, so a QLoRA adapter replays the answers of the model it is trained on (tried
for the 4-bit identity demo in session 4: no better than the full-precision replay, docs/benchmarks.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tuneforge.config.schema import GenerateArgs
from tuneforge.data.catalog import load_catalog
from tuneforge.infer.engine import ChatEngine
from tuneforge.models.quantization import quantization_config


def main() -> None:
    model, out = sys.argv[1], Path(sys.argv[2])
    bits = int(sys.argv[3]) if len(sys.argv) > 3 else None
    rows = json.loads(load_catalog(None)["general"].path.read_text(encoding="utf-8"))
    quant = quantization_config(bits, "nf4", True, torch.float32) if bits else None
    engine = ChatEngine(model, quantization=quant)
    prompts = [r["instruction"] + (("\n" + r["input"]) if r.get("input") else "") for r in rows]
    replies = engine.generate([[{"role": "user", "content": p}] for p in prompts], GenerateArgs(max_new_tokens=64),
                              batch_size=20)
    kept = []
    for p, r in zip(prompts, replies):
        # A reply cut off by max_new_tokens is trimmed to its last full sentence, so no row teaches stopping
        # mid-sentence.
        if not r.endswith((".", "!", "?", "。", "！", "？")):
            cut = max(r.rfind(s) for s in (". ", "! ", "? ", "。"))
            r = r[: cut + 1] if cut > 0 else ""
        if r.strip():
            kept.append({"instruction": p, "input": "", "output": r.strip()})
    out.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(kept)} of {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
