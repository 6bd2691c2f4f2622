"""The length unit of a scan: given (``--units m``, ``cm``, ``mm``) or guessed (``--units auto``).

The models work in metres. :func:`guess_units` reads the cloud's size along its up axis (a
room is 1.5-30 m high whatever else it holds) and its largest side from a
:class:`pcseg.scene_stats.SceneSample`: anything up to :data:`METRE_EXTENT` across is taken as
metres; a larger cloud whose height reads as a room or building in millimetres or centimetres
is taken as such; everything else stays metres (outdoor and airborne scans, which
:mod:`pcseg.domain` then flags).
"""

from __future__ import annotations

from .errors import PcsegError
from .scene_stats import SceneSample

#: Metres per unit.
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001}
#: ``--units`` values.
UNIT_CHOICES = ("auto", *UNIT_SCALES)
#: Largest robust side (cloud units) always read as metres.
METRE_EXTENT = 200.0
#: Heights (metres) that read as a room or a building.
ROOM_HEIGHT = (1.5, 30.0)


def check_units(units: str) -> str:
    """``units`` if it is auto, m, cm or mm; PcsegError otherwise."""
    if units not in UNIT_CHOICES:
        raise PcsegError(f"--units must be one of {', '.join(UNIT_CHOICES)}, got {units!r}")
    return units


def guess_units(sample: SceneSample, up_axis: int) -> str:
    """"m", "cm" or "mm" for a cloud whose up axis is coordinate ``up_axis`` (0-2)."""
    if float(sample.extent.max()) <= METRE_EXTENT:
        return "m"
    height = float(sample.extent[up_axis])
    for unit in ("mm", "cm"):
        if ROOM_HEIGHT[0] <= height * UNIT_SCALES[unit] <= ROOM_HEIGHT[1]:
            return unit
    return "m"


def add_units_argument(parser) -> None:
    """The ``--units`` option of ``pcseg segment``."""
    parser.add_argument("--units", default="auto", choices=UNIT_CHOICES,
                        help="the scan's length unit (default auto: millimetres and centimetres are told from "
                             "the cloud's size, a line says so; the outputs keep the input's coordinates)")
