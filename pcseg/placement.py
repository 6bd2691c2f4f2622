"""How a scan is placed for the model: its up axis and unit, given or found, and whether it
looks like an indoor scan at all.

    placement = place(cloud, up="auto", units="auto", name="scan.ply")
    model_xyz = placement.model_xyz(cloud.xyz)   # z up, metres, float32; the cloud is unchanged
    placement.notes      # one line per assumption made (an up axis other than z, a unit other than m)
    placement.warning    # why the labels will not be meaningful, or None

When the cloud's shape leaves its up axis unclear and a model is at hand (``judge``, as
:meth:`pcseg.segment.Segmenter.place` passes it), the model chooses among the six readings
(:mod:`pcseg.up_judge`).

The statistics come from one :func:`pcseg.scene_stats.scene_sample` of at most a million
points (a fraction of a second), the same points whether the cloud is read whole (:func:`place`)
or in chunks (:func:`place_points` on :func:`looked_at`'s points); outputs keep the input's
coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .domain import out_of_domain_reason
from .io import Cloud
from .scene_stats import SceneSample, scene_sample
from .units import UNIT_SCALES, check_units, guess_units
from .up_axis import axis_index, check_up, detect_up, to_z_up
from .up_judge import Judge, judged_up

#: Points of a cloud looked at, at most.
LOOKED_AT = 1_000_000


@dataclass
class Placement:
    """A cloud's up axis (``"z"``, ``"-y"``, ...) and unit (``"m"``, ``"cm"``, ``"mm"``), with the
    lines that say what was assumed and why the cloud may be out of the models' domain."""

    up: str = "z"
    units: str = "m"
    notes: list = field(default_factory=list)
    warning: Optional[str] = None

    @property
    def scale(self) -> float:
        """Metres per unit of the cloud."""
        return UNIT_SCALES[self.units]

    def model_xyz(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) float32 coordinates as the model wants them: z up, metres."""
        turned = to_z_up(xyz, self.up)
        return turned if self.units == "m" else (turned * np.float32(self.scale)).astype(np.float32)


def looked_at(count: int) -> Optional[np.ndarray]:
    """Sorted positions (k,) int64, among ``count`` valid points in file order, of the points looked
    at; None when all are (``count`` at most :data:`LOOKED_AT`). The same for a cloud read whole
    and one read in chunks, so both are placed alike."""
    if count <= LOOKED_AT:
        return None
    return np.sort(np.random.default_rng(0).choice(count, LOOKED_AT, replace=False))


def place(cloud: Cloud, up: str = "auto", units: str = "auto", name: str = "cloud",
          judge: Optional[Judge] = None) -> Placement:
    """The :class:`Placement` of ``cloud``: ``up`` and ``units`` as given, or found when "auto"
    (with the model's ``judge`` where the shape is unclear)."""
    rows = np.flatnonzero(cloud.valid)
    chosen = looked_at(len(rows))
    if chosen is not None:
        rows = rows[chosen]
    return place_points(cloud.xyz[rows].astype(np.float64) + cloud.origin, up, units, name,
                        None if cloud.rgb is None else cloud.rgb[rows], judge)


def place_points(absolute: np.ndarray, up: str = "auto", units: str = "auto", name: str = "cloud",
                 rgb: Optional[np.ndarray] = None, judge: Optional[Judge] = None) -> Placement:
    """The :class:`Placement` of a cloud from the (k, 3) float64 file coordinates of the points
    :func:`looked_at` (the cloud's valid points, at most :data:`LOOKED_AT`) and their (k, 3) uint8
    colours (or None); ``judge`` (:mod:`pcseg.up_judge`) decides an up axis the shape leaves unclear."""
    check_up(up, allow_auto=True)
    check_units(units)
    sample = scene_sample(absolute)
    notes = []
    if up == "auto":
        up, note = _found_up(sample, absolute, rgb, judge, name)
        notes += [note] if note else []
    if units == "auto":
        units = guess_units(sample, axis_index(up))
        if units != "m":
            notes.append(f"{name}: coordinates read as {'millimetres' if units == 'mm' else 'centimetres'} "
                         f"({sample.extent.max():,.0f} units across); scaled to metres for the model, outputs keep "
                         f"the input's coordinates (--units to set it)")
    reason = out_of_domain_reason(sample, axis_index(up), UNIT_SCALES[units])
    warning = None if reason is None else (f"{name} does not look like an indoor scan: {reason}; "
                                           f"its labels are not meaningful")
    return Placement(up, units, notes, warning)


def _found_up(sample: SceneSample, absolute: np.ndarray, rgb: Optional[np.ndarray], judge: Optional[Judge],
              name: str) -> tuple[str, Optional[str]]:
    """(up axis, the line that says what was assumed or None) of a cloud from its shape, or from
    the model's ``judge`` where the shape leaves it unclear."""
    found, clear = detect_up(sample)
    if clear:
        return found, None if found == "z" else (f"{name}: the up axis looks like {found}, not z; the cloud is "
                                                 f"turned for the model (--up to set it)")
    if judge is not None:
        judged, sure, scores = judged_up(absolute, rgb, sample, judge)
        if sure:
            return judged, (f"{name}: the up axis looks like {judged}, not z (the model is surer of the cloud read "
                            f"so: {scores[judged]:.2f} against {scores['z']:.2f} as it is); the cloud is turned for "
                            f"the model (--up to set it)")
    return "z", None if found == "z" else (f"{name}: could not tell the up axis for sure (perhaps {found}); "
                                           f"assumed z (--up to set it)")
