#!/usr/bin/env bash
# Trains the default model's recipe (pcseg/configs/acnn_real_stage1.yaml) on a lent GPU within a time
# budget (default 480 s, build included), from the training rooms packed by
# `python scripts/gpu_train.py --pack-only` into build/real_rooms.npz (about 23 MB: carry it).
# Writes the run folder (best.pt, last.pt, metrics), gpu_train.json and gpu_train.log to $OUT
# (else build/gpu_train/).
#
#   python scripts/gpu_train.py --pack-only       # here, once the real rooms are prepared
#   bash scripts/gpu_train.sh                     # on the GPU machine (after gpu_check.sh, or alone)
#   bash scripts/gpu_train.sh --dry-run           # anywhere: unpack, one tiny CPU epoch, the report
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
exec "$PY" scripts/gpu_train.py "$@"
