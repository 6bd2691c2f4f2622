#!/usr/bin/env bash
# Idempotent set-up of a fresh machine (Python 3.11 + a C++ compiler):
#   1. the Debian libraries Open3D needs (libusb, software Vulkan for offscreen rendering, OpenMP),
#   2. a virtual environment in .venv with the pinned Python dependencies,
#   3. pcseg itself, built in place against the installed torch (no build isolation).
# Re-running it only rebuilds what changed. Prints the pcseg build summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${PCSEG_VENV:-.venv}
DEBS=(libusb-1.0-0 libvulkan1 mesa-vulkan-drivers libgomp1 libegl1 libgl1)

missing=()
for pkg in "${DEBS[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

stamp="$VENV/.pcseg-requirements.sha"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python dependencies (requirements.txt)"
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps -e .
  echo "$want" > "$stamp"
fi

echo "setup: building pcseg._C"
"$VENV/bin/python" setup.py -q build_ext --inplace >/dev/null
"$VENV/bin/pcseg" info
