"""A DPO step vs an SFT step on the same tokens, in one run (LoRA, the embedded model by default).

Both steps see the same batch: the chosen and rejected sequences of `--pairs` preference pairs from format_pref. The
SFT step is forward + backward of the token loss over those sequences (tuneforge's CausalLMLoss); the DPO step is
tuneforge's PreferenceObjective (policy forward + backward, plus the reference forward with the adapter switched
off), and once more with precomputed reference log-probs. Median of `--steps` timed steps after one warm-up step.

    flock /tmp/tuneforge-cpu.lock python benchmarks/dpo_vs_sft.py --pairs 4 --steps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from tuneforge.adapters import apply_method
from tuneforge.config import build_config
from tuneforge.data import templates
from tuneforge.data.build import build_data
from tuneforge.models import load_model, load_tokenizer, resolve_model_path
from tuneforge.train.loss import CausalLMLoss
from tuneforge.train.preference import PreferenceObjective, collate_pairs, precompute_reference


def timed(fn, steps: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(torch.get_num_threads())
    cfg = build_config({"model_name_or_path": a.model, "dataset": "format_pref", "stage": "dpo", "lora_rank": 8,
                        "cutoff_len": 512})
    path = resolve_model_path(a.model)
    tok = load_tokenizer(path)
    fmt = templates.install(tok, "auto")
    pairs = build_data(cfg.data, "dpo", tok, fmt, 0).train[: a.pairs]
    model = apply_method(load_model(path, torch.float32), cfg, [])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)

    pair_batch = collate_pairs(pairs, tok.pad_token_id)
    sft_batch = {k: pair_batch[k] for k in ("input_ids", "attention_mask", "labels")}  # the same 2×pairs rows
    sft = CausalLMLoss(model)
    dpo = PreferenceObjective(model, "dpo", cfg.preference)

    def step(loss):
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t_sft = timed(lambda: step(sft(**sft_batch)[0] / int((sft_batch["labels"] != -100).sum())), a.steps)
    t_dpo = timed(lambda: step(dpo(**pair_batch)[0] / a.pairs), a.steps)
    precompute_reference(dpo, pairs, tok.pad_token_id, a.pairs, "cpu")
    pre_batch = collate_pairs(pairs, tok.pad_token_id)
    t_pre = timed(lambda: step(dpo(**pre_batch)[0] / a.pairs), a.steps)
    tokens = int(pair_batch["attention_mask"].sum())
    result = {"model": a.model, "pairs": a.pairs, "sequences": 2 * a.pairs, "tokens": tokens,
              "padded_shape": list(pair_batch["input_ids"].shape), "sft_step_s": round(t_sft, 3),
              "dpo_step_s": round(t_dpo, 3), "dpo_precomputed_ref_step_s": round(t_pre, 3),
              "ratio_dpo_over_sft": round(t_dpo / t_sft, 2), "ratio_precomputed_over_sft": round(t_pre / t_sft, 2),
              "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {platform.processor() or ''}",
              "torch": torch.__version__}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
