"""Typical mistakes on the command line, each answered before torch or transformers is imported.

    python benchmarks/cli_mistakes.py [--model PATH]      # wall time of each answer, as a user sees it

Each case is a `tuneforge …` command with one mistake and a piece of its expected answer. The script runs each one as
a fresh process (`python -m tuneforge …`), times it, and checks the exit code (2), the answer, that no traceback is
printed and that torch/transformers were not imported (tests/test_cli_mistakes.py runs the same cases without the
timing). Files the cases need (a data folder with bad rows, a file where a folder should be) are made in a
temporary folder; the model is the embedded one's cache or --model (a local Hugging Face folder with
safetensors weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs the CLI, then says which heavy libraries were imported (for the checks; the answer is on stderr).
PROBE = ("import sys\nfrom tuneforge.cli import main\nrc = main(sys.argv[1:])\n"
         "print('IMPORTED', 'torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)\nsys.exit(rc)")


def cases(model: str, work: Path) -> list[tuple[str, list[str], str]]:
    """(name, argv, a piece of the expected answer)."""
    data = work / "data"
    data.mkdir(exist_ok=True)
    (data / "bad.json").write_text(json.dumps([{"instruction": "Hi", "output": "Hello"}, {"instruction": "Q"}]))
    (data / "two.json").write_text(json.dumps([{"instruction": "Hi", "output": "Hello"}]) * 2)
    (data / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": "bad.json"},
                                                        "two": {"file_name": "two.json"}}))
    (work / "dup.yaml").write_text(f"model_name_or_path: {model}\nlora_rank: 8\nlora_rank: 16\n")
    afile = work / "a-file"
    afile.write_text("not a folder")
    run = ["--model_name_or_path", model, "--dataset", "identity", "--output_dir", str(work / "out")]
    return [
        ("unknown key", ["train", *run, "--lora_rnak", "8"], "did you mean 'lora_rank'"),
        ("negative learning rate", ["train", *run, "--learning_rate", "-1"], "learning_rate must be > 0"),
        ("flag without its value", ["train", *run, "--learning_rate"], "given with no value"),
        ("qlora as a method", ["train", *run, "--finetuning_type", "qlora"], "--quantization_bit 4"),
        ("method typo", ["train", *run, "--finetuning_type", "lroa"], "did you mean 'lora'"),
        ("lora_target typo", ["train", *run, "--lora_target", "q_proj,vproj"], "did you mean 'v_proj'"),
        ("output_dir is a file", ["train", *run[:4], "--output_dir", str(afile)], "is a file, not a folder"),
        ("unknown dataset", ["train", *run[:2], "--dataset", "identiy", "--output_dir", str(work / "o")],
         "identiy"),
        ("bad data rows", ["train", *run[:2], "--dataset", "bad", "--dataset_dir", str(data), "--output_dir",
                           str(work / "o")], "bad row"),
        ("missing model folder", ["train", "--model_name_or_path", str(work / "nope"), *run[2:]], "nope"),
        ("unknown template", ["train", *run, "--template", "chatmll"], "chatmll"),
        ("bf16 and fp16", ["train", *run, "--bf16", "True", "--fp16", "True"], "bf16 and fp16"),
        ("missing config file", ["train", str(work / "missing.yaml")], "missing.yaml"),
        ("export without export_dir", ["export", "--model_name_or_path", model], "export_dir is required"),
        ("export_dir is a file", ["export", "--model_name_or_path", model, "--export_dir", str(afile)],
         "is a file, not a folder"),
        ("chat with a training key", ["chat", "--model_name_or_path", model, "--learning_rate", "1"],
         "chat does not take it"),
        ("chat with a missing adapter", ["chat", "--model_name_or_path", model, "--adapter_name_or_path",
                                         str(work / "no-adapter")], "no-adapter"),
        ("unknown command", ["trian"], "did you mean 'train'"),
        ("infinite epochs", ["train", *run, "--num_train_epochs", "inf"], "expected a finite number"),
        ("negative seed", ["train", *run, "--seed", "-5"], "seed must be in"),
        ("duplicated YAML key", ["train", str(work / "dup.yaml")], "'lora_rank' is set twice"),
        ("two JSON arrays in one file", ["train", *run[:2], "--dataset", "two", "--dataset_dir", str(data),
                                         "--output_dir", str(work / "o")], "text after the end of the JSON array"),
    ]


def run_case(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "TUNEFORGE_LANG": "en"}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=120)
    return r, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv, want in cases(args.model, Path(tmp)):
            r, secs = run_case(argv, Path(tmp))
            imported = r.stderr.rsplit("IMPORTED", 1)[-1].split()
            ok = r.returncode == 2 and want in r.stderr and "Traceback" not in r.stderr and imported == ["False",
                                                                                                          "False"]
            worst = max(worst, secs)
            print(f"{secs:6.2f} s  {'ok ' if ok else 'BAD'}  {name}")
    print(f"slowest answer: {worst:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
