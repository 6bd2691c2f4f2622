"""PCD (Point Cloud Library) reading with pypcd4: ascii, binary and binary_compressed.

A packed ``rgb``/``rgba`` float field is unpacked to uint8 colours; a ``label``
field becomes ``Cloud.labels``; normals from ``normal_x/normal_y/normal_z``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import PcsegError
from .cloud import Cloud


def _unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """PCL's packed colour (float32 or uint32 holding 0x00RRGGBB) -> (N, 3) uint8."""
    bits = np.ascontiguousarray(packed).view(np.uint32) if packed.dtype.itemsize == 4 \
        else packed.astype(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)


def read_pcd(path: os.PathLike) -> Cloud:
    """Read a .pcd file into a :class:`Cloud`."""
    from pypcd4 import PointCloud

    path = Path(path)
    if path.stat().st_size == 0:
        raise PcsegError(f"{path}: the file is empty")
    try:
        pcd = PointCloud.from_path(path)
        data = pcd.pc_data
    except Exception as exc:  # pypcd4 raises several unrelated types for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PcsegError(f"{path}: unreadable PCD ({reason})") from None
    names = data.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise PcsegError(f"{path}: the PCD file has no x, y, z fields (found: {', '.join(names)})")
    xyz = np.stack([data["x"], data["y"], data["z"]], axis=1).astype(np.float64)
    packed = next((n for n in ("rgb", "rgba") if n in names), None)
    rgb = None if packed is None else _unpack_rgb(data[packed])
    normals = None
    if {"normal_x", "normal_y", "normal_z"} <= set(names):
        normals = np.stack([data["normal_x"], data["normal_y"], data["normal_z"]], axis=1)
    labels = data["label"] if "label" in names else None
    fields = [(n, data.dtype[n]) for n in ("x", "y", "z")]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    others = [n for n in names if n not in ("x", "y", "z", packed)]
    fields += [(n, data.dtype[n]) for n in others]
    properties = np.empty(xyz.shape[0], dtype=fields)
    for n in ("x", "y", "z", *others):
        properties[n] = data[n]
    if rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            properties[channel] = rgb[:, i]
    return Cloud.from_arrays(xyz, rgb=rgb, normals=normals, labels=labels,
                             properties=properties, path=path)
