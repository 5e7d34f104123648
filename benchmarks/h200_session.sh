#!/bin/bash
# One device call on the lent H200 (issue 6, session 2): install the carried wheels, then run suites of
# benchmarks/gpu_bench.py, writing JSON under $OUT.   usage: bash benchmarks/h200_session.sh SUITE [BUDGET_S]
set -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export UNSLOTH_ENABLE_LOGGING=0
if [ -d whl ] && ! python3 -c "import unsloth_zoo" 2>/dev/null; then
  python3 -m pip install --no-deps --no-index -q whl/*.whl 2>&1 | tail -3
fi
python3 -c "import torch, transformers, peft, bitsandbytes; print('versions', torch.__version__, transformers.__version__, peft.__version__, bitsandbytes.__version__, torch.cuda.get_device_name(0))"
timeout "${2:-540}" python3 benchmarks/gpu_bench.py --suite "$1" --json "$OUT/gpu_h200_$1.json" --budget_s "$(( ${2:-540} - 90 ))" 2>&1 | tee "$OUT/log_$1.txt"
