"""Voxel-grid subsampling: one representative point per occupied cubic voxel.

Dense scans carry far more points than a model sample holds (4096 points per 1 m block
against tens of thousands in a scanned room), so inference runs on one point per voxel
and every point takes the prediction of its voxel's representative.
"""

from __future__ import annotations

import numpy as np

from ..errors import PcsegError


def voxel_subsample(xyz: np.ndarray, voxel_size: float, valid: np.ndarray | None = None,
                    origin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group the (valid) points of ``xyz`` (N, 3), metres, into cubes of side ``voxel_size``
    counted from ``origin`` (3,) (at most the points' minimum; default that minimum).

    Returns (representatives (M,) int64: for each occupied voxel the index of its first
    point in ``xyz``; voxel_of (N,) int64: each point's voxel in [0, M), -1 for invalid
    points). Voxels are ordered by their grid key, so the result does not depend on the
    order of the points except for which point represents a voxel.
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    points = np.arange(len(xyz)) if valid is None else np.flatnonzero(valid)
    voxel_of = np.full(len(xyz), -1, dtype=np.int64)
    if len(points) == 0:
        return np.empty(0, dtype=np.int64), voxel_of
    coords = np.asarray(xyz[points], dtype=np.float64)
    lo = coords.min(axis=0) if origin is None else np.asarray(origin, dtype=np.float64)
    cells = np.floor((coords - lo) / voxel_size).astype(np.int64)
    dims = cells.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0**62:
        raise PcsegError(f"the cloud spans {dims[0]} x {dims[1]} x {dims[2]} voxels of {voxel_size:g} m; "
                         "use a larger --voxel-size (or 0 to segment every point)")
    keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    voxel_of[points] = inverse
    return points[first], voxel_of
