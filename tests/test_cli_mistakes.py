"""Typical command-line mistakes are answered before torch or transformers is imported (so in about a second, not
the 25-40 s the imports take), with the real problem named, exit code 2 and no traceback. The cases and their
timing live in benchmarks/cli_mistakes.py (timings: docs/benchmarks.md, "CLI answers")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("cli_mistakes", ROOT / "benchmarks" / "cli_mistakes.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("mistakes")


NAMES = ["unknown key", "negative learning rate", "flag without its value", "qlora as a method", "method typo",
         "lora_target typo", "output_dir is a file", "unknown dataset", "bad data rows", "missing model folder",
         "unknown template", "bf16 and fp16", "missing config file", "export without export_dir",
         "export_dir is a file", "chat with a training key", "chat with a missing adapter", "unknown command",
         "infinite epochs", "negative seed", "duplicated YAML key", "two JSON arrays in one file"]


@pytest.mark.parametrize("name", NAMES)
def test_mistake_answered_before_heavy_imports(name, tiny_model, work):
    cases = {c[0]: c for c in bench.cases(str(tiny_model), work)}
    assert sorted(cases) == sorted(NAMES)  # the benchmark's list and this one stay the same
    _, argv, want = cases[name]
    r, _ = bench.run_case(argv, work)
    assert r.returncode == 2, (name, r.stderr)
    assert want in r.stderr, (name, r.stderr)
    assert "Traceback" not in r.stderr, (name, r.stderr)
    assert r.stderr.rsplit("IMPORTED", 1)[-1].split() == ["False", "False"], f"{name}: torch/transformers imported"
