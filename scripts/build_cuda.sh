#!/usr/bin/env bash
# Full CUDA build of pcseg._C against the CUDA build of torch 2.14.1, in a
# separate virtual environment, followed by an import check.
#
#   scripts/build_cuda.sh            # venv in build/cuda-venv (reused when present)
#   CUDA_VENV=/tmp/v scripts/build_cuda.sh
#
# Needs python3.11, nvcc under CUDA_HOME (default /usr/local/cuda) and about
# 6 GB of disk for torch. No GPU is needed: the check is that the extension
# builds, loads, reports CUDA and has CUDA kernels registered for every op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CUDA_VENV:-$ROOT/build/cuda-venv}"
PYTHON="${PYTHON:-python3.11}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export FORCE_CUDA=1
export MAX_JOBS="${MAX_JOBS:-2}"

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.14.1' or torch.version.cuda is None)" 2>/dev/null; then
    echo "== installing torch==2.14.1 (CUDA build) and numpy"
    "$VENV/bin/pip" install -q torch==2.14.1 numpy setuptools wheel ninja
fi
echo "== torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
installed=$(date +%s)

# Build out of tree so the CPU build in the working tree is left alone.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/cuda_ops" "$ROOT/pcseg" "$WORK/"
[ -f "$ROOT/README.md" ] && cp "$ROOT/README.md" "$WORK/"
rm -f "$WORK"/pcseg/_C*.so
echo "== building pcseg._C with FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
(cd "$WORK" && "$VENV/bin/python" setup.py -q build_ext --inplace)
built=$(date +%s)

echo "== import check"
(cd "$WORK" && "$VENV/bin/python" - <<'PY'
import torch
import pcseg.ops as ops

info = ops.build_info()
print("build_info:", info)
assert info["cuda"] is True, "extension was built without CUDA kernels"
for name in ("fps", "knn", "ring_knn"):
    op = getattr(torch.ops.pcseg, name)
    for key in ("CPU", "CUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op.default.name(), key), f"{name}: no {key} kernel"
print("CPU and CUDA kernels registered for fps, knn, ring_knn")
PY
)
end=$(date +%s)
echo "== done: install/check torch $((installed - start)) s, build $((built - installed)) s, total $((end - start)) s"
