"""The up axis of a scan: given (``--up z``, ``-y``, ...) or found from the cloud (``--up auto``).

The models expect z up (floors low, ceilings high). ``to_z_up(xyz, up)`` turns a cloud by
an exact axis permutation with sign changes (a proper rotation, no rounding) so that the
named axis points to +z; outputs keep the input's own coordinates.

:func:`detect_up` looks at a :class:`pcseg.scene_stats.SceneSample` (unit-free):

- the vertical axis is the one whose perpendicular flat points (floors, ceilings) lie most in
  the bottom and top tenths of the cloud along it, per unit of extent along it (rooms are
  lower than they are wide);
- its sign puts the table tops (inner flat points facing along it) and the clutter
  (furniture, non-flat points between the floor and ceiling levels) below the middle;
- a camera-frame capture (every point inside a viewing cone from the origin along one axis)
  has its up axis across the cone's narrower side (a landscape image's rows).

A guess away from z is only taken when it is clear (:data:`AXIS_MARGIN`, :data:`SIGN_MARGIN`);
otherwise the file's own z is kept and the caller says so.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import PcsegError
from .scene_stats import SceneSample

#: Rotation (3 x 3, applied as ``xyz @ R.T``) taking each named axis to +z.
ROTATIONS = {
    "z": np.eye(3),
    "-z": np.diag([1.0, -1.0, -1.0]),
    "y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "-y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "x": np.array([[0, 0, -1.0], [0, 1, 0], [1, 0, 0]]),
    "-x": np.array([[0, 0, 1.0], [0, 1, 0], [-1, 0, 0]]),
}
#: ``--up`` values: an axis, or ``auto`` (found from the cloud).
UP_CHOICES = ("auto", *ROTATIONS)
#: Floor-and-ceiling score of the chosen axis over the next axis's, at least, to leave z.
AXIS_MARGIN = 1.15
#: Share of the sample by which table tops and clutter must sit below the middle to leave +z,
#: and, for a file's z read upside down (-z, far rarer than y up), at least.
SIGN_MARGIN = 0.04
UPSIDE_DOWN_MARGIN = 0.12
#: Share of the bottom and top of the extent that counts as floor and ceiling level.
END_SHARE = 0.1
#: |normal component| above which a flat point is perpendicular to an axis.
ALIGNED = 0.9
#: Widest tangent of the angle off the optical axis of a camera frame's points.
CAMERA_CONE = 1.5


def check_up(up: str, allow_auto: bool = False) -> str:
    """``up`` if it names an axis (x, y, z, -x, -y, -z; or auto when allowed); PcsegError otherwise."""
    if up not in ROTATIONS and not (allow_auto and up == "auto"):
        choices = UP_CHOICES if allow_auto else tuple(ROTATIONS)
        raise PcsegError(f"--up must be one of {', '.join(choices)}, got {up!r}")
    return up


def to_z_up(xyz: np.ndarray, up: str) -> np.ndarray:
    """(N, 3) coordinates turned so that axis ``up`` becomes +z; same dtype, a copy unless up is z."""
    rotation = ROTATIONS[check_up(up)]
    if up == "z":
        return xyz
    return (xyz @ rotation.T.astype(xyz.dtype)).astype(xyz.dtype, copy=False)


def axis_index(up: str) -> int:
    """0, 1 or 2: the coordinate axis that ``up`` names (either sign)."""
    return "xyz".index(check_up(up)[-1])


def detect_up(sample: SceneSample) -> tuple[str, bool]:
    """(axis name, clear) for a cloud's up direction, from its :class:`SceneSample` (taken in the
    file's own coordinates: the camera-frame test looks at the origin). ``clear`` is False when
    the evidence is too weak to leave z."""
    if sample.planar.sum() < 100:
        return "z", False
    camera = _camera_up_axis(sample.xyz)
    if camera is not None:
        best, axis_clear = camera, True
    else:
        scores = np.array([_floor_ceiling_score(sample, axis) for axis in range(3)])
        order = np.argsort(scores)[::-1]
        best = int(order[0])
        axis_clear = scores[best] >= AXIS_MARGIN * max(scores[order[1]], 1e-12)
    imbalance = _clutter_imbalance(sample, best)
    name = ("" if imbalance >= 0 else "-") + "xyz"[best]
    margin = UPSIDE_DOWN_MARGIN if name == "-z" else SIGN_MARGIN
    return name, bool(axis_clear and abs(imbalance) >= margin)


def _heights(sample: SceneSample, axis: int) -> np.ndarray:
    """(n,) each sample point's place along ``axis``, 0 at the robust bottom and 1 at the top."""
    return (sample.xyz[:, axis] - sample.low[axis]) / max(sample.extent[axis], 1e-12)


def _perpendicular_flat(sample: SceneSample, axis: int) -> np.ndarray:
    """(n,) bool: flat points whose normal lies along ``axis`` (floor-like if ``axis`` is up)."""
    return sample.planar & (np.abs(sample.normal[:, axis]) > ALIGNED)


def _floor_ceiling_score(sample: SceneSample, axis: int) -> float:
    """Share of the sample in flat patches perpendicular to ``axis`` at its two ends, per unit of extent."""
    height = _heights(sample, axis)
    ends = _perpendicular_flat(sample, axis) & ((height < END_SHARE) | (height > 1 - END_SHARE))
    return float(ends.mean() / max(sample.extent[axis], 1e-12))


def _clutter_imbalance(sample: SceneSample, axis: int) -> float:
    """Share of the sample, between the floor and ceiling levels along ``axis``, that is table tops
    (flat, facing along it) or clutter (non-flat) below the middle, minus the share above it."""
    height = _heights(sample, axis)
    inner = (height >= END_SHARE) & (height <= 1 - END_SHARE)
    counted = inner & (~sample.planar | _perpendicular_flat(sample, axis))
    low = height < 0.5
    return float((counted & low).mean() - (counted & ~low).mean())


def _camera_up_axis(xyz: np.ndarray) -> Optional[int]:
    """When every point lies in one viewing cone from the origin (a camera frame), the axis (0-2)
    across the cone's narrower side; else None."""
    found = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            depth = sign * xyz[:, axis]
            ahead = depth > 0
            if ahead.mean() < 0.99:
                continue
            across = np.abs(np.delete(xyz[ahead], axis, axis=1)) / depth[ahead][:, None]  # (m, 2) tangents
            spread = np.percentile(across, 99, axis=0)
            if spread.max() < CAMERA_CONE:
                found.append(int(np.delete(np.arange(3), axis)[np.argmin(spread)]))
    return found[0] if len(found) == 1 else None


def add_up_argument(parser, default: str = "auto") -> None:
    """The ``--up`` option shared by ``pcseg segment`` and ``pcseg view``."""
    parser.add_argument("--up", default=default, choices=UP_CHOICES,
                        help=f"the scan's up axis (default {default}: found from the cloud, a line says so when "
                             "it is not z); e.g. a camera-frame RGB-D capture: --up=-y")
