"""Cheap, unit-free statistics of a scan's shape, for guessing its up axis, units and kind.

:func:`scene_sample` reduces any cloud to at most :data:`SAMPLE_POINTS` points spread evenly
over its surfaces (one per voxel of a side proportional to the cloud's extent, so the result
does not depend on the units), with a PCA normal and a planarity flag per point from its
:data:`NEIGHBOURS` nearest neighbours (scipy's cKDTree). Everything here works on a copy in
float64 and never changes the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

#: Most points kept for the statistics (about 0.2 s on one core).
SAMPLE_POINTS = 20_000
#: Voxels per side of the cloud's largest robust extent before sampling.
VOXELS_PER_EXTENT = 150
#: Neighbours per point for the PCA normal.
NEIGHBOURS = 12
#: Smallest-eigenvalue share under which a point's neighbourhood counts as planar.
PLANAR_SHARE = 0.01


@dataclass
class SceneSample:
    """Evenly spread points of a cloud with their local shape.

    Attributes:
        xyz: (n, 3) float64, in the cloud's own units and axes.
        normal: (n, 3) float64 unit PCA normals (sign arbitrary).
        planar: (n,) bool, neighbourhood flat (walls, floors, table tops).
        low, high: (3,) float64 robust bounds (0.5 and 99.5 percentiles) of the cloud per axis.
    """

    xyz: np.ndarray
    normal: np.ndarray
    planar: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def extent(self) -> np.ndarray:
        """(3,) robust side lengths per axis, cloud units."""
        return self.high - self.low


def scene_sample(xyz: np.ndarray, valid: np.ndarray | None = None, seed: int = 0) -> SceneSample:
    """The :class:`SceneSample` of (N, 3) coordinates (finite rows where ``valid`` is None).

    Needs at least :data:`NEIGHBOURS` + 1 distinct finite points; fewer give a sample with no
    planar point (callers treat it as "cannot tell").
    """
    rng = np.random.default_rng(seed)
    points = np.asarray(xyz, dtype=np.float64)
    keep = np.isfinite(points).all(axis=1) if valid is None else valid & np.isfinite(points).all(axis=1)
    points = points[keep]
    if len(points) > 1_000_000:  # percentiles and voxels of a random million are as good and faster
        points = points[rng.choice(len(points), 1_000_000, replace=False)]
    if len(points) == 0:
        empty = np.zeros((0, 3))
        return SceneSample(empty, empty, np.zeros(0, bool), np.zeros(3), np.zeros(3))
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    voxel = max(float((high - low).max()) / VOXELS_PER_EXTENT, 1e-12)
    side = VOXELS_PER_EXTENT + 3  # voxel indices clipped to -1 .. VOXELS_PER_EXTENT + 1 per axis
    cells = np.clip(np.floor((points - low) / voxel), -1, side - 2).astype(np.int64) + 1
    _, first = np.unique((cells[:, 0] * side + cells[:, 1]) * side + cells[:, 2], return_index=True)
    sample = points[first]
    if len(sample) > SAMPLE_POINTS:
        sample = sample[rng.choice(len(sample), SAMPLE_POINTS, replace=False)]
    if len(sample) <= NEIGHBOURS:
        return SceneSample(sample, np.zeros_like(sample), np.zeros(len(sample), bool), low, high)
    _, neighbours = cKDTree(sample).query(sample, k=NEIGHBOURS)
    centred = sample[neighbours] - sample[neighbours].mean(axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", centred, centred))
    total = np.maximum(values.sum(axis=1), 1e-300)
    return SceneSample(sample, vectors[:, :, 0], values[:, 0] / total < PLANAR_SHARE, low, high)
