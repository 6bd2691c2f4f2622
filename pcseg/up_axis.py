"""Scans whose up direction is not +z (RGB-D frames in camera coordinates, y-up exports).

The models expect z up (floors low, ceilings high). ``to_z_up(xyz, up)`` turns a cloud by
an exact axis permutation with sign changes (a proper rotation, no rounding) so that the
named axis points to +z; outputs keep the input's own coordinates.
"""

from __future__ import annotations

import numpy as np

from .errors import PcsegError

#: Rotation (3 x 3, applied as ``xyz @ R.T``) taking each named axis to +z.
ROTATIONS = {
    "z": np.eye(3),
    "-z": np.diag([1.0, -1.0, -1.0]),
    "y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "-y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "x": np.array([[0, 0, -1.0], [0, 1, 0], [1, 0, 0]]),
    "-x": np.array([[0, 0, 1.0], [0, 1, 0], [-1, 0, 0]]),
}


def check_up(up: str) -> str:
    """``up`` if it names an axis (x, y, z, -x, -y, -z); PcsegError otherwise."""
    if up not in ROTATIONS:
        raise PcsegError(f"--up must be one of {', '.join(ROTATIONS)}, got {up!r}")
    return up


def to_z_up(xyz: np.ndarray, up: str) -> np.ndarray:
    """(N, 3) coordinates turned so that axis ``up`` becomes +z; same dtype, a copy unless up is z."""
    rotation = ROTATIONS[check_up(up)]
    if up == "z":
        return xyz
    return (xyz @ rotation.T.astype(xyz.dtype)).astype(xyz.dtype, copy=False)


def add_up_argument(parser) -> None:
    """The ``--up`` option shared by ``pcseg segment`` and ``pcseg view``."""
    parser.add_argument("--up", default="z", choices=tuple(ROTATIONS),
                        help="the scan's up axis (default z); a camera-frame RGB-D capture: --up=-y")
