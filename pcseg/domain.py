"""Does a scan look like what the models know (an indoor room or building)?

:func:`out_of_domain_reason` reads a :class:`pcseg.scene_stats.SceneSample` with the cloud's up
axis and metres per unit (nothing is turned or scaled for it). Two signs that the labels will
mean nothing: a horizontal side far beyond a building (:data:`BUILDING_SIDE`: airborne and
outdoor scans), or no flat surface facing up at all (no floor, ceiling or table: an object
seen from the side, a close-up).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .scene_stats import SceneSample

#: Longest horizontal side (metres) of an indoor scan; larger is taken as outdoor.
BUILDING_SIDE = 300.0
#: Least share of the sample in flat patches facing up (floors, ceilings, table tops).
MIN_UP_FACING = 0.005
#: |normal component| along the up axis of a flat point facing up.
UP_FACING = 0.9


def out_of_domain_reason(sample: SceneSample, up_axis: int, metres_per_unit: float) -> Optional[str]:
    """Why the cloud does not look indoor (a short phrase), or None when it does."""
    horizontal = np.delete(sample.extent, up_axis) * metres_per_unit
    if horizontal.max() > BUILDING_SIDE:
        return (f"it spans {horizontal[0]:,.0f} m x {horizontal[1]:,.0f} m horizontally, far beyond a building "
                f"(an airborne or outdoor scan?)")
    if len(sample.planar) and (sample.planar & (np.abs(sample.normal[:, up_axis]) > UP_FACING)).mean() < MIN_UP_FACING:
        return "it shows no floor, ceiling or other flat surface facing up"
    return None
