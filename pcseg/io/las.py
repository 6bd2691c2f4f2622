"""LAS / LAZ reading with laspy (LAZ through the lazrs backend).

Coordinates are the scaled float64 values laspy computes; colours (16-bit in LAS)
become uint8. The LAS ``classification`` is kept as a property, not as
``Cloud.labels``: its classes are the ASPRS codes, not pcseg's. Extra-bytes dimensions
are kept as properties too; an extra ``label`` dimension (pcseg's LAS outputs) is
``Cloud.labels``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PcsegError
from .cloud import Cloud, colors_to_uint8

#: Per-point LAS dimensions kept as properties when present (besides x, y, z and colour).
KEPT_DIMENSIONS = ("intensity", "classification", "return_number", "number_of_returns",
                   "gps_time")


def open_las(path: os.PathLike):
    """``laspy.open(path)`` (a reader with ``header`` and ``chunk_iterator``); PcsegError for a bad file."""
    import laspy

    path = Path(path)
    if path.stat().st_size == 0:
        raise PcsegError(f"{path}: the file is empty")
    try:
        return laspy.open(str(path))
    except Exception as exc:  # laspy raises several unrelated types for bad files
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> PcsegError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return PcsegError(f"{path}: unreadable LAS/LAZ ({reason})")


def las_rows(points) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """(xyz (n, 3) float64, raw colours (n, 3) or None, properties (n,)) of laspy points (a file's
    or a chunk's). The properties' red/green/blue fields are left for the caller to fill with
    the uint8 colours (:func:`pcseg.io.cloud.colors_to_uint8` of the whole file's colours)."""
    xyz = np.stack([np.asarray(points.x), np.asarray(points.y), np.asarray(points.z)], axis=1)
    names = set(points.point_format.dimension_names)
    fields = [("x", "f8"), ("y", "f8"), ("z", "f8")]
    colors = None
    if {"red", "green", "blue"} <= names:
        colors = np.stack([np.asarray(points[c]) for c in ("red", "green", "blue")], 1)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    extra = set(points.point_format.extra_dimension_names)
    kept = [d for d in KEPT_DIMENSIONS if d in names] + [d for d in points.point_format.dimension_names
                                                         if d in extra and np.asarray(points[d]).ndim == 1]
    fields += [(d, np.asarray(points[d]).dtype) for d in kept]
    properties = np.zeros(xyz.shape[0], dtype=fields)
    for i, axis in enumerate("xyz"):
        properties[axis] = xyz[:, i]
    for d in kept:
        properties[d] = np.asarray(points[d])
    return xyz, colors, properties


def fill_colors(properties: np.ndarray, rgb: Optional[np.ndarray]) -> np.ndarray:
    """``properties`` with its red/green/blue fields set to ``rgb`` (n, 3) uint8 (when not None)."""
    if rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            properties[channel] = rgb[:, i]
    return properties


def read_las(path: os.PathLike) -> Cloud:
    """Read a .las or .laz file into a :class:`Cloud`; an extra dimension ``label`` is ``Cloud.labels``."""
    path = Path(path)
    with open_las(path) as reader:
        try:
            las = reader.read()
        except Exception as exc:  # laspy raises several unrelated types for bad files
            raise _unreadable(path, exc) from None
    xyz, colors, properties = las_rows(las)
    rgb = None if colors is None else colors_to_uint8(colors)
    labels = properties["label"] if "label" in las.point_format.extra_dimension_names else None
    return Cloud.from_arrays(xyz, rgb=rgb, labels=labels, properties=fill_colors(properties, rgb), path=path)
