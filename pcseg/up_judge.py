"""The model's word on a cloud's up axis, when the cloud's shape leaves it unclear.

:func:`pcseg.up_axis.detect_up` reads the up axis from floors, ceilings and clutter, and keeps the
file's z when that evidence is weak (a room stored upside down, a hallway, a room whose clutter is
spread evenly). :func:`judged_up` then asks the model: it reads the looked-at points six ways (each
axis and sign as up, each in the unit :func:`pcseg.units.guess_units` finds for that axis), keeps
those within a :data:`SPAN` cube about their median point, and lets a :data:`Judge` score each
reading (the model's mean top probability on a coarse pass, :meth:`pcseg.segment.Segmenter.judge`).
A room read the right way up looks like the rooms the model knows, and it is surer of it. The
file's z is left only for a reading clearly surer than z (:data:`MARGIN`; :data:`UPSIDE_DOWN_MARGIN`
for -z, far rarer than y up) and than every other reading (:data:`RUNNER_UP_MARGIN`: in hallways
the model is about as sure of two or three readings).

Clouds whose shape is clear are not judged: RGB-D reconstructions are placed better by their
floors than by the model (measured by ``bench/bench_placement.py``). Nor are corridors
(:func:`pcseg.up_axis.is_corridor`), which the model reads as surely on their side as upright, or
clouds with few flat points (:data:`MIN_FLAT_SHARE`), no room the right way up either.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from .scene_stats import SceneSample
from .units import UNIT_SCALES, guess_units
from .up_axis import ROTATIONS, axis_index, is_corridor, to_z_up

#: Scores one reading of a cloud: (model coordinates (n, 3) float32, metres, z up; colours (n, 3)
#: uint8 or None) -> how sure the model is of it (mean top probability, 0-1).
Judge = Callable[[np.ndarray, Optional[np.ndarray]], float]
#: Side (metres) of the cube about the median point whose points are judged (bounds the cost on
#: clouds larger than a room).
SPAN = 8.0
#: Side (metres) of the voxels of the coarse pass a reading is judged by (one point each).
VOXEL = 0.05
#: Least share of flat points (:attr:`SceneSample.planar`) in a cloud that is judged: real rooms hold
#: 23 % or more (mostly walls, floors and table tops), a blob of noise none.
MIN_FLAT_SHARE = 0.15
#: Score by which a reading must beat the file's z to be taken; a little more for -z.
MARGIN = 0.05
UPSIDE_DOWN_MARGIN = 0.08
#: Score by which the reading taken must beat the next best.
RUNNER_UP_MARGIN = 0.02


def judged_up(points: np.ndarray, rgb: Optional[np.ndarray], sample: SceneSample,
              judge: Judge) -> tuple[str, bool, dict]:
    """(up axis, clear, {reading: score}) of a cloud given as the (k, 3) float64 file coordinates of
    its looked-at points (with their (k, 3) uint8 ``rgb`` or None) and their :class:`SceneSample`.
    ``clear`` is False, and the axis z, when no reading beats z and the others by their margins, or
    when the cloud is a corridor or has too few flat points to be judged (no scores then). A progress
    bar over the six readings shows on a terminal (the judging takes up to a minute on two cores)."""
    scores = {}
    if sample.planar.mean() < MIN_FLAT_SHARE or is_corridor(sample):
        return "z", False, scores
    for up in tqdm(ROTATIONS, desc="up axis: asking the model", unit="reading", leave=False, disable=None):
        scale = UNIT_SCALES[guess_units(sample, axis_index(up))]
        xyz = to_z_up(points, up) * scale
        inside = np.all(np.abs(xyz - np.median(xyz, axis=0)) <= SPAN / 2, axis=1)
        scores[up] = float(judge(xyz[inside].astype(np.float32), None if rgb is None else rgb[inside]))
    best, runner_up = sorted(scores, key=scores.get, reverse=True)[:2]
    above_z = scores[best] - scores["z"]
    if best != "z" and above_z >= (UPSIDE_DOWN_MARGIN if best == "-z" else MARGIN) \
            and scores[best] - scores[runner_up] >= RUNNER_UP_MARGIN:
        return best, True, scores
    return "z", False, scores
