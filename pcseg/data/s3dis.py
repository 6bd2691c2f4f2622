"""Preparation of raw S3DIS (Stanford layout) into the room cache.

Expected layout (``Stanford3dDataset_v1.2_Aligned_Version``)::

    SRC/Area_N/<room>/Annotations/<class>_<i>.txt     lines "x y z r g b"

Class names outside the 13 S3DIS classes (e.g. ``stairs``) become ``clutter``. Rooms
are prepared in parallel, each written atomically, so an interrupted run resumes where
it stopped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import S3DIS_CLASSES
from ..errors import PcsegError
from .parallel import map_with_progress
from .rooms import read_room_entry, room_is_complete, write_index, write_room
from .text_points import parse_points

AREA_PATTERN = re.compile(r"^Area_\d+$")
CLUTTER = S3DIS_CLASSES.index("clutter")


@dataclass
class RoomReport:
    """What preparing one room found: problems as ``file:line: ...`` strings.

    A room found complete in the cache (``resumed``) has only its ``entry``, which keeps the
    counts (``repaired_lines``, ``skipped_lines``) and ``unknown_classes`` of its preparation.
    """

    path: str
    entry: dict
    repaired: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    unknown_classes: list = field(default_factory=list)
    resumed: bool = False


def _not_a_root_hint(src: Path) -> str:
    """A hint for a folder that is not an S3DIS root but may be near one."""
    if AREA_PATTERN.match(src.name):
        return f"; {src.name} is one area: give its parent folder"
    if (src / "Annotations").is_dir():
        return "; this is one room: give the folder that holds Area_1 ... Area_6"
    inner = [p for p in sorted(src.iterdir()) if p.is_dir()
             and any(AREA_PATTERN.match(q.name) for q in p.iterdir() if q.is_dir())]
    return f"; did you mean {inner[0]}?" if inner else ""


def find_rooms(src: os.PathLike) -> list[Path]:
    """Room folders under an S3DIS root, checked; raises :class:`PcsegError` for a wrong folder.

    The non-aligned release (``Stanford3dDataset_v1.2``) has the same layout but rooms
    rotated about z by arbitrary angles; it is recognised by its folder name or by the
    ``Area_N/Area_N_alignmentAngle.txt`` files that only it ships, and refused.
    """
    src = Path(src)
    if not src.is_dir():
        raise PcsegError(f"{src}: no such folder (expected the S3DIS root with Area_1 ... Area_6)")
    areas = sorted(p for p in src.iterdir() if p.is_dir() and AREA_PATTERN.match(p.name))
    if not areas:
        raise PcsegError(f"{src}: not an S3DIS root: expected folders Area_1 ... Area_6 "
                         f"(Stanford3dDataset_v1.2_Aligned_Version){_not_a_root_hint(src)}")
    angles = [a / f"{a.name}_alignmentAngle.txt" for a in areas]
    if src.name == "Stanford3dDataset_v1.2" or any(p.is_file() for p in angles):
        raise PcsegError(f"{src}: this is the non-aligned S3DIS release (rooms not rotated to the "
                         "axes, Area_N_alignmentAngle.txt present); use "
                         "Stanford3dDataset_v1.2_Aligned_Version")
    rooms = [room for area in areas for room in sorted(area.iterdir())
             if room.is_dir() and (room / "Annotations").is_dir()]
    if not rooms:
        raise PcsegError(f"{src}: no room has an Annotations folder "
                         "(expected Area_N/<room>/Annotations/<class>_<i>.txt)")
    return rooms


def class_of_annotation(path: Path) -> tuple[int, bool]:
    """Class id from an annotation file name ``<class>_<i>.txt``; unknown names -> clutter.

    Returns (class id, whether the name was known).
    """
    name = path.stem.rsplit("_", 1)[0].lower()
    if name in S3DIS_CLASSES:
        return S3DIS_CLASSES.index(name), True
    return CLUTTER, False


def prepare_room(room: Path, dst: Path) -> RoomReport:
    """Parse one room's annotations and write it to the cache under ``dst``."""
    rel = f"{room.parent.name}/{room.name}"
    if room_is_complete(dst, rel):
        return RoomReport(rel, read_room_entry(dst, rel), resumed=True)
    xyz, rgb, labels = [], [], []
    report = RoomReport(rel, {})
    for ann in sorted(room.glob("Annotations/*.txt")):
        label, known = class_of_annotation(ann)
        if not known:
            report.unknown_classes.append(ann.stem.rsplit("_", 1)[0])
        parsed = parse_points(ann)
        report.repaired += parsed.repaired
        report.skipped += parsed.skipped
        xyz.append(parsed.xyz)
        rgb.append(parsed.rgb)
        labels.append(np.full(len(parsed.xyz), label, dtype=np.uint8))
    if not xyz or sum(len(a) for a in xyz) == 0:
        raise PcsegError(f"{room}: Annotations holds no points")
    report.entry = write_room(dst, room.parent.name, room.name, np.concatenate(xyz),
                              np.concatenate(rgb), np.concatenate(labels), len(S3DIS_CLASSES),
                              repaired_lines=len(report.repaired), skipped_lines=len(report.skipped),
                              unknown_classes=report.unknown_classes)
    return report


def _prepare_room_args(args):
    return prepare_room(*args)


def prepare_s3dis(src: os.PathLike, dst: os.PathLike, workers: int = 2,
                  progress: bool = True) -> list[RoomReport]:
    """Prepare every room of an S3DIS root into the cache ``dst``; returns one report per room.

    Rooms already complete in ``dst`` are skipped. ``index.json`` is written last.
    """
    rooms = find_rooms(src)
    dst = Path(dst)
    if dst.resolve() == Path(src).resolve():
        raise PcsegError(f"{dst}: the output folder must differ from the S3DIS root")
    dst.mkdir(parents=True, exist_ok=True)
    reports = map_with_progress(_prepare_room_args, [(room, dst) for room in rooms], workers,
                                "prepare", "room", progress)
    write_index(dst, S3DIS_CLASSES, [r.entry for r in reports])
    return reports
