"""The up axis of a scan: given (``--up z``, ``-y``, ...) or found from the cloud (``--up auto``).

The models expect z up (floors low, ceilings high). ``to_z_up(xyz, up)`` turns a cloud by
an exact axis permutation with sign changes (a proper rotation, no rounding) so that the
named axis points to +z; outputs keep the input's own coordinates.

:func:`detect_up` looks at a :class:`pcseg.scene_stats.SceneSample` (unit-free). For each
axis it measures the *caps*: the share of the sample in flat points perpendicular to it in the
bottom and top tenths of the cloud along it (floor and ceiling, or two end walls).

- A camera-frame capture (every point inside a viewing cone from the origin along one axis)
  has its up axis across the cone's narrower side (a landscape image's rows); it is signed
  towards where most flat points facing along it face, their normals turned towards the camera
  (floors and table tops are seen from above).
- An *open-ended* axis has one cap and (almost) nothing flat at its other end: a floor without
  a ceiling, as RGB-D reconstructions are (ScanNet meshes rarely hold a ceiling). The largest
  such cap is taken as the floor, so the sign comes from the floor side, when the clutter is
  not gathered at the far end (furniture stands on the floor), the axis is not the cloud's
  longest side (that is an open corridor end) and the cap is larger than the smaller cap of
  every two-ended axis, or the clutter clearly gathers on it.
- Otherwise (floor and ceiling both there, as lidar rooms are) the vertical axis is the one
  with the most cap per unit of extent along it (rooms are lower than they are wide); its sign
  puts the table tops (inner flat points facing along it) and the clutter (furniture, non-flat
  points between the floor and ceiling levels) below the middle. A corridor (longest side
  :data:`CORRIDOR` times the next) is never clear this way: its side walls are as large as
  its floor and ceiling, or larger.

A guess away from z is only taken when it is clear (:data:`AXIS_MARGIN`, :data:`SIGN_MARGIN`).
The file's z read upside down, far rarer than y up, needs more: :data:`UPSIDE_DOWN_MARGIN` of
clutter imbalance when floor and ceiling are both there, and clutter gathered on the floor
side (:data:`SIGN_MARGIN`) when the floor has no ceiling. Otherwise the file's own z is kept
and the caller says so, unless a model is at hand to judge the cloud (:mod:`pcseg.up_judge`).
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
#: Cap score of the chosen axis over the next axis's (a floor without a ceiling: its cap over the
#: next such cap), at least, to leave z.
AXIS_MARGIN = 1.15
#: Share of the sample by which table tops and clutter must sit below the middle to leave +z,
#: and, for a file's z read upside down (-z, far rarer than y up), at least.
SIGN_MARGIN = 0.04
UPSIDE_DOWN_MARGIN = 0.12
#: A cap smaller than this share of the other end's cap counts as missing (an open end).
OPEN_END = 0.15
#: Least share of the sample in a floor taken without a ceiling.
MIN_FLOOR = 0.02
#: Clutter imbalance away from an open-ended axis's cap beyond which the cap is not a floor
#: (furniture stands on floors; a little of it may hang high, as wall cabinets do).
FAR_CLUTTER = 0.075
#: Longest side over the second longest, at least, of a corridor.
CORRIDOR = 2.5
#: Share of the bottom and top of the extent that counts as floor and ceiling level.
END_SHARE = 0.1
#: |normal component| above which a flat point is perpendicular to an axis.
ALIGNED = 0.9
#: |normal component| along a camera frame's up axis of a flat point facing up or down (a
#: table seen from above at a slant).
CAMERA_FACING = 0.7
#: Share by which a camera frame's flat points facing one way along its up axis must outnumber
#: those facing the other way.
FACING_MARGIN = 0.5
#: Widest tangent of the angle off the optical axis of a camera frame's points.
CAMERA_CONE = 1.5
#: Least tangent of the angle off the optical axis across a camera frame's narrower side.
CAMERA_MIN_CONE = 0.15


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
        return _camera_signed(sample, camera)
    caps = np.array([_caps(sample, axis) for axis in range(3)])  # (3, 2): bottom, top
    floor = _open_ended_floor(sample, caps)
    if floor is not None:
        return floor
    scores = caps.sum(axis=1) / np.maximum(sample.extent, 1e-12)
    order = np.argsort(scores)[::-1]
    best = int(order[0])
    axis_clear = scores[best] >= AXIS_MARGIN * max(scores[order[1]], 1e-12) and not is_corridor(sample)
    return _signed_by_clutter(sample, best, axis_clear)


def _signed_by_clutter(sample: SceneSample, axis: int, axis_clear: bool) -> tuple[str, bool]:
    """(name, clear) of ``axis`` with the sign that puts the table tops and clutter low."""
    imbalance = _clutter_imbalance(sample, axis)
    name = ("" if imbalance >= 0 else "-") + "xyz"[axis]
    margin = UPSIDE_DOWN_MARGIN if name == "-z" else SIGN_MARGIN
    return name, bool(axis_clear and abs(imbalance) >= margin)


def _camera_signed(sample: SceneSample, axis: int) -> tuple[str, bool]:
    """(name, clear) of a camera frame's up ``axis``, signed towards where its flat points face:
    a camera sees the side of a surface that faces it (each normal is turned towards the
    origin), and it sees floors and table tops from above far more than ceilings from below."""
    towards_camera = np.sign(np.einsum("ni,ni->n", -sample.xyz, sample.normal))
    facing = sample.normal[:, axis] * towards_camera
    along = sample.planar & (np.abs(facing) > CAMERA_FACING)
    balance = float(np.sign(facing[along]).mean()) if along.any() else 0.0
    name = ("" if balance >= 0 else "-") + "xyz"[axis]
    return name, abs(balance) >= FACING_MARGIN


def _open_ended_floor(sample: SceneSample, caps: np.ndarray) -> Optional[tuple[str, bool]]:
    """(name, clear) when some axis has a floor without a ceiling (``caps``: (3, 2) bottom and
    top cap shares per axis), the floor's side down; None when every axis is closed or open at
    both ends."""
    larger = caps.max(axis=1)
    open_ended = (larger >= MIN_FLOOR) & (caps.min(axis=1) < OPEN_END * larger)
    floor_low = caps[:, 0] >= caps[:, 1]
    toward_cap = np.array([_clutter_imbalance(sample, axis) for axis in range(3)]) * np.where(floor_low, 1, -1)
    weaker_of_pairs = caps.min(axis=1)[~open_ended].max(initial=0.0)
    candidates = np.flatnonzero(open_ended & (toward_cap >= -FAR_CLUTTER)
                                & (sample.extent < sample.extent.max())
                                & ((larger > weaker_of_pairs) | (toward_cap >= SIGN_MARGIN)))
    if len(candidates) == 0:
        return None
    order = candidates[np.argsort(larger[candidates])[::-1]]
    best = int(order[0])
    axis_clear = len(order) == 1 or larger[best] >= AXIS_MARGIN * larger[order[1]]
    name = ("" if floor_low[best] else "-") + "xyz"[best]
    sign_clear = name != "-z" or toward_cap[best] >= SIGN_MARGIN
    return name, bool(axis_clear and sign_clear)


def is_corridor(sample: SceneSample) -> bool:
    """True for a long, narrow cloud (a hallway): its floor and ceiling look like its two side
    walls turned, so neither can be told as the floor from their sizes."""
    longest, second = np.sort(sample.extent)[::-1][:2]
    return bool(longest >= CORRIDOR * second)


def _heights(sample: SceneSample, axis: int) -> np.ndarray:
    """(n,) each sample point's place along ``axis``, 0 at the robust bottom and 1 at the top."""
    return (sample.xyz[:, axis] - sample.low[axis]) / max(sample.extent[axis], 1e-12)


def _perpendicular_flat(sample: SceneSample, axis: int) -> np.ndarray:
    """(n,) bool: flat points whose normal lies along ``axis`` (floor-like if ``axis`` is up)."""
    return sample.planar & (np.abs(sample.normal[:, axis]) > ALIGNED)


def _caps(sample: SceneSample, axis: int) -> tuple[float, float]:
    """Shares of the sample in flat patches perpendicular to ``axis`` in its bottom and top
    :data:`END_SHARE` (a floor and a ceiling if ``axis`` is up, end walls otherwise)."""
    height = _heights(sample, axis)
    flat = _perpendicular_flat(sample, axis)
    return float((flat & (height < END_SHARE)).mean()), float((flat & (height > 1 - END_SHARE)).mean())


def _clutter_imbalance(sample: SceneSample, axis: int) -> float:
    """Share of the sample, between the floor and ceiling levels along ``axis``, that is table tops
    (flat, facing along it) or clutter (non-flat) below the middle, minus the share above it."""
    height = _heights(sample, axis)
    inner = (height >= END_SHARE) & (height <= 1 - END_SHARE)
    counted = inner & (~sample.planar | _perpendicular_flat(sample, axis))
    low = height < 0.5
    return float((counted & low).mean() - (counted & ~low).mean())


def _camera_up_axis(xyz: np.ndarray) -> Optional[int]:
    """When every point lies in one viewing cone from the origin (a camera frame: at least
    :data:`CAMERA_MIN_CONE` wide, so that a distant object is not one), the axis (0-2) across the
    cone's narrower side; else None."""
    found = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            depth = sign * xyz[:, axis]
            ahead = depth > 0
            if ahead.mean() < 0.99:
                continue
            across = np.abs(np.delete(xyz[ahead], axis, axis=1)) / depth[ahead][:, None]  # (m, 2) tangents
            spread = np.percentile(across, 99, axis=0)
            if CAMERA_MIN_CONE <= spread.min() and spread.max() < CAMERA_CONE:
                found.append(int(np.delete(np.arange(3), axis)[np.argmin(spread)]))
    return found[0] if len(found) == 1 else None


def add_up_argument(parser, default: str = "auto") -> None:
    """The ``--up`` option shared by ``pcseg segment`` and ``pcseg view``."""
    parser.add_argument("--up", default=default, choices=UP_CHOICES,
                        help=f"the scan's up axis (default {default}: found from the cloud, a line says so when "
                             "it is not z); e.g. a camera-frame RGB-D capture: --up=-y")
