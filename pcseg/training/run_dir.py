"""The run directory: ``config.yaml`` (resolved), ``last.pt``, ``best.pt``, ``metrics.jsonl``,
``curves.png`` and ``confusion.png``. Every file is written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import PcsegError
from ..fileutil import atomic_path


class RunDir:
    """Paths and writers of one training run; refuses to reuse a run without ``resume``. The folder
    is made by the first file written into it, once the run has started."""

    def __init__(self, path, resume: bool):
        self.path = Path(path)
        if resume and not self.last.is_file():
            raise PcsegError(f"{self.path}: nothing to resume (no last.pt)")
        if not resume and self.path.exists() and any(self.path.iterdir()):
            raise PcsegError(f"{self.path}: run directory is not empty (use --resume to continue it)")

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def write_config(self, config: dict) -> None:
        with atomic_path(self.path / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))

    def write_metrics(self, records: list[dict]) -> None:
        with atomic_path(self.path / "metrics.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
