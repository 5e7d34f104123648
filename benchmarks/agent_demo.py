"""Base vs tuned on the agent demo (examples/agent_lora.yaml), the table in docs/benchmarks.md.

    python benchmarks/agent_demo.py                     # trains examples/agent_lora.yaml into a temp folder first
    python benchmarks/agent_demo.py --run_dir saves/agent-lora     # scores an existing run

Held-out sets (tests/data/agent_heldout.json, written by scripts/make_agent_data.py): requests for tools the training
set never showed (call accuracy: right function and arguments), chit-chat with tools offered (no call), and the
held-out general questions without tools (tests/data/general_heldout.json: of the base model's correct answers, the
share the tuned model keeps). Both models are asked with the same template (smollm2), greedy; tool requests twice:
with schema-guided calls (the default of chat, eval and the API) and with the model's free text.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def measure(run_dir: Path) -> dict:
    from tuneforge.eval import agent
    from tuneforge.eval.identity import correct
    from tuneforge.infer.engine import ChatEngine

    held = agent.AgentHeldOut.load(DATA / "agent_heldout.json")
    general = json.loads((DATA / "general_heldout.json").read_text(encoding="utf-8"))
    qs = [[{"role": "user", "content": g["question"]}] for g in general]
    from tuneforge.config.schema import GenerateArgs

    out = {}
    for label, engine in (("base", lambda: ChatEngine("smollm2-135m-instruct", template="smollm2")),
                          ("tuned", lambda: ChatEngine("smollm2-135m-instruct", str(run_dir)))):
        e = engine()
        rep, free = agent.evaluate(e, held), agent.evaluate(e, held, guided=False)
        answers = e.generate(qs, GenerateArgs(max_new_tokens=40), batch_size=25)
        out[label] = {"report": rep.to_dict(), "report_free": free.to_dict(), "general": answers,
                      "general_ok": [correct(a, g["answers"]) for a, g in zip(answers, general)]}
        print(label, "guided:", rep.line(), "| free:", free.line(), flush=True)
    base_ok = [i for i, ok in enumerate(out["base"]["general_ok"]) if ok]
    kept = [i for i in base_ok if out["tuned"]["general_ok"][i]]
    out["retention"] = {"base_correct": len(base_ok), "kept": len(kept),
                        "rate": len(kept) / len(base_ok) if base_ok else None,
                        "forgotten": [{"question": general[i]["question"], "base": out["base"]["general"][i],
                                       "tuned": out["tuned"]["general"][i]} for i in base_ok if i not in kept]}
    return out


def table(out: dict) -> str:
    b, t = out["base"]["report"], out["tuned"]["report"]
    bf, tf = out["base"]["report_free"], out["tuned"]["report_free"]
    r = out["retention"]

    def frac(x, key, total, rate=None):
        return f"{x[key]}/{x[total]}" + (f" ({100 * x[rate]:.0f}%)" if rate else "")

    rows = ["| | base SmolLM2-135M-Instruct | tuned (agent_lora.yaml) |", "| --- | --- | --- |",
            f"| held-out tool calls right (function + arguments), guided | {frac(b, 'calls_right', 'calls_asked')} | "
            f"{frac(t, 'calls_right', 'calls_asked', 'call_accuracy')} |",
            f"| same, free decoding | {frac(bf, 'calls_right', 'calls_asked')} | "
            f"{frac(tf, 'calls_right', 'calls_asked', 'call_accuracy')} |",
            f"| held-out chit-chat answered without a call, guided | {frac(b, 'chat_plain', 'chat_asked')} | "
            f"{frac(t, 'chat_plain', 'chat_asked', 'no_call_rate')} |",
            f"| same, free decoding | {frac(bf, 'chat_plain', 'chat_asked')} | "
            f"{frac(tf, 'chat_plain', 'chat_asked', 'no_call_rate')} |",
            f"| replies with a tool call that does not parse (guided / free) | {b['parse_errors']} / "
            f"{bf['parse_errors']} | {t['parse_errors']} / {tf['parse_errors']} |",
            f"| general questions answered right (no tools) | {r['base_correct']}/50 | "
            f"{sum(out['tuned']['general_ok'])}/50; {r['kept']}/{r['base_correct']} of the base's kept "
            f"({100 * (r['rate'] or 0):.0f}%) |"]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run_dir")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/agent_demo.json"))
    args = ap.parse_args()
    t0 = time.time()
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp()) / "agent"
    if not args.run_dir:
        subprocess.run([sys.executable, "-m", "tuneforge", "train", str(ROOT / "examples/agent_lora.yaml"),
                        f"output_dir={run_dir}"], check=True)
    train_s = time.time() - t0
    out = measure(run_dir)
    out["train_s"] = round(train_s, 1)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    print(table(out))
    print(f"train {train_s:.0f} s, total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
