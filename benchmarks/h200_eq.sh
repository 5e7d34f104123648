#!/bin/bash
# One device call of issue 18's equal-work suite on the lent H200: install the carried wheels (Unsloth and its
# needs, liger-kernel, bitsandbytes; README of the device tool), optionally run the fast path's GPU checks, then a
# suite of benchmarks/gpu_bench.py; everything lands under $OUT.
#   usage (from the folder holding this checkout and .whl/): bash benchmarks/h200_eq.sh SUITE SECONDS [check]
set -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 UNSLOTH_ENABLE_LOGGING=0 NCCL_NVLS_ENABLE=0
WHL=${WHL:-$( [ -d "$PWD/.whl" ] && echo "$PWD/.whl" || echo "$PWD/../.whl" )}
t0=$(date +%s)
if [ ! -d /tmp/site/unsloth ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl 2>&1 | tail -3
fi
python3 -c "import torch, transformers, peft, bitsandbytes, liger_kernel, trl; print('versions', torch.__version__, transformers.__version__, peft.__version__, bitsandbytes.__version__, trl.__version__, torch.cuda.get_device_name(0))"
echo "setup $(( $(date +%s) - t0 )) s"
if [ "$3" = check ]; then
  timeout 150 python3 benchmarks/fast_check.py --json "$OUT/fast_check.json" 2>&1 | tail -c 6000 | tee "$OUT/log_check.txt"
fi
left=$(( $2 - ($(date +%s) - t0) ))
timeout "$left" python3 benchmarks/gpu_bench.py --suite "$1" --json "$OUT/gpu_h200_$1.json" --budget_s "$(( left - 45 ))" 2>&1 | tee "$OUT/log_$1.txt"
echo "total $(( $(date +%s) - t0 )) s"
