"""Preparation of a folder of the user's own labelled PLY (or LAS/PCD) scans into the cache.

Every cloud file below ``SRC`` becomes one room; its area is its first sub-folder below
``SRC`` (files directly in ``SRC`` go to area ``all``). Labels come from the file's label
property (see docs/FORMATS.md); the class table names them:

- ``.json`` / ``.yaml``: a list of names (id = position) or a mapping ``{id: name}``;
- ``.txt``: one name per line (id = line number from 0), or ``id name`` per line.

Labels outside the table become 255 (unlabelled); labels that are not whole numbers (2.7) are an
error. Every bad file of the folder is named in one message (headers are checked before any file
is read; the rooms of the good files are kept in the cache for the run after the fix). Non-finite points are left out of the cache; clouds without colours are stored with
mid-grey colours (128).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import UNLABELLED
from ..errors import PcsegError
from ..io import check_cloud_file
from .parallel import map_with_progress
from .rooms import read_room_entry, room_is_complete, write_index, write_room

CLOUD_SUFFIXES = (".ply", ".las", ".laz", ".pcd")


def read_class_table(path: os.PathLike) -> list[str]:
    """Class names by id from a class table file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise PcsegError(f"{path}: class table not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            table = json.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml
            table = yaml.safe_load(text)
        else:
            rows = [ln.split(maxsplit=1) for ln in text.splitlines() if ln.strip()]
            table = ({int(r[0]): r[1].strip() for r in rows}
                     if rows and all(len(r) == 2 and r[0].isdigit() for r in rows)
                     else [ln.strip() for ln in text.splitlines() if ln.strip()])
    except (ValueError, ImportError) as exc:
        raise PcsegError(f"{path}: unreadable class table ({exc})") from None
    if isinstance(table, list):
        table = dict(enumerate(table))
    if not isinstance(table, dict) or not table:
        raise PcsegError(f"{path}: a class table is a list of names or a mapping id -> name")
    ids = [int(k) for k in table]
    if min(ids) < 0 or max(ids) >= UNLABELLED:
        raise PcsegError(f"{path}: class ids must be in 0..{UNLABELLED - 1}")
    by_id = {int(k): str(v) for k, v in table.items()}
    return [by_id.get(i, f"class_{i}") for i in range(max(ids) + 1)]


@dataclass
class CloudReport:
    path: str
    entry: dict
    unknown_labels: int = 0
    dropped_points: int = 0
    resumed: bool = False


def _prepare_cloud(args) -> CloudReport:
    from ..io import read_cloud

    file, area, dst, num_classes = args
    rel = f"{area}/{file.stem}"
    if room_is_complete(dst, rel):
        return CloudReport(rel, read_room_entry(dst, rel), resumed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-finite points are counted in the report
        cloud = read_cloud(file)
    if cloud.labels is None:
        raise PcsegError(f"{file}: no label property (see docs/FORMATS.md for the names read)")
    if cloud.non_integer_labels:
        raise PcsegError(f"{file}: {cloud.non_integer_labels:,} of {len(cloud):,} labels are not whole "
                         "numbers (class ids are integers)")
    valid = cloud.valid
    labels = cloud.labels[valid]
    unknown = (labels < 0) | (labels >= num_classes)
    labels = np.where(unknown, UNLABELLED, labels).astype(np.uint8)
    rgb = cloud.rgb[valid] if cloud.rgb is not None else np.full((int(valid.sum()), 3), 128, np.uint8)
    entry = write_room(dst, area, file.stem, cloud.absolute_xyz()[valid], rgb, labels, num_classes,
                       source=str(file))
    return CloudReport(rel, entry, int(unknown.sum()), int((~valid).sum()))


def prepare_ply_folder(src: os.PathLike, dst: os.PathLike, classes: os.PathLike, workers: int = 2,
                       progress: bool = True) -> list[CloudReport]:
    """Prepare every labelled cloud file under ``src`` into the cache ``dst``."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise PcsegError(f"{src}: no such folder (expected a folder of labelled .ply files)")
    names = read_class_table(classes)
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in CLOUD_SUFFIXES and p.is_file())
    if not files:
        raise PcsegError(f"{src}: no point cloud files ({', '.join(CLOUD_SUFFIXES)}) found")
    jobs = []
    for file in files:
        parts = file.relative_to(src).parts
        jobs.append((file, parts[0] if len(parts) > 1 else "all", dst, len(names)))
    rels = [f"{a}/{f.stem}" for f, a, _, _ in jobs]
    if len(set(rels)) != len(rels):
        raise PcsegError(f"{src}: two files share a name within one area; names must be unique per area")
    bad_headers = {file: message for file in files if (message := _error_of(check_cloud_file, file))}
    readable = [job for job in jobs if job[0] not in bad_headers]
    dst.mkdir(parents=True, exist_ok=True)
    results = map_with_progress(_prepare_or_error, readable, workers, "prepare", "cloud", progress)
    errors = list(bad_headers.values()) + [r for r in results if isinstance(r, str)]
    if errors:  # the rooms of the good files stay in the cache: a run after the fix resumes them
        raise PcsegError(f"{src}: {len(errors)} of {len(files)} files cannot be prepared: {'; '.join(errors)}")
    write_index(dst, names, [r.entry for r in results])
    return results


def _error_of(fn, *args):
    """``fn(*args)``, or the message of the :class:`PcsegError` it raises."""
    try:
        return fn(*args)
    except PcsegError as exc:
        return str(exc)


def _prepare_or_error(args):
    """:func:`_prepare_cloud`'s report, or its error message (so that every bad file is found)."""
    return _error_of(_prepare_cloud, args)
