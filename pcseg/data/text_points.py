"""Fast, tolerant parsing of ``x y z r g b`` text files (the raw S3DIS format).

No wrong number ever enters the cache, and nothing loops over the lines in Python:

- stray control bytes (S3DIS ships a few: ``103.0\\x100000``, ``4\\x00``, ``-9.1\\x160``)
  are dropped and the line is kept when it then holds six numbers ("repaired");
- a line with any other foreign byte (letters, non-ASCII), without exactly six fields,
  or with a field that is not a finite number is left out ("skipped").

Each problem is reported as ``file:line: what 'text'``, line numbers counted from 1.

Speed: a clean file (nearly all of them) costs one scan for foreign bytes plus one call
to pandas' C parser. A file with stray bytes is cleaned with ``bytes.translate`` and
parsed again. Only a file that still fails gets the whole-file numpy analysis of field
counts that finds the bad lines.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = 6
_NUMBER_BYTES = b"0123456789.-+eE \t\r\n"  # bytes a line of numbers may hold
_CONTROL_BYTES = bytes([b for b in range(32) if b not in b"\t\r\n"] + [127])  # dropped
_SHOWN = 120  # characters of a bad line quoted in a report


@dataclass
class ParsedPoints:
    """Parsed rows: xyz (N, 3) float64 metres, rgb (N, 3) uint8, and problems found."""

    xyz: np.ndarray
    rgb: np.ndarray
    repaired: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


class _Lines:
    """Line boundaries of a file's bytes; line numbers from 0."""

    def __init__(self, data: bytes):
        self.data = data
        self.newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        self.starts = np.concatenate([[0], self.newlines + 1])
        self.ends = np.concatenate([self.newlines, [len(data)]])  # exclusive, newline excluded

    def containing(self, values: set[int]) -> np.ndarray:
        """Sorted numbers of the lines holding any of the byte ``values``."""
        if not values:
            return np.zeros(0, dtype=np.int64)
        positions = np.flatnonzero(np.isin(np.frombuffer(self.data, dtype=np.uint8), list(values)))
        return np.unique(np.searchsorted(self.newlines, positions))

    def quote(self, line: int) -> str:
        start, end = self.starts[line], self.ends[line]
        return repr(self.data[start:min(end, start + _SHOWN)]) + ("..." if end - start > _SHOWN else "")

    def without(self, lines) -> bytes:
        """The bytes with the given lines emptied (newlines kept, so numbering holds)."""
        pieces, previous = [], 0
        for line in sorted(lines):
            pieces.append(self.data[previous:self.starts[line]])
            previous = self.ends[line]
        pieces.append(self.data[previous:])
        return b"".join(pieces)


def parse_points(path: Path) -> ParsedPoints:
    """Parse a text file of ``x y z r g b`` rows, repairing or skipping bad lines.

    Colours are rounded and clipped to 0..255.
    """
    data = Path(path).read_bytes()
    table = _parse_clean(data)
    if table is not None:
        return ParsedPoints(table[:, :3], _colours(table))
    lines = _Lines(data)
    foreign = set(data.translate(None, _NUMBER_BYTES))
    stray = foreign & set(_CONTROL_BYTES)
    problems = {line: f"unexpected characters in {lines.quote(line)}"
                for line in lines.containing(foreign - stray)}  # line -> why it is skipped
    cleaned = lines.without(problems).translate(None, _CONTROL_BYTES)
    table = _parse_clean(cleaned)
    if table is None:
        table = _parse_careful(cleaned, lines, problems)
    repaired = [f"{path}:{line + 1}: dropped stray bytes in {lines.quote(line)}"
                for line in lines.containing(stray) if line not in problems]
    skipped = [f"{path}:{line + 1}: {problems[line]}" for line in sorted(problems)]
    return ParsedPoints(table[:, :3], _colours(table), repaired, skipped)


def _colours(table: np.ndarray) -> np.ndarray:
    """Columns 3-5 of an (N, 6) table as uint8 colours, rounded and clipped to 0..255."""
    return np.clip(np.rint(table[:, 3:6]), 0, 255).astype(np.uint8)


def _read_table(data: bytes, **options) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), sep=r"\s+", header=None, engine="c", **options)


def _parse_clean(data: bytes) -> np.ndarray | None:
    """(N, 6) float64 when ``data`` is a flawless table of six finite numbers per line, else None."""
    if not data or data.isspace() or data.translate(None, _NUMBER_BYTES):
        return None  # nothing but blanks, or foreign bytes
    try:
        table = _read_table(data, dtype=np.float64).to_numpy()
    except (ValueError, pd.errors.ParserError):
        return None  # a bad field or a line with too many fields
    if table.shape[1] != COLUMNS or not np.isfinite(table).all():
        return None  # a line with too few fields (NaN-filled) or a non-finite value
    return table


def _fields_per_line(data: bytes, lines: _Lines) -> np.ndarray:
    """Number of whitespace-separated tokens on each line of ``data`` (same lines as ``lines``)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    token = (raw != 32) & (raw != 9) & (raw != 13) & (raw != 10)
    begins = token.copy()
    begins[1:] &= ~token[:-1]
    return np.bincount(np.searchsorted(lines.newlines, np.flatnonzero(begins)),
                       minlength=len(lines.starts))


def _parse_careful(data: bytes, original: _Lines, problems: dict) -> np.ndarray:
    """Parse ``data`` (lines numbered as in ``original``) leaving out lines that are not six
    finite numbers; adds each to ``problems``. Returns (N, 6) float64."""
    lines = _Lines(data)
    counts = _fields_per_line(data, lines)
    for line in np.flatnonzero((counts != COLUMNS) & (counts != 0)):
        problems.setdefault(line, f"expected {COLUMNS} numbers, found {counts[line]} in "
                                  f"{original.quote(line)}")
    kept = np.flatnonzero(counts == COLUMNS)
    kept = kept[~np.isin(kept, list(problems))]
    if not len(kept):
        return np.zeros((0, COLUMNS))
    frame = _read_table(lines.without(problems), names=range(COLUMNS))
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")  # "1.2.3" -> NaN
    table = frame.to_numpy(dtype=np.float64)
    bad_rows = np.flatnonzero(~np.isfinite(table).all(axis=1))
    for row in bad_rows:
        problems[kept[row]] = f"not {COLUMNS} finite numbers: {original.quote(kept[row])}"
    return np.delete(table, bad_rows, axis=0)
