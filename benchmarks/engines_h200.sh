#!/bin/bash
# Issue 17: a 1-GPU run of each engine (DDP, FSDP2 plain / activation checkpointing / CPU offload, DeepSpeed ZeRO-2 /
# ZeRO-3) × method (lora, full, qlora where allowed) × stage (sft; dpo/kto/rm for a few pairs) works on one H200:
# benchmarks/engines_h200.py writes $OUT/engines/summary.md, summary.json and the log tails of failing runs.
# Device command (carry [".whl"]: deepspeed, pydantic, hjson, … — the image has torch, accelerate, transformers):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src && bash benchmarks/engines_h200.sh
# On a CPU machine (proves the script before GPU time is spent):  bash benchmarks/engines_h200.sh --cpu
# Extra arguments go to engines_h200.py (--budget_s, --run_cap_s, --steps, --only NAME,…).
set -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:-$PWD/src} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
# DeepSpeed's wheel was built here without ops (DS_BUILD_OPS=0) on a CPU machine: name its accelerator on the GPU
case " $* " in *" --cpu "*) ;; *) export DS_ACCELERATOR=${DS_ACCELERATOR:-cuda} ;; esac
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; export OUT
PY=${PYTHON:-python3}
$PY -c "import torch, transformers, peft, accelerate; print('versions: torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| accelerate', accelerate.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
$PY -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1
# 420 s of runs (none starts after that) + one run's 100 s cap + the model build: inside a 10-minute device call
timeout 580 $PY benchmarks/engines_h200.py "$@"
