"""The equal-work benchmark's data (benchmarks/gpu_bench.py): fixed rows are exactly `seq` supervised tokens, and the
CLI rows' pt dataset turns into full `seq`-token blocks through tuneforge's own encoder — so the CLI trains the same
tokens per step as the harness; the bench YAMLs are valid configs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fixed_rows_are_full_and_fully_supervised(bench):
    rows = bench.make_fixed_samples(5, 9000, 128, 0)
    assert all(len(r.input_ids) == 128 and r.labels == r.input_ids for r in rows)
    assert rows[0].input_ids != rows[1].input_ids


def test_cli_text_data_becomes_full_blocks(bench, tmp_path):
    from tuneforge.data.encode import EncodeStats, encode_text

    d = bench.write_text_data(tmp_path / "data", docs=3, blocks=2, seq=64)
    import json

    rows = json.loads((d / "bench_text.json").read_text())
    tok = bench.make_tokenizer()
    stats = EncodeStats()
    samples = [s for r in rows for s in encode_text(tok, r["text"], 64, stats)]
    assert len(samples) == 6 and {len(s.input_ids) for s in samples} == {64}
    assert json.loads((d / "dataset_info.json").read_text())["bench_text"]["file_name"] == "bench_text.json"


@pytest.mark.parametrize("yaml_file", ["bench_8b_lora_b4.yaml", "bench_8b_qlora_b1.yaml"])
def test_bench_yamls_are_valid_configs(yaml_file):
    from tuneforge.config.parse import parse_args
    from tuneforge.config.validate import validate

    cfg = parse_args([str(ROOT / "examples" / yaml_file)])
    assert cfg.data.packing is False and cfg.data.cutoff_len == 2048 and cfg.finetune.stage == "pt"
    assert validate(cfg) == []
