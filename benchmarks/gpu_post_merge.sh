#!/bin/bash
# One device call after a round of merges: the library's CUDA paths still hold. Installs the carried wheels
# (.whl/: peft, datasets, pyarrow, … — the device image has torch/transformers/accelerate), then
#   1. benchmarks/fast_check.py: the fast path's loss and LoRA gradients against transformers + peft on CUDA
#      (unpacked, packed, recomputation, FP8) and its micro-benchmarks;
#   2. benchmarks/cuda_cli_check.sh: `tuneforge train` (packed LoRA, bf16, varlen attention, the non-finite guard
#      and the forgetting guard in the loop) and `tuneforge chat` on a small random Llama.
# usage (device tool): bash benchmarks/gpu_post_merge.sh   (writes under $OUT)
set -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -d .whl ]; then python3 -m pip install --no-deps --no-index -q .whl/*.whl 2>&1 | tail -3; fi
python3 -c "import torch, transformers, peft, datasets; print('versions', torch.__version__, transformers.__version__, peft.__version__, datasets.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee "$OUT/versions.txt"
timeout 300 python3 benchmarks/fast_check.py --json "$OUT/fast_check.json" 2>&1 | tail -40 | tee "$OUT/fast_check.log"
timeout 200 bash benchmarks/cuda_cli_check.sh "$OUT" 2>&1 | tail -30
