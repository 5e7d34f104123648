"""Automatic precision: bf16 where the GPU supports it, fp16 on a GPU without bfloat16, float32 on a CPU; every
choice logged with its reason, and ``--bf16 False`` / ``--fp16 False`` opt out."""

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.models import precision


@pytest.fixture()
def gpu(monkeypatch):
    """Pretend to have a CUDA GPU with or without bfloat16 support; collect the logged choices."""
    logged = []
    monkeypatch.setattr(precision.log, "choice", lambda what, why: logged.append(f"{what}: {why}"))

    def set_gpu(kind):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: kind is not None)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: kind == "bf16")
        return logged
    return set_gpu


@pytest.mark.parametrize("kind, bf16, fp16, want, reason", [
    ("bf16", None, None, ("bf16", torch.bfloat16), "automatic: this GPU supports bfloat16"),
    ("bf16", False, None, ("no", torch.float32), "bf16=False asked"),
    ("bf16", None, True, ("fp16", torch.float16), "fp16 asked"),
    ("fp16only", None, None, ("fp16", torch.float16), "automatic: this GPU has no bfloat16 support"),
    ("fp16only", None, False, ("no", torch.float32), "fp16=False asked"),
    ("fp16only", True, None, ("no", torch.float32), "bf16 asked but this GPU has no bfloat16 support"),
    (None, None, None, ("no", torch.float32), "no CUDA device"),
    (None, True, None, ("no", torch.float32), "bf16 asked but no CUDA device"),
])
def test_precision_choice(gpu, kind, bf16, fp16, want, reason):
    logged = gpu(kind)
    assert precision.resolve_precision(bf16, fp16) == want
    assert len(logged) == 1 and reason in logged[0], logged


def test_default_config_is_automatic_and_lf_flags_still_parse():
    t = build_config({}).train
    assert t.bf16 is None and t.fp16 is None
    assert build_config({"bf16": "False"}).train.bf16 is False
    assert build_config({"bf16": True}).train.bf16 is True
