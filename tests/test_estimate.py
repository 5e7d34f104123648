"""`tuneforge estimate`: parameter counts from config.json match real models; predictions match measured peaks."""

import json
from pathlib import Path

import pytest

from tuneforge.cli import main
from tuneforge.estimate import Plan, Shape, estimate

RESULTS = Path(__file__).parent.parent / "benchmarks" / "results"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_parameter_count_matches_a_real_model(arch):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(arch, vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=arch == "qwen2")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    shape = Shape.from_config(json.loads(cfg.to_json_string()))
    assert shape.params == sum(p.numel() for p in model.parameters())
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    n_lora = sum(p.numel() for n, p in lora.named_parameters() if "lora_" in n)
    from tuneforge.estimate.memory import trainable_params

    assert trainable_params(shape, Plan(method="lora", lora_rank=4)) == n_lora


def _measured():
    """Peaks measured on an H200 by benchmarks/gpu_bench.py with the current code (see docs/benchmarks.md)."""
    import sys

    sys.path.insert(0, str(RESULTS.parent))
    from estimate_check import plan_of, shape_of

    out = []
    for name in ("gpu_h200_final2.json", "gpu_h200_final.json", "gpu_h200_more.json", "gpu_h200_s6a.json",
                 "gpu_h200_s6b.json", "gpu_h200_s6c.json", "gpu_h200_s7.json", "gpu_h200_s7c.json"):
        for r in json.loads((RESULTS / name).read_text()):
            spec = r.get("spec", {})
            current = name != "gpu_h200_more.json" or spec.get("method") == "full"  # LoRA runs there predate a fix
            if spec.get("impl") == "tuneforge" and "peak_allocated_gib" in r and current:
                out.append((spec["name"], shape_of(spec.get("model", "llama8b")), plan_of(spec),
                            r["peak_allocated_gib"]))
    return out


def test_estimate_within_15_percent_of_measured_h200_peaks():
    cases = _measured()
    assert len(cases) >= 10
    assert any(plan.method == "qlora4" for _, _, plan, _ in cases)  # QLoRA peaks are part of the check
    for name, shape, plan, measured in cases:
        predicted = estimate(shape, plan).allocated
        assert abs(predicted - measured) / measured <= 0.15, (name, predicted, measured)


def test_estimate_cli_reads_only_config(tmp_path, capsys):
    cfg = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8}
    (tmp_path / "config.json").write_text(json.dumps(cfg))  # no weights in the folder at all
    assert main(["estimate", "--model_name_or_path", str(tmp_path), "--per_device_train_batch_size", "1",
                 "--bf16", "True", "--gpu", "h200"]) == 0
    out = capsys.readouterr().out
    assert "8.03B parameters" in out and "weights" in out and "activations" in out and "fits on h200" in out
    assert main(["estimate", "--model_name_or_path", str(tmp_path), "--method", "full", "--gpu", "24"]) == 0
    assert "does NOT fit on 24 GiB" in capsys.readouterr().out
    assert main(["estimate", "--model_name_or_path", str(tmp_path), "--method", "qlora3"]) == 2
    assert "qlora4" in capsys.readouterr().err
    assert main(["estimate", "--model_name_or_path", str(tmp_path / "nope.json")]) == 2
