"""Fast, tolerant parsing of ``x y z r g b`` text files (the raw S3DIS format).

The whole file is checked at once with numpy: bytes outside the number alphabet
(S3DIS ships a few, e.g. ``103.0\\x100000``) are found and dropped when the line then
parses, and lines without exactly six numbers are skipped. Each problem is reported as
``file:line: what (text)``. Parsing itself is pandas' C parser.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[list(b"0123456789.-+eE \t\r\n")] = True
_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b" \t\r")] = True
COLUMNS = 6


@dataclass
class ParsedPoints:
    """Parsed rows: xyz (N, 3) float64 metres, rgb (N, 3) uint8, and problems found."""

    xyz: np.ndarray
    rgb: np.ndarray
    repaired: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


def _line_bounds(data: np.ndarray):
    """Start and end (exclusive, without the newline) of every line of ``data``."""
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    if starts[-1] == len(data):  # file ends with a newline: no trailing empty line
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _fields_per_line(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Number of whitespace-separated tokens on each line."""
    token = ~_SPACE[data] & (data != 10)
    begins = token & np.concatenate([[True], ~token[:-1]])
    line_of = np.searchsorted(starts, np.flatnonzero(begins), side="right") - 1
    return np.bincount(line_of, minlength=len(starts))


def parse_points(path: Path) -> ParsedPoints:
    """Parse a text file of ``x y z r g b`` rows, repairing or skipping bad lines."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return ParsedPoints(np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    starts, ends = _line_bounds(data)
    keep_byte = _ALLOWED[data]
    repaired, skipped = [], []
    bad_lines = np.unique(np.searchsorted(starts, np.flatnonzero(~keep_byte), side="right") - 1)
    for line in bad_lines:
        text = bytes(data[starts[line]:ends[line]])
        repaired.append(f"{path}:{line + 1}: dropped stray bytes in {text!r}")
    data = data[keep_byte]
    starts, ends = _line_bounds(data)
    counts = _fields_per_line(data, starts)
    wrong = np.flatnonzero((counts != COLUMNS) & (counts != 0))
    if len(wrong):
        # Dropped bytes never include newlines, so line numbers are the file's.
        for line in wrong:
            text = bytes(data[starts[line]:ends[line]])
            skipped.append(f"{path}:{line + 1}: expected {COLUMNS} numbers, "
                           f"found {counts[line]} in {text!r}")
        drop = np.zeros(len(data) + 1, dtype=np.int64)  # blank the lines, keep their newlines
        np.add.at(drop, starts[wrong], 1)
        np.add.at(drop, ends[wrong], -1)
        data = data[np.cumsum(drop[:-1]) == 0]
    table = _parse_table(data, path, skipped)
    return ParsedPoints(table[:, :3], np.clip(table[:, 3:6], 0, 255).astype(np.uint8),
                        repaired, skipped)


def _parse_table(data: np.ndarray, path: Path, skipped: list) -> np.ndarray:
    """Parse clean bytes into an (N, 6) float64 table; falls back to per-line parsing."""
    try:
        frame = pd.read_csv(io.BytesIO(data.tobytes()), sep=r"\s+", header=None,
                            names=range(COLUMNS), dtype=np.float64, engine="c")
        table = frame.to_numpy()
        if np.isfinite(table).all():
            return table
    except (ValueError, pd.errors.ParserError):
        pass
    rows = []
    for number, line in enumerate(data.tobytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = [float(v) for v in line.split()]
        except ValueError:
            row = []
        if len(row) == COLUMNS and np.isfinite(row).all():
            rows.append(row)
        else:
            skipped.append(f"{path}:{number}: not {COLUMNS} finite numbers: {line!r}")
    return np.array(rows, dtype=np.float64).reshape(-1, COLUMNS)
