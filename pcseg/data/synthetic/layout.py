"""Writing generated rooms in the raw Stanford S3DIS layout::

    ROOT/Area_N/<room>/<room>.txt                    every point, "x y z r g b"
    ROOT/Area_N/<room>/Annotations/<class>_<i>.txt    one file per instance
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ...fileutil import atomic_path
from ..parallel import map_with_progress
from .room import SyntheticRoom, choose_kind, generate_room

#: Folder under the layout root where rooms are written before they are renamed into place.
STAGING = ".partial"


def _write_rows(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Write ``x y z r g b`` lines (6 decimals, integer colours), atomically."""
    import pandas as pd

    frame = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    frame["x"], frame["y"], frame["z"] = (frame[c].map("{:.6f}".format) for c in "xyz")
    for i, c in enumerate("rgb"):
        frame[c] = rgb[:, i]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep=" ", header=False, index=False)


def write_room_layout(room: SyntheticRoom, area_dir: Path) -> Path:
    """Write one room as ``area_dir/<room>/`` in the raw layout; returns the room folder.

    The room is written under ``<layout root>/.partial/`` (``STAGING``) and renamed into place,
    so a room folder is either complete or absent, even if the writer is killed.
    """
    folder = area_dir / room.name
    staging = area_dir.parent / STAGING / area_dir.name / room.name
    shutil.rmtree(staging, ignore_errors=True)
    _write_rows(staging / f"{room.name}.txt", room.xyz, room.rgb)
    seen: dict[str, int] = {}
    for inst, cls in enumerate(room.instance_classes):
        mask = room.instance == inst
        if not mask.any():
            continue
        seen[cls] = seen.get(cls, 0) + 1
        _write_rows(staging / "Annotations" / f"{cls}_{seen[cls]}.txt", room.xyz[mask], room.rgb[mask])
    area_dir.mkdir(parents=True, exist_ok=True)
    os.replace(staging, folder)
    return folder


def _generate_and_write(job: tuple) -> Path:
    """Worker: generate room ``(seed, name, options)`` and write it under ``area_dir``."""
    seed, name, area_dir, options = job
    return write_room_layout(generate_room(seed, name=name, **options), area_dir)


def write_s3dis_layout(root: os.PathLike, areas: dict | int = 1, seed: int = 0, rooms_per_area: int = 3,
                       workers: int = 1, progress: bool = False, **room_options) -> list[Path]:
    """Generate rooms into the raw S3DIS layout under ``root``.

    Args:
        areas: ``{"Area_1": n_rooms, ...}``, or a number of areas with ``rooms_per_area`` each.
        seed: base seed; room j of the whole set uses ``seed * 100_003 + j``.
        workers: processes generating rooms in parallel (the result does not depend on it).
        progress: show a progress bar.
        room_options: passed to :func:`generate_room` (``density``, ``kind``, ...).
    Returns every room's folder, in room order. Rooms whose folder already exists are kept,
    not generated again: room j is the same whatever the number of areas, so a killed run
    resumes and a larger ``areas`` only adds the new rooms.
    """
    if isinstance(areas, int):
        areas = {f"Area_{i + 1}": rooms_per_area for i in range(areas)}
    root = Path(root)
    jobs, j = [], 0
    for area, n_rooms in areas.items():
        counters: dict[str, int] = {}
        for _ in range(n_rooms):
            rng = np.random.default_rng(seed * 100_003 + j)
            kind = room_options.get("kind") or choose_kind(rng)
            counters[kind] = counters.get(kind, 0) + 1
            jobs.append((seed * 100_003 + j, f"{kind}_{counters[kind]}", root / area, {**room_options, "kind": kind}))
            j += 1
    folders = [area_dir / name for _, name, area_dir, _ in jobs]
    missing = [job for job, folder in zip(jobs, folders) if not folder.is_dir()]
    map_with_progress(_generate_and_write, missing, workers, desc="generating", unit="room", progress=progress)
    shutil.rmtree(root / STAGING, ignore_errors=True)
    return folders
