"""Training sources: one or several prepared caches, each with its training and validation
areas and its share of the training blocks.

A config names its data either as one cache::

    data: {root: data/s3dis, areas_train: [Area_1, ...], areas_val: [Area_5], ...}

or as several, mixed by share (normalised to sum 1) and validated separately::

    data:
      sources:
        - {name: real, root: data/real, areas_train: [...], areas_val: [...], share: 0.5}
        - {name: synthetic, root: data/synthetic, areas_train: [...], areas_val: [], share: 0.5,
           colours: false}
      select_on: real      # the source whose validation mIoU picks best.pt (default: the first validated)

Every source must hold the same classes. A source with ``colours: false`` gives its training
blocks the grey of a cloud without colours (``MISSING_RGB``) while the others keep theirs: a
model then learns colours from the sources whose colours look like what it will segment, and
to work without them from the rest. (``data.colours: false`` turns colours off everywhere,
inference included.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import PcsegError
from .rooms import load_index
from .splits import select_rooms

SOURCE_KEYS = {"name", "root", "areas_train", "areas_val", "share", "colours"}


@dataclass
class Source:
    """One prepared cache: its training and validation rooms (index entries), share, and
    whether its training blocks keep their colours."""

    name: str
    root: str
    classes: list[str]
    areas_val: list[str]
    train: list[dict]
    val: list[dict]
    share: float
    colours: bool = True


def source_specs(data: dict) -> list[dict]:
    """The sources a ``data`` section names, as ``{name, root, areas_train, areas_val, share}``
    specs (one for a single-cache config, named after its folder); checked, not loaded."""
    if "sources" not in data:
        return [{"name": Path(str(data["root"])).name or "data", "root": data["root"],
                 "areas_train": data["areas_train"], "areas_val": data.get("areas_val") or [], "share": 1.0}]
    specs = data["sources"]
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise PcsegError("data.sources must be a non-empty list of {name, root, areas_train, areas_val, share, colours}")
    for spec in specs:
        unknown = set(spec) - SOURCE_KEYS
        if unknown or "root" not in spec or "name" not in spec:
            raise PcsegError(f"data.sources entry {spec}: needs name and root; known keys are "
                             f"{', '.join(sorted(SOURCE_KEYS))}")
    return specs


def load_sources(data: dict) -> list[Source]:
    """The sources a config's ``data`` section names, with their rooms; checked."""
    sources = []
    for spec in source_specs(data):
        share = spec.get("share", 1.0)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or share < 0:
            raise PcsegError(f"data source {spec['name']}: share must be a number >= 0, got {share!r}")
        colours = spec.get("colours", True)
        if not isinstance(colours, bool):
            raise PcsegError(f"data source {spec['name']}: colours must be true or false, got {colours!r}")
        index = load_index(spec["root"])
        train = select_rooms(index["rooms"], spec.get("areas_train") or [], f"{spec['root']}: areas_train")
        val = select_rooms(index["rooms"], spec.get("areas_val") or [], f"{spec['root']}: areas_val")
        if share > 0 and not train:
            raise PcsegError(f"{spec['root']}: no rooms in the training areas {spec.get('areas_train')}")
        sources.append(Source(str(spec["name"]), str(spec["root"]), list(index["classes"]),
                              list(spec.get("areas_val") or []), train, val, float(share), colours))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise PcsegError(f"data.sources: names must be unique, got {names}")
    for source in sources[1:]:
        if source.classes != sources[0].classes:
            raise PcsegError(f"data source {source.name}: its classes differ from {sources[0].name}'s")
    if sum(s.share for s in sources) <= 0:
        raise PcsegError("data.sources: at least one share must be > 0")
    return sources


def selection_source(data: dict, sources: list[Source]) -> Source | None:
    """The source whose validation mIoU selects ``best.pt`` (``data.select_on``), or None."""
    validated = [s for s in sources if s.val]
    wanted = data.get("select_on")
    if wanted is None:
        return validated[0] if validated else None
    for source in validated:
        if source.name == wanted:
            return source
    raise PcsegError(f"data.select_on {wanted!r}: no source of that name with validation rooms "
                     f"(validated: {', '.join(s.name for s in validated) or 'none'})")


class MixedBlockDataset(Dataset):
    """Items drawn from several datasets by share: item ``i`` of epoch ``e`` comes from the
    dataset a generator seeded by ``(seed, e, i)`` picks with probabilities ``shares``, and is
    that dataset's item ``i`` (so the mixture is as reproducible as its parts).

    Args:
        datasets: datasets with ``set_epoch`` whose items can be indexed by any ``i < length``.
        shares: (len(datasets),) non-negative, normalised here.
        length: items per epoch.
    """

    def __init__(self, datasets: list, shares, length: int, seed: int = 0):
        shares = np.asarray(shares, dtype=np.float64)
        self.datasets, self.p, self.length, self.seed, self.epoch = datasets, shares / shares.sum(), length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for dataset in self.datasets:
            dataset.set_epoch(epoch)

    def source_of(self, i: int) -> int:
        """Index of the dataset item ``i`` of this epoch comes from."""
        return int(np.random.default_rng([self.seed, self.epoch, i, 1]).choice(len(self.datasets), p=self.p))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.datasets[self.source_of(i)][i]
