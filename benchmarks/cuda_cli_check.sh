#!/bin/bash
# Issue 6: the CLI on CUDA with the default attention (flash_attn auto → tuneforge_varlen): a packed LoRA run on a
# small random Llama built from a config (no hub), then `tuneforge chat` on the result (generation takes the SDPA
# path).   usage: bash benchmarks/cuda_cli_check.sh OUT_DIR
set -e
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src
M=/tmp/cli_check_model R=/tmp/cli_check_run
rm -rf $M $R
python3 -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from conftest import build_tiny_model; build_tiny_model(Path('$M'), layers=4, width=256)"
python3 -m tuneforge train --model_name_or_path $M --dataset identity --lora_target all --packing True \
  --cutoff_len 512 --learning_rate 2e-3 --num_train_epochs 3 --per_device_train_batch_size 2 --logging_steps 5 \
  --save_steps 0 --bf16 True --output_dir $R 2>&1 | tee "$1/cuda_cli_train.log"
python3 -m tuneforge chat --model_name_or_path $M --adapter_name_or_path $R --prompt "Who are you?" \
  --max_new_tokens 12 2>&1 | tee "$1/cuda_cli_chat.log"
cp $R/metrics.jsonl "$1/cuda_cli_metrics.jsonl"
grep -q "attention=tuneforge_varlen" "$1/cuda_cli_train.log" && echo "CLI CHECK: varlen chosen"
