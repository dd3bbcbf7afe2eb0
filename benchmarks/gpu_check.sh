#!/usr/bin/env bash
# One prepared GPU check (issue 13 item 5): run it on a machine with a CUDA GPU, from the repository root.
#   bash benchmarks/gpu_check.sh            # about 6 minutes
# 1. the test suite's CUDA-marked tests (CUDA graph capture, bf16, resume on CUDA);
# 2. benchmarks/train.py --device cuda at batch 32 and 256 (target: >= 5,000 updates/s at batch 32
#    with the Nature CNN on one modern GPU), ours only (d3rlpy's install and its runs would eat the budget);
# 3. benchmarks/online.py --device cuda: env steps/s and updates/s with 1, 2 and 4 embedded clients
#    against as many bare emulators.
# Needs the environment of scripts/setup.sh --test (.venv); prints everything, writes nothing outside /tmp.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'

echo "== 1. CUDA-marked tests"
timeout 300 "$PY" -m pytest -m cuda -q -rs tests/ || status=1

echo "== 2. training speed on CUDA (batch 32 and 256)"
timeout 240 "$PY" benchmarks/train.py --device cuda --skip-d3rlpy --algos double,cql --batches 32,256 \
  --seconds 3 --rounds 2 --steps 1500 || status=1

echo "== 3. online throughput on CUDA (1, 2, 4 clients vs bare emulators)"
timeout 240 "$PY" benchmarks/online.py --device cuda --clients 1,2,4 --seconds 20 || status=1
exit $status
