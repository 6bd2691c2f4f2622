"""The one point-cloud type of pcseg.

Coordinates are split into a float64 ``origin`` and float32 offsets, so that
georeferenced scans (1e5-1e7 m) keep millimetres while models work in float32.
Non-finite points, and points farther than ``MAX_COORDINATE`` from 0 (a LAS file with an absurd
scale), are kept (the point count never changes) but marked invalid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..classes import UNLABELLED
from ..errors import PcsegError


#: The largest coordinate magnitude of a valid point, metres: a million kilometres, far beyond any
#: map projection or Earth-centred frame (coordinates beyond it come from damaged files or absurd scales).
MAX_COORDINATE = 1e9


def valid_points(xyz: np.ndarray) -> np.ndarray:
    """(N,) bool: True where all three coordinates of ``xyz`` (N, 3) are finite and within
    ``MAX_COORDINATE`` metres of 0."""
    with np.errstate(invalid="ignore"):
        return (np.abs(xyz) <= MAX_COORDINATE).all(axis=1)


@dataclass
class Cloud:
    """A point cloud of N points.

    Attributes:
        xyz: (N, 3) float32, metres, relative to ``origin``; rows of invalid points are 0.
        origin: (3,) float64, metres; ``xyz + origin`` are the file's coordinates.
        valid: (N,) bool, True where all three input coordinates were finite (:func:`valid_points`).
        rgb: (N, 3) uint8 colours, or None.
        normals: (N, 3) float32 unit-ish normals, or None.
        labels: (N,) int64 labels read from the file, or None; a float label that is not a whole
            number (2.7, NaN) is 255 here and counted in ``non_integer_labels``.
        properties: structured array (N,) of every per-point property of the input, by name,
            kept so that writers can write them back; None for clouds made in memory.
        other_elements: further elements of the input file (e.g. mesh faces), written back as-is.
        path: the file the cloud was read from, or None.
    """

    xyz: np.ndarray
    origin: np.ndarray
    valid: np.ndarray
    rgb: Optional[np.ndarray] = None
    normals: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    properties: Optional[np.ndarray] = None
    other_elements: list = field(default_factory=list)
    path: Optional[Path] = None
    non_integer_labels: int = 0

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def absolute_xyz(self) -> np.ndarray:
        """(N, 3) float64 coordinates as in the file (invalid rows hold the origin)."""
        return self.xyz.astype(np.float64) + self.origin

    @classmethod
    def from_arrays(cls, xyz: np.ndarray, *, rgb=None, normals=None, labels=None,
                    properties=None, other_elements=None, path=None) -> "Cloud":
        """Build a cloud from absolute coordinates ``xyz`` (N, 3), any float dtype.

        The origin is the floor (to the metre) of the minimum corner of the finite points.
        Raises :class:`PcsegError` when there are no points or none is finite; warns with
        the count when some are non-finite.
        """
        name = str(path) if path is not None else "cloud"
        xyz = np.asarray(xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise PcsegError(f"{name}: expected coordinates of shape (N, 3), got {xyz.shape}")
        if xyz.shape[0] == 0:
            raise PcsegError(f"{name}: the cloud has zero points")
        valid = valid_points(xyz)
        n_invalid = int(xyz.shape[0] - valid.sum())
        if n_invalid == xyz.shape[0]:
            raise PcsegError(f"{name}: all {n_invalid} points have non-finite coordinates "
                             f"(or beyond {MAX_COORDINATE:g} m)")
        if n_invalid:
            warnings.warn(f"{name}: {n_invalid} of {xyz.shape[0]} points have non-finite coordinates "
                          f"(or beyond {MAX_COORDINATE:g} m); they are kept and labelled unlabelled (255)",
                          stacklevel=2)
        labels, non_integer = (None, 0) if labels is None else integer_labels(labels)
        finite = xyz[valid].astype(np.float64, copy=False)
        origin = np.floor(finite.min(axis=0))
        rel = np.zeros(xyz.shape, dtype=np.float32)
        rel[valid] = (finite - origin).astype(np.float32)
        return cls(
            xyz=rel, origin=origin, valid=valid,
            rgb=None if rgb is None else np.ascontiguousarray(rgb, dtype=np.uint8),
            normals=None if normals is None else np.ascontiguousarray(normals, dtype=np.float32),
            labels=labels, properties=properties, other_elements=list(other_elements or []),
            path=None if path is None else Path(path), non_integer_labels=non_integer,
        )


def integer_labels(values: np.ndarray) -> tuple[np.ndarray, int]:
    """((N,) int64 labels of ``values`` (N,) of any numeric type, the count of values that are not whole
    numbers): floats with a fraction or non-finite become ``UNLABELLED`` (255), never truncated."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        return values.astype(np.int64), 0
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (values == np.round(values))
    return np.where(whole, values, UNLABELLED).astype(np.int64), int((~whole).sum())


def color_peak(channels: np.ndarray) -> float:
    """The largest value of colour channels (N, 3) as :func:`colors_to_uint8` sees it (non-finite
    values count as 0; -inf for no values)."""
    channels = np.asarray(channels)
    if channels.size == 0:
        return -np.inf
    if np.issubdtype(channels.dtype, np.integer):
        return float(channels.max())
    return float(np.nan_to_num(channels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).max())


def colors_to_uint8(channels: np.ndarray, peak: Optional[float] = None) -> np.ndarray:
    """Convert colour channels (N, 3) of any dtype to uint8.

    uint8 is kept; 16-bit integers are scaled by 1/257 (65535 -> 255) unless all values
    fit in 0-255 (files that store 8-bit colours in 16-bit fields); floats in [0, 1] are
    scaled by 255, other floats are clipped to 0-255. Non-finite values become 0. ``peak``
    (:func:`color_peak` of the whole file) decides the scaling when ``channels`` is part of a file.
    """
    channels = np.asarray(channels)
    if channels.dtype == np.uint8:
        return np.ascontiguousarray(channels)
    peak = color_peak(channels) if peak is None else peak
    if np.issubdtype(channels.dtype, np.integer):
        wide = channels.astype(np.int64)
        if peak > 255:
            wide = wide // 257
        return np.clip(wide, 0, 255).astype(np.uint8)
    values = np.nan_to_num(channels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if values.size and peak <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
