"""Compare `tuneforge estimate` with the peaks measured by benchmarks/gpu_bench.py.

  python benchmarks/estimate_check.py benchmarks/results/gpu_h200_final2.json benchmarks/results/gpu_h200_more.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gpu_bench import DEFAULTS, SHAPES  # noqa: E402

from tuneforge.estimate import Plan, Shape, estimate  # noqa: E402


def shape_of(name: str) -> Shape:
    cfg = dict(SHAPES[name])
    return Shape.from_config(cfg)


def plan_of(spec: dict) -> Plan:
    spec = {**DEFAULTS, **spec}
    method = f"qlora{spec['quant']}" if spec.get("quant") else spec["method"]
    return Plan(method=method, batch=spec["batch"], seq=spec["seq"], packing=spec["packing"],
                gradient_checkpointing=spec["gc"], offload=spec["offload"], liger=spec["liger"], optim=spec["optim"],
                settings={"lora_rank": spec["rank"], "lora_target": "all"} if spec["method"] == "lora" else {},
                supervised_fraction=0.55,
                offload_embedding=spec.get("offload_embedding"))


def main(paths: list[str]) -> int:
    rows = []
    for p in paths:
        for r in json.loads(Path(p).read_text()):
            if "peak_allocated_gib" not in r:
                continue
            if r["spec"].get("impl") != "tuneforge":
                continue
            e = estimate(shape_of(r["spec"].get("model", "llama8b")), plan_of(r["spec"]))
            err = (e.allocated - r["peak_allocated_gib"]) / r["peak_allocated_gib"]
            rows.append((r["spec"]["name"], Path(p).name, r["peak_allocated_gib"], round(e.allocated, 2),
                         round(100 * err, 1), r["peak_reserved_gib"], round(e.total, 2)))
    print("| config | results file | measured allocated GiB | estimated allocated GiB | error % | measured reserved "
          "GiB | estimated total GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
