"""How a scan is placed for the model: its up axis and unit, given or found, and whether it
looks like an indoor scan at all.

    placement = place(cloud, up="auto", units="auto", name="scan.ply")
    model_xyz = placement.model_xyz(cloud.xyz)   # z up, metres, float32; the cloud is unchanged
    placement.notes      # one line per assumption made (an up axis other than z, a unit other than m)
    placement.warning    # why the labels will not be meaningful, or None

The statistics come from one :func:`pcseg.scene_stats.scene_sample` of at most a million
points (a fraction of a second); outputs keep the input's coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .domain import out_of_domain_reason
from .io import Cloud
from .scene_stats import scene_sample
from .units import UNIT_SCALES, check_units, guess_units
from .up_axis import axis_index, check_up, detect_up, to_z_up

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


def place(cloud: Cloud, up: str = "auto", units: str = "auto", name: str = "cloud") -> Placement:
    """The :class:`Placement` of ``cloud``: ``up`` and ``units`` as given, or found when "auto"."""
    check_up(up, allow_auto=True)
    check_units(units)
    rows = np.flatnonzero(cloud.valid)
    if len(rows) > LOOKED_AT:
        rows = np.sort(np.random.default_rng(0).choice(rows, LOOKED_AT, replace=False))
    absolute = cloud.xyz[rows].astype(np.float64) + cloud.origin
    sample = scene_sample(absolute)
    notes = []
    if up == "auto":
        found, clear = detect_up(sample)
        up = found if clear else "z"
        if clear and found != "z":
            notes.append(f"{name}: the up axis looks like {found}, not z; the cloud is turned for the model "
                         f"(--up to set it)")
        elif not clear and found != "z":
            notes.append(f"{name}: could not tell the up axis for sure (perhaps {found}); assumed z "
                         f"(--up to set it)")
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
