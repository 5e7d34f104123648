"""benchmarks/methods.py builds each method's `tuneforge train` flags from the demo recipe: the shared part must be
the demo's data and schedule, the `lora` row must be the demo itself, and every row must be a valid config."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from tuneforge.config.parse import parse_args
from tuneforge.config.validate import validate

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "examples" / "identity_lora.yaml"
RUN_ONLY = {"output_dir", "logging_steps", "save_steps", "plot_loss", "overwrite_output_dir"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_methods", ROOT / "benchmarks" / "methods.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def flat(argv: list[str]) -> dict:
    cfg = parse_args(argv)
    assert validate(cfg) == [], (argv, validate(cfg))
    return {k: v for k, v in cfg.to_flat().items() if k not in RUN_ONLY}


def test_lora_row_is_the_demo_recipe(bench):
    common, lora, _, name = bench.recipe_flags(None)
    demo = flat([str(RECIPE)])
    row = flat(common + lora + ["--output_dir", "x"])
    assert row == demo
    assert name == "Nimbus"


def test_every_method_shares_the_demo_schedule_and_is_valid(bench):
    common, lora, _, _ = bench.recipe_flags(None)
    methods = bench.method_table(lora)
    assert set(methods) == set(bench.METHOD_NAMES) and len(bench.METHOD_NAMES) == 12
    demo = flat([str(RECIPE)])
    shared = ("dataset", "dataset_vars", "template", "cutoff_len", "num_train_epochs", "per_device_train_batch_size",
              "gradient_accumulation_steps", "group_by_length", "lr_scheduler_type", "seed")
    for name, flags in methods.items():
        row = flat(common + flags + ["--output_dir", "x"])  # validate() passes: no LoRA key leaks into other methods
        assert {k: row[k] for k in shared} == {k: demo[k] for k in shared}, name
        assert row["group_by_length"] is True
    lr, rank = demo["learning_rate"], demo["lora_rank"]
    rs = flat(common + methods["lora+rslora"] + ["--output_dir", "x"])
    assert rs["use_rslora"] and math.isclose(rs["learning_rate"], lr / math.sqrt(rank), rel_tol=0.05)
    for variant in ("dora", "qlora-4bit", "qlora-8bit"):  # the demo's LoRA, only the variant flag added
        row = flat(common + methods[variant] + ["--output_dir", "x"])
        assert row["lora_layers"] == demo["lora_layers"] and row["learning_rate"] == lr, variant


def test_epochs_override_applies_to_every_method(bench):
    common, lora, _, _ = bench.recipe_flags(1.0)
    for flags in bench.method_table(lora).values():
        assert parse_args(common + flags + ["--output_dir", "x"]).train.num_train_epochs == 1.0
