#!/usr/bin/env bash
# One-shot check of the GPU path on a machine with a CUDA GPU, its own torch and nvcc, and no
# network: installs the wheels of .whl/ (made here by scripts/gpu_wheels.sh) when present, then
# runs scripts/gpu_check.py: builds pcseg._C in place for this GPU's architecture against this
# torch, runs tests/test_cuda.py, the GPU benchmarks and the rest of the default suite within
# a 450 s budget, and writes gpu_check.json and gpu_check.log to $OUT (else build/gpu_check/).
#
#   bash scripts/gpu_check.sh              # on the GPU machine
#   bash scripts/gpu_check.sh --dry-run    # anywhere, in seconds: everything that needs no GPU
#   PYTHON=/path/to/python bash scripts/gpu_check.sh --budget 300 --skip-suite
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
exec "$PY" scripts/gpu_check.py "$@"
