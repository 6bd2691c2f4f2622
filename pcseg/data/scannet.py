"""Preparation of ScanNet scans (NYU40 labels) into the room cache, in S3DIS's 13 classes.

Two layouts are read, anywhere below ``SRC`` (flat or one folder per scan):

- the release's meshes: ``<scan>_vh_clean_2.ply`` (vertices x y z, red green blue) with
  ``<scan>_vh_clean_2.labels.ply`` (the same vertices, a ``label`` property in NYU40 ids);
- the common numpy export: ``<scan>_vert.npy`` (float (N, 6+): x y z r g b) with
  ``<scan>_sem_label.npy`` ((N,) NYU40 ids).

Every mesh vertex becomes a point. NYU40 ids map to S3DIS classes through a class table
(``datasets/scannet/nyu40_to_s3dis.tsv`` by default; ``ignore`` becomes 255). A scan
``sceneRRRR_SS`` goes to area ``sceneRRRR``: rescans of one room share an area, so a split
by areas never puts one room on both sides. Every scan is checked before anything is
written (a missing labels file, a label count that differs from the vertex count, an id the
table does not know: one-line errors); rooms are written atomically, so a re-run resumes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import S3DIS_CLASSES, UNLABELLED
from ..errors import PcsegError
from .parallel import map_with_progress
from .rooms import read_room_entry, room_is_complete, write_index, write_room

#: The NYU40 -> S3DIS class table shipped with the project.
DEFAULT_MAPPING = Path(__file__).resolve().parents[2] / "datasets" / "scannet" / "nyu40_to_s3dis.tsv"

#: (vertex file suffix, labels file suffix) of each layout read.
LAYOUTS = (("_vh_clean_2.ply", "_vh_clean_2.labels.ply"), ("_vert.npy", "_sem_label.npy"))

SCAN_PATTERN = re.compile(r"^(scene\d{4})_\d{2}$")


def read_mapping(path: os.PathLike = DEFAULT_MAPPING) -> np.ndarray:
    """The class table as a lookup: ``lut[nyu40_id]`` is the S3DIS id, 255 for ``ignore``.

    The table has lines ``id<TAB>name<TAB>s3dis_class`` (``#`` comments); ids missing from it
    are unknown (``lut`` value -1), which :func:`prepare_scannet` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise PcsegError(f"{path}: NYU40 -> S3DIS class table not found")
    lut = np.full(65536, -1, dtype=np.int32)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        target = fields[-1].strip()
        if len(fields) != 3 or not fields[0].strip().isdigit() or int(fields[0]) >= len(lut):
            raise PcsegError(f"{path}:{number}: expected 'nyu40_id<TAB>name<TAB>s3dis_class'")
        if target != "ignore" and target not in S3DIS_CLASSES:
            raise PcsegError(f"{path}:{number}: unknown S3DIS class {target!r}")
        lut[int(fields[0])] = UNLABELLED if target == "ignore" else S3DIS_CLASSES.index(target)
    return lut


@dataclass
class Scan:
    """One scan found under SRC: its name, area, vertex and labels files."""

    name: str
    area: str
    vertices: Path
    labels: Path


def find_scans(src: os.PathLike) -> list[Scan]:
    """The scans under ``src`` (either layout), sorted by name; a vertex file without its
    labels file, or a name found twice, is a :class:`PcsegError`."""
    src = Path(src)
    if not src.is_dir():
        raise PcsegError(f"{src}: no such folder (expected ScanNet scans: *_vh_clean_2.ply or *_vert.npy)")
    scans: dict[str, Scan] = {}
    for vertex_suffix, labels_suffix in LAYOUTS:
        for vertices in sorted(src.rglob(f"*{vertex_suffix}")):
            name = vertices.name[: -len(vertex_suffix)]
            labels = vertices.with_name(name + labels_suffix)
            if not labels.is_file():
                raise PcsegError(f"{vertices}: its labels file {labels.name} is missing")
            if name in scans:
                raise PcsegError(f"{vertices}: scan {name} found twice (also {scans[name].vertices})")
            room = SCAN_PATTERN.match(name)
            scans[name] = Scan(name, room.group(1) if room else "all", vertices, labels)
    if not scans:
        raise PcsegError(f"{src}: no ScanNet scans found (expected <scan>_vh_clean_2.ply with "
                         "<scan>_vh_clean_2.labels.ply, or <scan>_vert.npy with <scan>_sem_label.npy)")
    return [scans[k] for k in sorted(scans)]


def _read_labels(path: Path) -> np.ndarray:
    """NYU40 ids (N,) int64 of a ``.labels.ply`` or ``_sem_label.npy`` file."""
    try:
        if path.suffix == ".npy":
            ids = np.load(path)
        else:
            from plyfile import PlyData
            ids = PlyData.read(str(path))["vertex"]["label"]
    except (OSError, ValueError, KeyError) as exc:
        raise PcsegError(f"{path}: unreadable labels ({exc})") from None
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise PcsegError(f"{path}: expected one integer label per vertex, got {ids.dtype} {ids.shape}")
    return ids.astype(np.int64)


def _read_vertices(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (N, 3) float64 metres, rgb (N, 3) uint8) of a scan's vertex file."""
    if path.suffix == ".npy":
        try:
            vert = np.load(path)
        except (OSError, ValueError) as exc:
            raise PcsegError(f"{path}: unreadable vertices ({exc})") from None
        if vert.ndim != 2 or vert.shape[1] < 6:
            raise PcsegError(f"{path}: expected (N, 6) rows x y z r g b, got shape {vert.shape}")
        return vert[:, :3].astype(np.float64), np.clip(np.rint(vert[:, 3:6]), 0, 255).astype(np.uint8)
    from ..io import read_cloud
    cloud = read_cloud(path)
    rgb = cloud.rgb if cloud.rgb is not None else np.full((len(cloud.xyz), 3), 128, np.uint8)
    return cloud.absolute_xyz(), rgb


def _vertex_count(path: Path) -> int:
    if path.suffix == ".npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    from plyfile import PlyData
    return int(PlyData.read(str(path), mmap=True)["vertex"].count)


def check_scan(scan: Scan, lut: np.ndarray) -> np.ndarray:
    """The scan's S3DIS labels (N,) uint8, after checking its counts and ids."""
    ids = _read_labels(scan.labels)
    count = _vertex_count(scan.vertices)
    if len(ids) != count:
        raise PcsegError(f"{scan.labels}: {len(ids):,} labels for {count:,} vertices in {scan.vertices.name}")
    known = (ids >= 0) & (ids < len(lut))
    unknown = np.unique(ids[~known | (lut[np.clip(ids, 0, len(lut) - 1)] < 0)])
    if len(unknown):
        shown = ", ".join(str(i) for i in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise PcsegError(f"{scan.labels}: NYU40 ids not in the class table: {shown}")
    return lut[ids].astype(np.uint8)


@dataclass
class ScanReport:
    path: str
    entry: dict
    resumed: bool = False


def _prepare_scan(args) -> ScanReport:
    scan, dst, lut = args
    rel = f"{scan.area}/{scan.name}"
    if room_is_complete(dst, rel):
        return ScanReport(rel, read_room_entry(dst, rel), resumed=True)
    labels = check_scan(scan, lut)
    xyz, rgb = _read_vertices(scan.vertices)
    finite = np.isfinite(xyz).all(axis=1)
    entry = write_room(dst, scan.area, scan.name, xyz[finite], rgb[finite], labels[finite],
                       len(S3DIS_CLASSES), source=str(scan.vertices))
    return ScanReport(rel, entry)


def prepare_scannet(src: os.PathLike, dst: os.PathLike, mapping: os.PathLike = DEFAULT_MAPPING,
                    workers: int = 2, progress: bool = True) -> list[ScanReport]:
    """Prepare every ScanNet scan under ``src`` into the cache ``dst`` (S3DIS classes)."""
    lut = read_mapping(mapping)
    scans = find_scans(src)
    for scan in scans:  # every scan is checked before anything is written
        if not room_is_complete(dst, f"{scan.area}/{scan.name}"):
            check_scan(scan, lut)
    Path(dst).mkdir(parents=True, exist_ok=True)
    reports = map_with_progress(_prepare_scan, [(s, Path(dst), lut) for s in scans], workers,
                                "prepare", "scan", progress)
    write_index(dst, S3DIS_CLASSES, [r.entry for r in reports])
    return reports
