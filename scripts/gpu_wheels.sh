#!/usr/bin/env bash
# Downloads, into .whl/ (ignored by git), the wheels that scripts/gpu_check.sh installs on a
# GPU machine that has torch, numpy, scipy and pytest but no network: the readers pcseg's
# tests and `pcseg segment` import that such a machine lacks. Python 3.12, x86-64 Linux by
# default (GPU_PYTHON_VERSION to change it). Needs pip and access to PyPI; run it here, then
# send .whl/ along with the checkout.
#
#   scripts/gpu_wheels.sh            # -> .whl/*.whl (about 6 MB)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
PYVER=${GPU_PYTHON_VERSION:-3.12}
DEST=.whl
# One pinned version each (the versions requirements.txt resolves to today); their own
# dependencies are listed too, since the download runs without dependency resolution.
WHEELS=(
  plyfile==1.1.5
  laspy==2.7.0 lazrs==0.8.2
  pypcd4==1.5.1 python-neo-lzf==0.3.5 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5
)
PLATFORMS=()
for n in 17 24 27 28 31 34 35; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${WHEELS[@]}"
ls -1 "$DEST"
du -sh "$DEST"
