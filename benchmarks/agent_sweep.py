"""A search over agent-data variants and training settings for examples/agent_lora.yaml, on one GPU in float32 (the
CPU's arithmetic, so a winner carries over to the CPU run that tests/test_e2e_agent.py does), several runs at once.

Each variant = keyword arguments of scripts/make_agent_data.make_train (the data) + `key=value` overrides of
examples/agent_lora.yaml (the training). Each is trained through `tuneforge train` and scored on the held-out sets
as benchmarks/agent_demo.py does (calls right, chit-chat without a call, the base model's right general answers
kept), and on the second held-out call set (tests/data/agent_heldout_b.json), which no recipe choice was made on.

    python benchmarks/agent_sweep.py --variants benchmarks/agent_sweep_variants.json --out /tmp/sweep --parallel 4
    python benchmarks/agent_sweep.py --variants v.json --out /tmp/sweep --only a,b   # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "scripts"))


def general_ok(engine) -> list[bool]:
    from tuneforge.config.schema import GenerateArgs
    from tuneforge.eval.identity import correct

    general = json.loads((DATA / "general_heldout.json").read_text(encoding="utf-8"))
    qs = [[{"role": "user", "content": g["question"]}] for g in general]
    answers = engine.generate(qs, GenerateArgs(max_new_tokens=40), batch_size=25)
    return [correct(a, g["answers"]) for a, g in zip(answers, general)]


def engine_for(run_dir: Path | None, device: str):
    from tuneforge.infer.engine import ChatEngine

    if run_dir is None:
        return ChatEngine("smollm2-135m-instruct", template="smollm2", device=device, dtype="float32")
    return ChatEngine("smollm2-135m-instruct", str(run_dir), device=device, dtype="float32")


def run_base(out: Path, device: str) -> None:
    from tuneforge.eval import agent

    e = engine_for(None, device)
    held = agent.AgentHeldOut.load(DATA / "agent_heldout.json")
    rep, free = agent.evaluate(e, held), agent.evaluate(e, held, guided=False)
    held_b = agent.AgentHeldOut.load(DATA / "agent_heldout_b.json")
    (out / "base.json").write_text(json.dumps({"report": rep.to_dict(), "report_free": free.to_dict(),
                                               "report_b": agent.evaluate(e, held_b).to_dict(),
                                               "general_ok": general_ok(e)}))


def run_one(name: str, spec: dict, out: Path, device: str) -> None:
    import make_agent_data

    from tuneforge.eval import agent

    d = out / name
    (d / "data").mkdir(parents=True, exist_ok=True)
    rows = make_agent_data.make_train(**spec.get("data", {}))
    (d / "data" / "agent_v.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    info = json.loads((ROOT / "src/tuneforge/data/builtin/dataset_info.json").read_text())["agent_demo"]
    (d / "data" / "dataset_info.json").write_text(json.dumps({"agent_v": {**info, "file_name": "agent_v.json"}}))
    replay = spec.get("replay", True)
    overrides = {"output_dir": str(d / "run"), "dataset_dir": str(d / "data"),
                 "dataset": "agent_v,general_replay_smollm2" if replay else "agent_v",
                 "forgetting_guard": "False", "bf16": "False", "fast_path": "False", "plot_loss": "False",
                 **spec.get("train", {})}
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "tuneforge", "train", str(ROOT / "examples/agent_lora.yaml")]
                       + [f"{k}={v}" for k, v in overrides.items()], capture_output=True, text=True)
    (d / "train.log").write_text(r.stdout[-20000:] + r.stderr[-20000:])
    res = {"name": name, "spec": spec, "rows": len(rows), "train_rc": r.returncode,
           "train_s": round(time.time() - t0, 1)}
    if r.returncode == 0:
        summary = json.loads((d / "run" / "run_summary.json").read_text())
        res.update(tokens=summary.get("tokens"), steps=summary.get("steps"), final_loss=summary.get("final_loss"))
        e = engine_for(d / "run", device)
        held = agent.AgentHeldOut.load(DATA / "agent_heldout.json")
        rep = agent.evaluate(e, held)
        free = rep if os.environ.get("AGENT_SWEEP_GUIDED_ONLY") else agent.evaluate(e, held, guided=False)
        res.update(report=rep.to_dict(), report_free=free.to_dict(), general_ok=general_ok(e))
        if (DATA / "agent_heldout_b.json").exists():  # the second held-out set: calls only, guided
            res.update(report_b=agent.evaluate(e, agent.AgentHeldOut.load(DATA / "agent_heldout_b.json")).to_dict())
    (d / "result.json").write_text(json.dumps(res, ensure_ascii=False))


def table(out: Path) -> str:
    base = json.loads((out / "base.json").read_text()) if (out / "base.json").exists() else None
    lines = ["| variant | rows | tokens | steps | loss | calls right (guided) | chit-chat plain (guided) | calls right "
             "(free) | chit-chat plain (free) | general kept | parse errors (free) | train s | calls right, set B "
             "(guided) |", "|" + " --- |" * 13]
    for f in sorted(out.glob("*/result.json")):
        r = json.loads(f.read_text())
        if "report" not in r:
            lines.append(f"| {r['name']} | {r['rows']} | train failed (rc {r['train_rc']}) |")
            continue
        t = r["report"]
        kept = "?"
        if base:
            bo = [i for i, ok in enumerate(base["general_ok"]) if ok]
            kept = f"{sum(1 for i in bo if r['general_ok'][i])}/{len(bo)}"
        f = r["report_free"]
        b = f"{r['report_b']['calls_right']}/{r['report_b']['calls_asked']}" if "report_b" in r else "-"
        lines.append(f"| {r['name']} | {r['rows']} | {r.get('tokens')} | {r.get('steps')} | "
                     f"{r.get('final_loss'):.3f} | "
                     f"{t['calls_right']}/{t['calls_asked']} | {t['chat_plain']}/{t['chat_asked']} | "
                     f"{f['calls_right']}/{f['calls_asked']} | {f['chat_plain']}/{f['chat_asked']} | {kept} | "
                     f"{f['parse_errors']} | {r['train_s']} | {b} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--only", default="")
    ap.add_argument("--device", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--budget_s", type=float, default=1e9, help="start no variant after this many seconds")
    ap.add_argument("--no_base", action="store_true", help="do not score the base model (a base.json from an "
                    "earlier sweep can be copied into --out for the table's 'general kept' column)")
    ap.add_argument("--guided_only", action="store_true", help="skip the free-decoding scores (the table repeats "
                    "the guided ones in the free columns)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = json.loads(Path(a.variants).read_text())
    device = a.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    if a.one == "__base__":
        return run_base(out, device)
    if a.one:
        return run_one(a.one, variants[a.one], out, device)
    names = [n for n in variants if not a.only or n in a.only.split(",")]
    queue = ([] if a.no_base else ["__base__"]) + names
    if a.guided_only:
        os.environ["AGENT_SWEEP_GUIDED_ONLY"] = "1"
    running: list[tuple[str, subprocess.Popen, float]] = []
    t0 = time.time()
    while queue or running:
        while queue and len(running) < a.parallel and time.time() - t0 < a.budget_s:
            n = queue.pop(0)
            cmd = [sys.executable, __file__, "--variants", a.variants, "--out", str(out), "--one", n, "--device", device]
            running.append((n, subprocess.Popen(cmd, stdout=open(out / f"{n}.out", "w"), stderr=subprocess.STDOUT),
                            time.time()))
        if queue and time.time() - t0 >= a.budget_s:
            print(f"budget spent: not started {queue}", flush=True)
            queue = []
        for item in list(running):
            n, p, ts = item
            if p.poll() is not None:
                running.remove(item)
                print(f"{n}: rc {p.returncode} in {time.time() - ts:.0f}s (t={time.time() - t0:.0f}s)", flush=True)
        time.sleep(1)
    print(table(out))
    (out / "table.md").write_text(table(out) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
