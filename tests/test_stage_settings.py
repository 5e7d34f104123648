"""Every stage either applies each model-preparation / speed setting (and logs it) or refuses it with the reason
before any weights load — none is accepted and silently ignored. One short run per stage (tiny model) carries every
setting the stage honours; packing and shared_prefix get runs of their own where they apply."""

import json
import sys
import types

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.config.registry import PREPARATION, STAGES
from tuneforge.errors import ConfigError
from tuneforge.recipes import run

# setting -> (what asks for it, the log line that shows the run applied it). On this CPU some settings are applied as
# a logged decision (torch_compile and activation offloading say why they are off without CUDA); Liger's kernels are
# stood in for below.
ASK = {
    "packing": ({"packing": True}, "packing: "),
    "enable_liger_kernel": ({"enable_liger_kernel": True}, "enable_liger_kernel=on"),
    "torch_compile": ({"torch_compile": True}, "torch_compile="),
    "shared_prefix": ({"shared_prefix": True}, "shared_prefix="),
    "group_by_length": ({"group_by_length": True}, "group_by_length=on"),
    "gradient_checkpointing": ({"gradient_checkpointing": True}, "gradient_checkpointing=on"),
    "enable_activation_offloading": ({"enable_activation_offloading": True}, "enable_activation_offloading="),
    "sample_prompts": ({"sample_prompts": "Who are you?"}, "sample_prompts: the tuned model answers"),
    "fast_path": ({"fast_path": True}, "fast_path=on"),
    "fp8": ({"fp8": True, "bf16": True}, "fp8"),
}
# each in a run of its own: shared_prefix is off under checkpointing, the fast path refuses torch_compile
ALONE = ("packing", "shared_prefix", "fast_path")
CUDA_ONLY = {"fp8": "needs a CUDA GPU"}  # honoured on a GPU; here refused by preflight, before weights load
DATASET = {"sft": "alpaca_demo", "pt": "texts", "rm": "pairs", "dpo": "pairs", "kto": "tagged",
           "ppo": "pairs"}


def test_every_preparation_setting_is_in_this_test():
    assert set(ASK) == set(PREPARATION)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from conftest import make_data_dir

    d = make_data_dir(tmp_path_factory.mktemp("stages") / "data")
    pairs = [{"instruction": f"Say hi {i}. End with DONE.", "chosen": f"Hi {i}. DONE", "rejected": f"Hi {i}."}
             for i in range(6)]
    tagged = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}],
               "label": i % 2 == 0} for i in range(6)]
    texts = [{"text": f"Document {i}: the quick brown fox jumps over the lazy dog {i} times."} for i in range(8)]
    (d / "texts.json").write_text(json.dumps(texts))
    (d / "pairs.json").write_text(json.dumps(pairs))
    (d / "tagged.json").write_text(json.dumps(tagged))
    info = json.loads((d / "dataset_info.json").read_text())
    info.update(texts={"file_name": "texts.json", "columns": {"prompt": "text"}},
                pairs={"file_name": "pairs.json", "ranking": True},
                tagged={"file_name": "tagged.json", "formatting": "openai",
                        "columns": {"messages": "messages", "kto_tag": "label"}})
    (d / "dataset_info.json").write_text(json.dumps(info))
    return d


class FusedLinearCE(torch.nn.Module):
    """Stands in for Liger's fused linear cross-entropy (sum reduction) on a machine without CUDA."""

    def __init__(self, reduction="sum"):
        super().__init__()

    def forward(self, weight, hidden, labels, bias=None):
        logits = torch.nn.functional.linear(hidden, weight, bias)
        return torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum")


@pytest.fixture()
def liger(monkeypatch):
    """Liger "available": its instance patcher records the models it was given, its fused loss is the stand-in."""
    from tuneforge import compat

    patched = []
    monkeypatch.setattr(compat, "liger_unsupported", lambda model_type: None)
    monkeypatch.setattr(compat, "liger_patch_instance", lambda model: patched.append(model))
    fake = types.ModuleType("liger_kernel.transformers")
    fake.LigerFusedLinearCrossEntropyLoss = FusedLinearCE
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", fake)
    return patched


def config(tiny_model, data, out, stage, **kw):
    base = dict(model_name_or_path=str(tiny_model), dataset=DATASET[stage], dataset_dir=str(data),
                output_dir=str(out), stage=stage, per_device_train_batch_size=2, max_steps=2, save_steps=0,
                logging_steps=1, learning_rate=1e-3, cutoff_len=128, max_new_tokens=4, seed=1)
    return build_config({**base, **kw})


@pytest.fixture(scope="module")
def reward_model(tiny_model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("stages-rm") / "rm"
    run(config(tiny_model, data, out, "rm"))
    return out


def honoured(stage: str) -> list[str]:
    return [s for s in ASK if s not in STAGES[stage].refuses]


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_applies_every_setting_it_honours(stage, tiny_model, data, tmp_path, liger, caplog,
                                                   reward_model):
    extra = {"reward_model": str(reward_model)} if stage == "ppo" else {}
    together = [s for s in honoured(stage) if s not in ALONE and s not in CUDA_ONLY]
    asked = {k: v for s in together for k, v in ASK[s][0].items()}
    with caplog.at_level("INFO", logger="tuneforge"):
        res = run(config(tiny_model, data, tmp_path / "all", stage, **asked, **extra))
    assert res.summary["completed"]
    for setting in together:
        assert ASK[setting][1] in caplog.text, (stage, setting)
    assert liger, f"--stage {stage} did not apply Liger's kernels"
    if "sample_prompts" in together:
        assert res.summary["sample_replies"][0]["prompt"] == "Who are you?"
    for setting in ALONE:
        if setting in honoured(stage) and setting not in CUDA_ONLY:
            caplog.clear()
            with caplog.at_level("INFO", logger="tuneforge"):
                run(config(tiny_model, data, tmp_path / setting, stage, **ASK[setting][0], **extra))
            assert ASK[setting][1] in caplog.text, (stage, setting)


@pytest.mark.parametrize("stage, setting", [(st, s) for st, rec in STAGES.items() for s in rec.refuses])
def test_a_stage_refuses_what_it_cannot_honour_before_loading_weights(stage, setting, tiny_model, data, tmp_path,
                                                                     monkeypatch, reward_model):
    import tuneforge.recipes.common as common

    def boom(*a, **k):
        raise AssertionError("weights were loaded before the refusal")

    monkeypatch.setattr(common, "load_model", boom)
    extra = {"reward_model": str(reward_model)} if stage == "ppo" else {}
    with pytest.raises(ConfigError) as e:
        run(config(tiny_model, data, tmp_path / "o", stage, **ASK[setting][0], **extra))
    assert f"does not apply to --stage {stage} (" in str(e.value) and setting.split("_")[0] in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal a machine without CUDA gives")
@pytest.mark.parametrize("stage, setting", [(st, s) for st in STAGES for s in CUDA_ONLY if s in honoured(st)])
def test_a_gpu_only_setting_is_refused_here_before_loading_weights(stage, setting, tiny_model, data, tmp_path,
                                                                  monkeypatch):
    import tuneforge.recipes.common as common

    monkeypatch.setattr(common, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(ConfigError) as e:
        run(config(tiny_model, data, tmp_path / "o", stage, **ASK[setting][0]))
    assert CUDA_ONLY[setting] in str(e.value)
