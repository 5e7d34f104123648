"""Identity demo variants side by side: retention (the forgetting guard's, from run_summary.json) and identity hit
rate (45 held-out identity questions, tests/data/identity_heldout.json, asked to the saved adapter).

    python benchmarks/replay_compare.py OUT [--variants none,general,replay_file,replay_ratio] [--json out.json]

Every variant trains examples/identity_lora.yaml with its dataset line replaced:
  none          dataset identity
  general       dataset identity,general          (the hand-written answers of the general prompts)
  replay_file   dataset identity,general_replay_smollm2   (those prompts answered by SmolLM2 itself, a file)
  replay_ratio  dataset identity, replay_ratio 0.54        (the same prompts answered by the base at run time,
                                                            cached: replay for any model; 0.54 × 93 ≈ 50 rows)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "none": ["--dataset", "identity"],
    "general": ["--dataset", "identity,general"],
    "replay_file": ["--dataset", "identity,general_replay_smollm2"],
    "replay_ratio": ["--dataset", "identity", "--replay_ratio", "0.54"],
}


def hit_rate(run: Path) -> dict:
    from tuneforge.eval.identity import HeldOut, evaluate
    from tuneforge.infer.engine import ChatEngine

    held = HeldOut.load(ROOT / "tests" / "data")
    rep = evaluate(ChatEngine("smollm2-135m-instruct", str(run)), "Nimbus", HeldOut(held.identity, []))
    return {"hits": rep.hits, "asked": rep.asked}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--json")
    a, extra = ap.parse_known_args()  # more flags for every run, e.g. --learning_rate 2e-3
    a.extra = extra
    rows = {}
    for name in a.variants.split(","):
        run = Path(a.out) / name
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "tuneforge", "train", str(ROOT / "examples" / "identity_lora.yaml"),
                        *VARIANTS[name], *a.extra, "--output_dir", str(run), "--sample_prompts", ""],
                       check=True)
        s = json.loads((run / "run_summary.json").read_text())
        f = s["forgetting_guard"]
        rows[name] = {"flags": " ".join(VARIANTS[name] + a.extra), "samples": s["data"]["train"]["samples"]
                      + s["data"].get("replay", {}).get("mixed", 0), "train_seconds": s["train_seconds"],
                      "wall_seconds": round(time.time() - t0, 1), "kept": f["kept"], "base_correct": f["base_correct"],
                      "retention": f["retention"], "lost": [x["question"] for x in f["lost"]],
                      "guard_tuned_seconds": f["tuned_seconds"], **hit_rate(run)}
        print(json.dumps({name: rows[name]}, ensure_ascii=False), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
