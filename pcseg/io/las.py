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

import numpy as np

from ..errors import PcsegError
from .cloud import Cloud, colors_to_uint8

#: Per-point LAS dimensions kept as properties when present (besides x, y, z and colour).
KEPT_DIMENSIONS = ("intensity", "classification", "return_number", "number_of_returns",
                   "gps_time")


def read_las(path: os.PathLike) -> Cloud:
    """Read a .las or .laz file into a :class:`Cloud`."""
    import laspy

    path = Path(path)
    if path.stat().st_size == 0:
        raise PcsegError(f"{path}: the file is empty")
    try:
        las = laspy.read(str(path))
    except Exception as exc:  # laspy raises several unrelated types for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PcsegError(f"{path}: unreadable LAS/LAZ ({reason})") from None
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1)
    names = set(las.point_format.dimension_names)
    fields = [("x", "f8"), ("y", "f8"), ("z", "f8")]
    has_rgb = {"red", "green", "blue"} <= names
    rgb = None
    if has_rgb:
        rgb = colors_to_uint8(np.stack([np.asarray(las[c]) for c in ("red", "green", "blue")], 1))
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    extra = set(las.point_format.extra_dimension_names)
    kept = [d for d in KEPT_DIMENSIONS if d in names] + [d for d in las.point_format.dimension_names
                                                         if d in extra and np.asarray(las[d]).ndim == 1]
    fields += [(d, np.asarray(las[d]).dtype) for d in kept]
    properties = np.empty(xyz.shape[0], dtype=fields)
    for i, axis in enumerate("xyz"):
        properties[axis] = xyz[:, i]
    if has_rgb:
        for i, channel in enumerate(("red", "green", "blue")):
            properties[channel] = rgb[:, i]
    for d in kept:
        properties[d] = np.asarray(las[d])
    labels = properties["label"] if "label" in extra else None
    return Cloud.from_arrays(xyz, rgb=rgb, labels=labels, properties=properties, path=path)
