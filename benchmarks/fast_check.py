"""GPU checks of the fast path (src/tuneforge/fast/) and the micro-benchmarks that pick its options.

1. Exactness on the device: a small random Llama (GQA) in bf16 with LoRA r16 on every projection — the fast path's
   loss and LoRA gradients against transformers + peft on the same batch (unpacked and packed rows; with layer
   recomputation and the CUDA offloader's side-stream copies), a 4-bit (NF4) base, and FP8 base weights
   (torch._scaled_mm against the same numbers multiplied in float32, and the loss against bf16).
2. Micro-benchmarks on the Llama-3.1-8B shapes (median of CUDA-event timings, triton.testing.do_bench):
   SDPA backends for causal attention (flash / cuDNN / efficient) forward + backward; the LoRA B update in place
   (addmm_) against a separate product and add; the residual as the GEMM's C operand against mm + add; FP8
   row-scaled GEMMs against bf16; bitsandbytes' NF4 dequantization.
3. fast/nf4.py on the 8B layer's weight shapes: bit-identical to bitsandbytes, host and device time per layer.

    PYTHONPATH=src python benchmarks/fast_check.py --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def rel(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


DEV = "cuda"


def exactness(kind="llama", quant=False) -> dict:
    from tuneforge.adapters import apply_method
    from tuneforge.config import build_config
    from tuneforge.fast import FastDecoder, fast_path_reason
    from tuneforge.models import attention
    from tuneforge.train.loss import CausalLMLoss
    from test_fast_path import batch  # the CPU test's batches (right padding; packed rows with a padding tail)
    from transformers import AutoConfig, AutoModelForCausalLM

    attn = attention.register()
    cfg = AutoConfig.for_model(kind, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                               num_attention_heads=8, num_key_value_heads=2, vocab_size=1000,
                               max_position_embeddings=1024, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(DEV):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=attn)
    if quant:
        import tempfile

        from transformers import BitsAndBytesConfig

        from tuneforge.models.memory import freeze_quantized_base

        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
            model = AutoModelForCausalLM.from_pretrained(d, quantization_config=q, dtype=torch.bfloat16,
                                                         attn_implementation=attn,
                                                         device_map={"": 0 if DEV == "cuda" else "cpu"})
        model = freeze_quantized_base(model)
    model.config.use_cache = False
    model = apply_method(model, build_config({"finetuning_type": "lora", "lora_rank": 16, "lora_alpha": 32,
                                              "lora_target": "all"}), [])
    torch.manual_seed(1)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)
    assert fast_path_reason(model) is None
    out = {}

    def run(b, fast):
        model.zero_grad(set_to_none=True)
        with torch.autocast(DEV, dtype=torch.bfloat16):
            loss = CausalLMLoss(model, False, False, fast)(**b)[0]
        loss.backward()
        return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    for packed in (False, True):
        b = {k: v.to(DEV) for k, v in batch(packed, rows=4, width=256, vocab=1000).items()}
        l0, g0 = run(b, None)
        for name, kw in (("plain_layers", {}), ("checkpoint_offload", {"checkpoint": True, "offload": True})):
            l1, g1 = run(b, FastDecoder(model, **kw))
            errs = [rel(g1[n], g0[n]) for n in g0]
            out[f"{'packed' if packed else 'unpacked'}_{name}"] = {
                "loss_plain": l0, "loss_fast": l1, "loss_rel": abs(l1 - l0) / abs(l0),
                "grad_rel_max": max(errs), "grad_rel_median": sorted(errs)[len(errs) // 2]}
    if not quant:
        b = {k: v.to(DEV) for k, v in batch(False, rows=4, width=256, vocab=1000).items()}
        l0, g0 = run(b, None)
        fast = FastDecoder(model, fp8="fp8")
        l1, g1 = run(b, fast)
        cos = [float(torch.nn.functional.cosine_similarity(g1[n].flatten().float(), g0[n].flatten().float(), 0))
               for n in g0]
        fast.release()
        out["fp8"] = {"loss_bf16": l0, "loss_fp8": l1, "loss_rel": abs(l1 - l0) / abs(l0), "grad_cos_min": min(cos),
                      "grad_cos_median": sorted(cos)[len(cos) // 2]}
    return out


def fp8_definition() -> dict:
    from tuneforge.fast.fp8 import Fp8Weight, _emulated_mm, quantize_rows

    w = (torch.randn(1024, 4096, device=DEV) * 0.02).bfloat16()
    x = torch.randn(512, 4096, device=DEV).bfloat16()
    f = Fp8Weight(w)
    xq, sx = quantize_rows(x)
    got = f.forward(x, {})
    want = _emulated_mm(xq, f.w.t(), sx, f.sw_row, torch.float32)
    dy = torch.randn(512, 1024, device=DEV).bfloat16()
    return {"scaled_mm_vs_emulation_rel": rel(got, want), "forward_vs_bf16_rel": rel(got, x @ w.t()),
            "backward_vs_bf16_rel": rel(f.backward(dy), dy @ w)}


def bench(fn, rep=50) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=rep, return_mode="median"))


def micro() -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = {}
    dev, bf = "cuda", torch.bfloat16
    q = torch.randn(4, 32, 2048, 128, device=dev, dtype=bf, requires_grad=True)
    k = torch.randn(4, 8, 2048, 128, device=dev, dtype=bf, requires_grad=True)
    v = torch.randn(4, 8, 2048, 128, device=dev, dtype=bf, requires_grad=True)
    g = torch.randn(4, 32, 2048, 128, device=dev, dtype=bf)
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        def step(be=be):
            with sdpa_kernel([be]):
                o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            o.backward(g)
        try:
            out[f"sdpa_{name}_fwd_bwd_ms"] = bench(step, 30)
        except Exception as e:  # noqa: BLE001 - a backend that cannot take GQA/this shape
            out[f"sdpa_{name}_fwd_bwd_ms"] = f"error: {str(e)[:160]}"
    M, N, K, r = 8192, 14336, 4096, 16
    y = torch.randn(M, N, device=dev, dtype=bf)
    h = torch.randn(M, r, device=dev, dtype=bf)
    B = torch.randn(N, r, device=dev, dtype=bf)
    out["lora_B_addmm_inplace_ms"] = bench(lambda: y.addmm_(h, B.t(), alpha=2.0))
    out["lora_B_mm_then_add_ms"] = bench(lambda: y.add_(torch.mm(h, B.t()), alpha=2.0))
    x = torch.randn(M, N, device=dev, dtype=bf)  # down_proj: K = intermediate
    W = torch.randn(K, N, device=dev, dtype=bf) * 0.01
    res = torch.randn(M, K, device=dev, dtype=bf)
    out["down_residual_addmm_ms"] = bench(lambda: torch.addmm(res, x, W.t()))
    out["down_mm_then_add_ms"] = bench(lambda: torch.mm(x, W.t()).add_(res))
    out["down_mm_only_ms"] = bench(lambda: torch.mm(x, W.t()))
    from tuneforge.fast.fp8 import quantize_rows, scaled_mm

    a = torch.randn(M, K, device=dev, dtype=bf)
    Wg = torch.randn(N, K, device=dev, dtype=bf) * 0.02
    out["gate_bf16_mm_ms"] = bench(lambda: torch.mm(a, Wg.t()))
    aq, sa = quantize_rows(a)
    wq, sw = quantize_rows(Wg)
    swr = sw.reshape(1, -1)
    out["gate_fp8_mm_fast_accum_ms"] = bench(lambda: scaled_mm(aq, wq.t(), sa, swr, bf, True))
    out["gate_fp8_mm_ms"] = bench(lambda: scaled_mm(aq, wq.t(), sa, swr, bf, False))
    out["quantize_rows_8192x4096_ms"] = bench(lambda: quantize_rows(a))
    out["quantize_rows_8192x14336_ms"] = bench(lambda: quantize_rows(x))
    out["bf16_gate_tflops"] = 2 * M * N * K / out["gate_bf16_mm_ms"] / 1e9
    out["fp8_gate_tflops"] = 2 * M * N * K / out["gate_fp8_mm_fast_accum_ms"] / 1e9
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as bnbf

        p = bnb.nn.Params4bit(Wg.cpu(), requires_grad=False, quant_type="nf4", compress_statistics=True).cuda()
        out["nf4_dequant_14336x4096_ms"] = bench(lambda: bnbf.dequantize_4bit(p.data, p.quant_state))
    except Exception as e:  # noqa: BLE001
        out["nf4_dequant_14336x4096_ms"] = f"error: {str(e)[:160]}"
    return out


def nf4_layer() -> dict:
    """fast/nf4.py on the 8B layer's seven weight shapes (double quantization): every weight bit-identical to
    bitsandbytes' ``dequantize_4bit``, through its native kernels; host time per layer (seven weights launched,
    no sync) and device time, against one bitsandbytes call pair per weight (fast/lora.py's other path)."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnbf

    from tuneforge.compat import bnb_native_dequant
    from tuneforge.fast import nf4
    from tuneforge.fast.lora import _dequantize_4bit

    torch.manual_seed(0)
    shapes = [(4096, 4096), (1024, 4096), (1024, 4096), (4096, 4096), (14336, 4096), (14336, 4096), (4096, 14336)]
    ws = [bnb.nn.Params4bit(torch.randn(s, dtype=torch.bfloat16) * 0.02, requires_grad=False, quant_type="nf4",
                            compress_statistics=True).to(DEV) for s in shapes]
    want = [bnbf.dequantize_4bit(w.data, w.quant_state) for w in ws]
    lq = nf4.plan(ws)
    out = {"native": bnb_native_dequant() is not None, "planned": lq is not None}
    nf4.clear()
    got = [lq.dequantize(w) for w in ws]
    out["bit_identical"] = all(torch.equal(g, t) for g, t in zip(got, want))
    out["bnb_still_reads_the_views"] = all(torch.equal(bnbf.dequantize_4bit(w.data, w.quant_state), t)
                                           for w, t in zip(ws, want))

    if DEV != "cuda":
        return out

    def layer_new():
        nf4.clear()
        return [lq.dequantize(w) for w in ws]

    def layer_old():
        return [_dequantize_4bit(w) for w in ws]

    for name, fn in (("per_layer", layer_new), ("per_weight", layer_old)):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            fn()
        out[f"{name}_host_us_per_layer"] = round((time.perf_counter() - t0) / 50 * 1e6, 1)
        torch.cuda.synchronize()
        out[f"{name}_device_ms_per_layer"] = bench(fn)
    nf4.clear()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the checks (no micro-benchmarks)")
    a = ap.parse_args()
    global DEV
    DEV = a.device
    gpu = torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu"
    res, t0 = {"gpu": gpu, "torch": torch.__version__}, time.time()
    checks = [("exact_bf16", exactness), ("exact_nf4", lambda: exactness(quant=True)),
              ("fp8_definition", fp8_definition), ("nf4_layer", nf4_layer)] + \
        ([("micro", micro)] if DEV == "cuda" else [])
    for name, fn in checks:
        try:
            res[name] = fn()
        except Exception as e:  # noqa: BLE001 - report and go on: the benchmark rows come after this
            import traceback

            res[name] = {"error": traceback.format_exc()[-1500:]}
        print(name, json.dumps(res[name])[:1500], flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
