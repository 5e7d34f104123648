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

    assert trainable_params(shape, Plan(method="lora", settings={"lora_rank": 4})) == n_lora


# Each method's count in its record against the model peft really builds (meta device: no weights).
PEFT_CONFIGS = {
    "prefix": ("PrefixTuningConfig", dict(num_virtual_tokens=5, prefix_projection=True, encoder_hidden_size=48)),
    "ptuning_v2": ("PrefixTuningConfig", dict(num_virtual_tokens=5, prefix_projection=False)),
    "ptuning": ("PromptEncoderConfig", dict(num_virtual_tokens=5, encoder_hidden_size=48,
                                            encoder_reparameterization_type="MLP")),
    "prompt": ("PromptTuningConfig", dict(num_virtual_tokens=5)),
    "oft": ("OFTConfig", dict(r=0, oft_block_size=24, target_modules="all-linear")),
    "oft-r": ("OFTConfig", dict(r=4, oft_block_size=0, target_modules=["q_proj", "down_proj"])),
}
SETTINGS = {"prefix": {"num_virtual_tokens": 5, "encoder_hidden_size": 48},
            "ptuning_v2": {"num_virtual_tokens": 5},
            "ptuning": {"num_virtual_tokens": 5, "encoder_hidden_size": 48},
            "prompt": {"num_virtual_tokens": 5},
            "oft": {"oft_block_size": 24},  # 64 and 96 wide inputs: 24 does not divide 64, peft picks 32
            "oft-r": {"oft_rank": 4, "oft_target": "q_proj,down_proj"}}


@pytest.mark.parametrize("method", sorted(PEFT_CONFIGS))
def test_every_method_counts_what_peft_builds(method):
    import warnings

    import peft
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tuneforge.estimate.memory import trainable_params

    cfg = AutoConfig.for_model("llama", vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=2)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    cls, kw = PEFT_CONFIGS[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = peft.get_peft_model(model, getattr(peft, cls)(task_type="CAUSAL_LM", **kw))
    real = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    shape = Shape.from_config(json.loads(cfg.to_json_string()))
    assert trainable_params(shape, Plan(method=method.removesuffix("-r"), settings=SETTINGS[method])) == real


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
    assert any(plan.quantization_bit == 4 for _, _, plan, _ in cases)  # QLoRA peaks are part of the check
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


def estimate_total(capsys, *argv) -> float:
    assert main(["estimate", *argv]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return float(next(line for line in out.splitlines() if line.strip().startswith("total")).split()[1])


def test_estimate_reads_every_method_and_quantization_bit(tmp_path, capsys):
    """Both were ignored before: --finetuning_type ptuning was refused, --quantization_bit 4 printed the
    unquantized figure (only --method qlora4 worked)."""
    cfg = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = ["--model_name_or_path", str(tmp_path), "--bf16", "True"]
    lora = estimate_total(capsys, *m)
    q4 = estimate_total(capsys, *m, "--quantization_bit", "4")
    assert q4 < lora - 8  # 16 GiB of bf16 linear weights become ~4 GiB
    assert q4 == estimate_total(capsys, *m, "--method", "qlora4")  # the shorthand is the same run
    assert estimate_total(capsys, *m, "--quantization_bit", "8") > q4
    for method in ("ptuning", "prefix", "ptuning_v2", "prompt", "oft", "freeze", "full"):
        assert estimate_total(capsys, *m, "--finetuning_type", method) > 0, method
    assert main(["estimate", *m, "--finetuning_type", "full", "--quantization_bit", "4"]) == 2
    assert "cannot update quantized weights" in capsys.readouterr().err
    assert main(["estimate", *m, "--finetuning_type", "oft", "--quantization_bit", "4"]) == 2
    assert "no quantized (bitsandbytes) layers" in capsys.readouterr().err
