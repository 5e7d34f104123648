"""GPU check of the varlen attention path (models/attention.py): exactness against the masked-SDPA path, and the
attention-only speed of both, on packed rows.

  python benchmarks/varlen_check.py --json OUT.json

1. Kernel vs definition: torch's varlen FlashAttention against one causal SDPA call per sample (float32 reference).
2. Loss and gradients of a packed batch through a small Llama (GQA, bf16, LoRA-free: every weight gets a gradient),
   tuneforge_varlen vs sdpa with the block-diagonal mask, same weights.
3. Attention alone, forward + backward, Llama-3.1-8B head shape (32 query / 8 key-value heads of 128), rows of 2048
   tokens packed from the benchmark's chat-length samples: masked SDPA vs varlen, median of 20 after 5 warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def packed_rows(n_rows: int, width: int, seed: int = 0):
    from gpu_bench import make_samples

    from tuneforge.data.collate import collate
    from tuneforge.data.packing import pack_samples

    rows, st = pack_samples(make_samples(200, 32000, width, seed), width)
    return collate(rows[:n_rows], pad_id=0), st


def main() -> int:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tuneforge.models import attention
    from tuneforge.train.loss import token_loss_sum

    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    dev = "cuda"
    assert attention.varlen_kernel_available() is None, attention.varlen_kernel_available()
    name = attention.register()
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0),
           "enable_gqa_flag": attention._KERNEL.get("gqa"), "native_gqa": attention._KERNEL.get("native_gqa")}

    # 1. kernel vs definition
    g = torch.Generator(device=dev).manual_seed(0)
    cu = torch.tensor([0, 700, 1100, 2048, 2500, 4096], device=dev, dtype=torch.int32)
    q = torch.randn(4096, 32, 128, device=dev, generator=g, dtype=torch.bfloat16)
    k, v = (torch.randn(4096, 8, 128, device=dev, generator=g, dtype=torch.bfloat16) for _ in range(2))
    got = attention._kernel(q, k, v, cu, 1596, 128 ** -0.5).float()
    ref = attention.reference_varlen(q.float(), k.float(), v.float(), cu, 128 ** -0.5)
    out["kernel_max_abs_err"] = float((got - ref).abs().max())
    out["kernel_ref_max_abs"] = float(ref.abs().max())

    # 2. loss and gradients, small Llama
    cfg = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=4, num_attention_heads=16,
                      num_key_value_heads=4, vocab_size=32000, max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device(dev):
        m_sdpa = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        m_var = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=name)
    m_var.load_state_dict(m_sdpa.state_dict())
    batch, st = packed_rows(4, 2048)
    batch = {k: t.to(dev) for k, t in batch.items()}
    res = {}
    for tag, m in (("sdpa", m_sdpa), ("varlen", m_var)):
        loss, n = token_loss_sum(m, batch, gathered=True)
        (loss / n).backward()
        res[tag] = (float(loss) / n, torch.cat([p.grad.float().flatten() for p in m.parameters()]))
    out["loss_sdpa"], out["loss_varlen"] = res["sdpa"][0], res["varlen"][0]
    out["grad_cosine"] = float(F.cosine_similarity(res["sdpa"][1], res["varlen"][1], dim=0))
    out["grad_rel_norm_diff"] = float((res["sdpa"][1] - res["varlen"][1]).norm() / res["sdpa"][1].norm())
    out["samples_per_row"] = round(st.samples / st.rows, 2)
    del m_sdpa, m_var, res

    # 3. attention alone, 8B head shape
    pos = batch["position_ids"]
    kw = attention.varlen_kwargs(pos)
    seg = (pos == 0).cumsum(1)  # sample index inside each row
    causal = torch.ones(2048, 2048, dtype=torch.bool, device=dev).tril()
    mask = ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]  # (B, 1, S, S): what transformers builds

    class Mod(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 4

    mod = Mod()
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def make():
        qq = torch.randn(4, 2048, 32, 128, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
        kk = torch.randn(4, 2048, 8, 128, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
        vv = torch.randn(4, 2048, 8, 128, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
        return qq, kk, vv

    def timed(fn):
        qq, kk, vv = make()
        ts = []
        for i in range(25):
            torch.cuda.synchronize()
            t = time.perf_counter()
            o = fn(qq, kk, vv)
            o.sum().backward()
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts[5:]) * 1e3

    out["attn_ms_masked_sdpa"] = timed(lambda qq, kk, vv: sdpa_attention_forward(
        mod, qq, kk, vv, mask, scaling=128 ** -0.5)[0])
    out["attn_ms_varlen"] = timed(lambda qq, kk, vv: attention.varlen_attention_forward(
        mod, qq, kk, vv, mask, scaling=128 ** -0.5, **kw)[0])
    print(json.dumps(out, indent=1))
    Path(a.json).write_text(json.dumps(out, indent=1))
    ok = (out["kernel_max_abs_err"] < 2e-2 and abs(out["loss_sdpa"] - out["loss_varlen"]) < 1e-2 * out["loss_sdpa"]
          and out["grad_cosine"] > 0.999)
    print("CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
