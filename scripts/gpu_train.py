"""Train the default recipe on a lent GPU within a time budget; run through scripts/gpu_train.sh.

Steps: unpack the packed training rooms (``--pack``, made here by ``--pack-only`` from the
prepared caches the config names) into ``OUT/data``; build ``pcseg._C`` in place for this GPU
unless a CUDA build is already there (scripts/gpu_check.sh makes one); then ``pcseg train`` with
the config's roots pointed at the unpacked caches, ``train.device: cuda`` and ``--epochs`` if
given, stopped at the end of the budget (the last checkpoint stays: the run resumes with
``--resume``). Writes the run folder ``OUT/run``, ``gpu_train.json`` (environment, steps, times,
the validation figures of ``metrics.jsonl``) and ``gpu_train.log`` to ``$OUT``, else
``build/gpu_train/`` (``--out`` overrides both). Exit status 0 when training ended by itself.

``--dry-run`` needs no GPU: it unpacks, trains one tiny epoch on the CPU without validation,
and writes the report, so the path cannot rot between GPU runs.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)

DEFAULT_PACK = ROOT / "build" / "real_rooms.npz"


def config_sources(config_name: str) -> tuple[dict, dict[str, str]]:
    """The resolved config and its sources' cache folders ({source name: root})."""
    from pcseg.config import load_config
    from pcseg.data.sources import source_specs
    from pcseg.errors import PcsegError

    config = load_config(config_name)
    if "stages" in config:
        raise PcsegError(f"{config_name}: a staged config; give one of its stages' configs (e.g. acnn_real_stage1)")
    return config, {spec["name"]: spec["root"] for spec in source_specs(config["data"])}


def gpu_config(config: dict, roots: dict[str, Path], dry_run: bool, epochs: int | None) -> dict:
    """``config`` reading the unpacked caches, on the GPU (or, for a dry run, one tiny CPU epoch)."""
    config = copy.deepcopy(config)
    for spec in config["data"]["sources"]:
        spec["root"] = str(roots[spec["name"]])
    train = config["train"]
    train["device"] = "cpu" if dry_run else "cuda"
    if epochs:
        train["epochs"] = epochs
    if dry_run:
        train.update(epochs=1, val_every=1000, batch_size=2)
        config["data"].update(samples_per_epoch=4, num_points=256, workers=0)
    else:
        config["data"]["workers"] = min(8, os.cpu_count() or 1)
    return config


def cuda_build(log, env: dict, environment_info: dict, timeout: float) -> bool:
    """Build pcseg._C for this GPU unless the in-place build already has CUDA; True when it has."""
    if gpu_check.extension_info(log, env).get("cuda"):
        return True
    build_env = gpu_check.cuda_build_env(env, environment_info)
    return bool(gpu_check.build_in_place(log, env, build_env, timeout).get("cuda"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="no GPU: unpack, one tiny CPU epoch, the report")
    parser.add_argument("--pack-only", action="store_true", help="only pack the config's prepared caches into --pack")
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK, help=f"packed rooms (default {DEFAULT_PACK})")
    parser.add_argument("--config", default="acnn_real_stage1",
                        help="a single-stage training config (default acnn_real_stage1, the default model's recipe)")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for everything (default 480)")
    parser.add_argument("--out", type=Path, help="report and run folder (default: $OUT, else build/gpu_train)")
    args = parser.parse_args()
    start = time.monotonic()

    from pcseg.data.compact import pack_caches, unpack_caches
    from pcseg.errors import PcsegError

    try:
        config, caches = config_sources(args.config)
    except PcsegError as exc:
        print(f"gpu_train: error: {exc}", file=sys.stderr)
        return 2
    if args.pack_only:
        try:
            path = pack_caches(caches, args.pack)
        except PcsegError as exc:
            print(f"gpu_train: error: {exc}", file=sys.stderr)
            return 2
        print(f"gpu_train: packed {', '.join(caches)} into {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0

    out = (args.out or Path(os.environ.get("OUT") or ROOT / "build" / "gpu_train")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = gpu_check.Log(out / "gpu_train.log")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "")
                                                                        .split(os.pathsep) if p]),
               PYTHONUNBUFFERED="1")
    report = {"dry_run": args.dry_run, "config": args.config, "budget_s": args.budget,
              "environment": gpu_check.environment(sys.executable), "steps": []}

    def finish(ok: bool, **extra) -> int:
        report.update(ok=ok, elapsed_s=round(time.monotonic() - start, 1), **extra)
        with open(out / "gpu_train.json.tmp", "w") as fh:
            json.dump(report, fh, indent=1, default=str)
        os.replace(out / "gpu_train.json.tmp", out / "gpu_train.json")
        log(f"gpu_train: {'ok' if ok else 'FAILED'} in {report['elapsed_s']} s; report {out / 'gpu_train.json'}")
        return 0 if ok else 1

    if not args.dry_run and not report["environment"].get("cuda_available"):
        return finish(False, error="no CUDA device: run on a GPU machine, or use --dry-run")
    try:
        roots = unpack_caches(args.pack, out / "data")
    except PcsegError as exc:
        return finish(False, error=str(exc))
    missing = set(caches) - set(roots)
    if missing:
        return finish(False, error=f"{args.pack}: no packed cache for source(s) {', '.join(sorted(missing))}")
    report["steps"].append({"name": "unpack", "seconds": round(time.monotonic() - start, 1),
                            "rooms": {name: len(json.loads((root / 'index.json').read_text())['rooms'])
                                      for name, root in roots.items()}})
    if not args.dry_run:
        tic = time.monotonic()
        built = cuda_build(log, env, report["environment"], max(60.0, args.budget - (tic - start) - 120))
        report["steps"].append({"name": "build", "seconds": round(time.monotonic() - tic, 1), "cuda": built})
        if not built:
            return finish(False, error="pcseg._C has no CUDA kernels after the build (see gpu_train.log)")
    config_path = out / "gpu_config.yaml"
    config_path.write_text(yaml.safe_dump(gpu_config(config, roots, args.dry_run, args.epochs), sort_keys=False))
    run_dir = out / "run"
    cmd = [sys.executable, "-m", "pcseg", "train", "--config", str(config_path), "--out", str(run_dir)]
    if (run_dir / "last.pt").is_file():
        cmd.append("--resume")
    tic = time.monotonic()
    code, _ = gpu_check.run(cmd, log, max(10.0, args.budget - (tic - start)), env)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if line.strip()] if (run_dir / "metrics.jsonl").is_file() else []
    report["steps"].append({"name": "train", "seconds": round(time.monotonic() - tic, 1), "exit_code": code,
                            "stopped_by_budget": code is None})
    return finish(code == 0, metrics=metrics, checkpoints=sorted(p.name for p in run_dir.glob("*.pt")))


if __name__ == "__main__":
    sys.exit(main())
