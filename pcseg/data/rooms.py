"""The per-room cache that every dataset is prepared into, and that training reads.

Layout of a cache folder ``ROOT``::

    ROOT/index.json                    {"format": 1, "classes": [...], "rooms": [entry, ...]}
    ROOT/<area>/<room>/xyz.npy         float32 (N, 3), metres, room minimum corner at 0
    ROOT/<area>/<room>/rgb.npy         uint8 (N, 3)
    ROOT/<area>/<room>/label.npy       uint8 (N,), class id, 255 = unlabelled
    ROOT/<area>/<room>/meta.json       the room's entry; written last, so it marks a complete room

An entry is ``{"area", "name", "path", "num_points", "class_counts", "origin"}`` where
``origin`` (float64, metres) is the shift that was subtracted from the source coordinates.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import PcsegError
from ..fileutil import atomic_path

CACHE_FORMAT = 1
ARRAYS = ("xyz", "rgb", "label")
#: The keys :func:`write_room` gives every entry; others are the preparer's ``extra``.
ENTRY_KEYS = ("area", "name", "path", "num_points", "class_counts", "origin")


@dataclass
class Room:
    """One room of the cache: xyz (N, 3) float32 metres, rgb (N, 3) uint8, labels (N,) uint8."""

    xyz: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray
    name: str
    area: str


def _write_json(path: Path, payload) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))


def room_is_complete(root: os.PathLike, rel_path: str) -> bool:
    """True when the room's arrays and its ``meta.json`` (written last) exist."""
    folder = Path(root) / rel_path
    return (folder / "meta.json").is_file() and all((folder / f"{a}.npy").is_file() for a in ARRAYS)


def read_room_entry(root: os.PathLike, rel_path: str) -> dict:
    """The entry stored in a complete room's ``meta.json``."""
    return json.loads((Path(root) / rel_path / "meta.json").read_text())


def write_room(root: os.PathLike, area: str, name: str, xyz: np.ndarray, rgb: np.ndarray,
               labels: np.ndarray, num_classes: int, **extra) -> dict:
    """Write one room atomically (arrays first, ``meta.json`` last) and return its entry.

    ``xyz`` (N, 3) float64 source coordinates are shifted so the minimum corner is 0 and
    stored as float32; the shift is the entry's ``origin``. ``extra`` is stored in the entry.
    """
    folder = Path(root) / area / name
    xyz = np.asarray(xyz, dtype=np.float64)
    origin = xyz.min(axis=0) if len(xyz) else np.zeros(3)
    arrays = {"xyz": (xyz - origin).astype(np.float32),
              "rgb": np.asarray(rgb, dtype=np.uint8), "label": np.asarray(labels, dtype=np.uint8)}
    for key, array in arrays.items():
        with atomic_path(folder / f"{key}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array))
    known = arrays["label"][arrays["label"] < num_classes]
    entry = {"area": area, "name": name, "path": f"{area}/{name}", "num_points": int(len(xyz)),
             "class_counts": np.bincount(known, minlength=num_classes).tolist(),
             "origin": origin.tolist(), **extra}
    _write_json(folder / "meta.json", entry)
    return entry


def write_index(root: os.PathLike, classes: Sequence[str], entries: Sequence[dict]) -> Path:
    """Write ``ROOT/index.json`` atomically, rooms sorted by path."""
    path = Path(root) / "index.json"
    rooms = sorted(entries, key=lambda e: e["path"])
    _write_json(path, {"format": CACHE_FORMAT, "classes": list(classes), "rooms": rooms})
    return path


def load_index(root: os.PathLike) -> dict:
    """Read ``ROOT/index.json``; raises :class:`PcsegError` when it is missing or foreign."""
    path = Path(root) / "index.json"
    if not path.is_file():
        raise PcsegError(f"{root}: not a prepared dataset (no index.json); run 'pcseg prepare' first")
    index = json.loads(path.read_text())
    if index.get("format") != CACHE_FORMAT:
        raise PcsegError(f"{path}: unknown cache format {index.get('format')!r}")
    return index


def load_room(root: os.PathLike, entry: dict, mmap: bool = True) -> Room:
    """Load one room of the cache (memory-mapped by default)."""
    folder = Path(root) / entry["path"]
    mode = "r" if mmap else None
    arrays = {a: np.load(folder / f"{a}.npy", mmap_mode=mode) for a in ARRAYS}
    return Room(arrays["xyz"], arrays["rgb"], arrays["label"], entry["name"], entry["area"])
