"""Staged training: one config that runs several trainings in a row, each a warm restart from
the one before, so a multi-stage recipe is one command (``pcseg train --config NAME``).

A staged config has a ``stages`` list instead of the usual sections::

    stages:
      - {name: s1, config: acnn_synthetic}                         # a bundled name or a YAML path
      - {name: s2, config: acnn_synthetic_finetune, set: [train.seed=1]}

Each stage is its ``config`` with the ``set`` overrides (as ``--set``) applied, trained into
``OUT/<name>``; every stage after the first starts from the previous stage's weights
exported as float16 (``OUT/<previous>/export.pt``, what ``pcseg export`` writes) unless its
``set`` gives ``train.init``. ``--set`` on the command line applies to every stage. A stage
is done when its ``export.pt`` exists: a re-run with ``--resume`` skips finished stages and
resumes the one that was interrupted, exactly as a single run resumes (a stage killed before
its first checkpoint starts again).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from ..checkpoint import export_checkpoint
from ..config import apply_overrides, load_config
from ..errors import PcsegError
from ..fileutil import atomic_path
from .run_dir import RunDir

PLAN_FILE = "stages.yaml"
STAGE_KEYS = {"name", "config", "set"}


def is_staged(config: dict) -> bool:
    return "stages" in config


def stage_configs(config: dict, overrides: list[str]) -> list[tuple[str, dict]]:
    """(name, resolved config) of every stage, ``overrides`` applied last to each."""
    stages = config["stages"]
    if not isinstance(stages, list) or not stages:
        raise PcsegError("stages must be a non-empty list of {name, config, set}")
    resolved, names = [], set()
    for stage in stages:
        if not isinstance(stage, dict) or set(stage) - STAGE_KEYS or "name" not in stage or "config" not in stage:
            raise PcsegError(f"stage {stage!r}: expected {{name, config, set}}")
        name = str(stage["name"])
        if name in names or not name or "/" in name:
            raise PcsegError(f"stage name {name!r}: names must be unique folder names")
        names.add(name)
        base = load_config(str(stage["config"]))
        if is_staged(base):
            raise PcsegError(f"stage {name}: its config {stage['config']} is itself staged")
        own = stage.get("set") or []
        if not isinstance(own, list):
            raise PcsegError(f"stage {name}: set must be a list of key=value strings")
        resolved.append((name, apply_overrides(base, [str(o) for o in own] + list(overrides))))
    return resolved


def _plan(config: dict, overrides: list[str], out: Path, resume: bool) -> dict:
    """The staged config and overrides this run follows, written to (or, resuming, read from) OUT."""
    plan_path = out / PLAN_FILE
    if resume:
        if not plan_path.is_file():
            raise PcsegError(f"{out}: nothing to resume (no {PLAN_FILE})")
        return yaml.safe_load(plan_path.read_text())
    if out.exists() and any(out.iterdir()):
        raise PcsegError(f"{out}: run directory is not empty (use --resume to continue it)")
    out.mkdir(parents=True, exist_ok=True)
    plan = {"config": copy.deepcopy(config), "overrides": list(overrides)}
    with atomic_path(plan_path) as tmp:
        tmp.write_text(yaml.safe_dump(plan, sort_keys=False))
    return plan


def train_stages(config: dict, overrides: list[str], out_dir, resume: bool = False, train_fn=None) -> Path:
    """Run every stage of a staged config into ``out_dir``; returns the last stage's folder.

    ``train_fn(config, out_dir, resume)`` trains one stage (default :func:`pcseg.training.loop.train`).
    """
    if train_fn is None:
        from .loop import train as train_fn
    out = Path(out_dir)
    plan = _plan(config, overrides, out, resume)
    stages = stage_configs(plan["config"], plan["overrides"])  # checked before any stage trains
    previous = None
    for spec, (name, stage_config) in zip(plan["config"]["stages"], stages):
        folder = out / name
        export = folder / "export.pt"
        if not export.is_file():
            sets_init = any(str(o).startswith("train.init=") for o in spec.get("set") or [])
            if previous is not None and not sets_init:
                stage_config["train"]["init"] = str(previous)
            interrupted = (folder / "last.pt").is_file()
            if folder.exists() and not interrupted:
                shutil.rmtree(folder)  # killed before its first checkpoint: nothing to resume
            print(f"stage {name}: {'resuming' if interrupted else 'training'} in {folder}")
            train_fn(stage_config, folder, resume=interrupted)
            export_checkpoint(RunDir(folder, resume=True).best, export)
        previous = export
    return out / stages[-1][0]
