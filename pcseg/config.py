"""Training configs: YAML files (bundled in ``pcseg/configs/`` or any path) with dotted
``key=value`` overrides, e.g. ``--set train.lr=0.002 data.areas_val=[Area_5]``."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .errors import PcsegError

BUNDLED = Path(__file__).parent / "configs"
#: Data settings a config may leave out, with their defaults: ``--set`` may still set them, and a
#: run's ``config.yaml`` spells them out.
DATA_DEFAULTS = {"colours": True, "refine": True, "balance_classes": False, "sampling": "random", "samples_per_epoch": None,
                 "workers": 0}


def bundled_configs() -> list[str]:
    """Names of the configs shipped with pcseg."""
    return sorted(p.stem for p in BUNDLED.glob("*.yaml"))


def load_config(name_or_path: str) -> dict:
    """A config from a YAML path, or by the name of a bundled config."""
    path = Path(name_or_path)
    if not path.is_file():
        path = BUNDLED / f"{name_or_path}.yaml"
    if not path.is_file():
        raise PcsegError(f"config {name_or_path!r} not found (bundled: {', '.join(bundled_configs())})")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PcsegError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise PcsegError(f"{path}: a config is a mapping of sections")
    return config


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """A copy of ``config`` with each ``dotted.key=value`` set; values parse as YAML scalars/lists."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise PcsegError(f"override {item!r} is not of the form key=value")
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise PcsegError(f"override {item!r}: no section {part!r} in the config")
            node = node[part]
        if parts[-1] not in node and not (parts[:-1] == ["data"] and parts[-1] in DATA_DEFAULTS):
            raise PcsegError(f"override {item!r}: unknown key {key!r}")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise PcsegError(f"override {item!r}: value is not valid YAML") from None
    return config
