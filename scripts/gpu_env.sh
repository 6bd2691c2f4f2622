# Sourced by the one-shot GPU scripts (gpu_check.sh, gpu_train.sh) on a machine with its own torch
# and no network: sets PY and, unless --dry-run is among the arguments, installs the wheels of
# .whl/ (made here by scripts/gpu_wheels.sh) into a private folder put on PYTHONPATH.
PY=${PYTHON:-python3}
dry_run=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && dry_run=1; done
if [ "$dry_run" = 0 ] && compgen -G ".whl/*.whl" >/dev/null; then
  site=${PCSEG_WHEEL_SITE:-/tmp/pcseg-wheels}
  echo "$(basename "$0" .sh): installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into $site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
