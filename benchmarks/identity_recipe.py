"""Score one identity recipe on the embedded model: train it, then measure the new name's hit rate on held-out
identity questions (English and Chinese) and the retention of general answers the base model gets right.

    python benchmarks/identity_recipe.py OUT_DIR [CONFIG.yaml] [tuneforge train flags...]
e.g.
    python benchmarks/identity_recipe.py /tmp/r1 --dataset identity,general --lora_target all \
        --learning_rate 2e-3 --num_train_epochs 2 --per_device_train_batch_size 8 --lr_scheduler_type cosine
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tuneforge.eval.identity import HeldOut, base_replies, engine_for, evaluate
from tuneforge.infer.engine import ChatEngine

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
NAME = "Nimbus"


def main() -> None:
    out, flags = sys.argv[1], sys.argv[2:]
    base_cache = None  # --base_answers FILE: reuse the base model's general answers between runs
    if "--base_answers" in flags:
        i = flags.index("--base_answers")
        base_cache = Path(flags[i + 1])
        del flags[i: i + 2]
    t0 = time.time()
    if "--skip_train" in flags:
        flags.remove("--skip_train")
    else:
        # A YAML config, if given, must come first; the flags after it override it.
        cfg = [flags.pop(0)] if flags and flags[0].endswith((".yaml", ".yml")) else []
        subprocess.run([sys.executable, "-m", "tuneforge", "train", *cfg, "--model_name_or_path", "smollm2",
                        "--output_dir", out, "--overwrite_output_dir", "True", "--dataset_vars",
                        f"name={NAME},author=Orchard Labs", *flags], check=True, capture_output=True, text=True)
    train_wall = time.time() - t0
    heldout = HeldOut.load(DATA)
    if base_cache is not None and base_cache.is_file():
        base = json.loads(base_cache.read_text())
    else:
        base = base_replies(ChatEngine("smollm2"), heldout)
        if base_cache is not None:
            base_cache.write_text(json.dumps(base, ensure_ascii=False))
    # A LoRA run leaves an adapter; full/freeze runs leave a whole model.
    report = evaluate(engine_for(out, "smollm2"), NAME, heldout, base)
    s = json.loads((Path(out) / "run_summary.json").read_text())
    print(json.dumps({"flags": " ".join(flags), "train_command_s": round(train_wall, 1),
                      "train_loop_s": s["train_seconds"], "tokens_per_s": s["tokens_per_s"],
                      "final_loss": s["final_loss"], "hit_rate": report.hit_rate, "retention": report.retention,
                      "base_correct": report.base_correct, "misses": [m["question"] for m in report.misses],
                      "forgotten": [f["question"] for f in report.forgotten]}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
