#!/bin/bash
# Issue 3: QLoRA (4-bit NF4) training through the CLI on a small random Llama built from a config (no hub).
# usage: bash benchmarks/qlora_cuda_check.sh OUT_DIR
set -e
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src
M=/tmp/qlora_check_model R=/tmp/qlora_check_run
rm -rf $M $R
python3 -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from conftest import build_tiny_model; build_tiny_model(Path('$M'), layers=4, width=256)"
python3 -m tuneforge train --model_name_or_path $M --dataset identity --quantization_bit 4 --lora_target all \
  --learning_rate 2e-3 --num_train_epochs 3 --per_device_train_batch_size 8 --logging_steps 5 --save_steps 0 \
  --bf16 True --output_dir $R "${@:2}"
cp $R/metrics.jsonl "$1/qlora_cuda_metrics.jsonl"; cp $R/*summary*.json "$1/" 2>/dev/null || true
