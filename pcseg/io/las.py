"""LAS / LAZ reading with laspy (LAZ through the lazrs backend).

Every file is checked on its raw bytes first (:mod:`pcseg.io.las_layout`: LAS 1.0-1.4, point
formats 0-10, COPC read as LAZ), then decoded batch by batch with every laspy/lazrs failure
turned into a one-line :class:`PcsegError`. A file holding fewer points than its header
declares (a cut download, a damaged LAZ chunk) is read up to its last complete point with a
one-line warning giving the count read; every output then holds exactly those points.

Coordinates are the scaled float64 values laspy computes; colours (16-bit in LAS)
become uint8. The LAS ``classification`` is kept as a property, not as
``Cloud.labels``: its classes are the ASPRS codes, not pcseg's. Extra-bytes dimensions
are kept as properties too (an array dimension of k values as ``<name>_0`` .. ``<name>_k-1``);
an extra ``label`` dimension (pcseg's LAS outputs) is ``Cloud.labels``.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import PcsegError
from .cloud import Cloud, colors_to_uint8
from .las_layout import VARIABLE_CHUNKS, LasLayout, inspect_las, reraise_interrupts

#: Per-point LAS dimensions kept as properties when present (besides x, y, z and colour).
KEPT_DIMENSIONS = ("intensity", "classification", "return_number", "number_of_returns",
                   "gps_time")
#: Points decoded per batch from a LAZ file (memory grows with the points decoded, not the header's count).
BATCH_POINTS = 1 << 20

# laspy logs what it works around (a short read, a backend it falls back from); pcseg reports
# every such case itself, in one line.
logging.getLogger("laspy").setLevel(logging.CRITICAL)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def las_errors(path: Path, what: str = "unreadable LAS/LAZ"):
    """Turn any laspy / lazrs failure (their exceptions, IO errors, Rust panics) inside the block
    into ``PcsegError("<path>: <what> (<reason>)")``."""
    try:
        yield
    except PcsegError:
        raise
    except BaseException as exc:  # laspy and lazrs raise many unrelated types, panics included
        reraise_interrupts(exc)
        raise PcsegError(f"{path}: {what} ({_reason(exc)})") from None


class LasFile:
    """A LAS/LAZ file whose layout has been checked (``layout``), read batch by batch."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        self.layout: LasLayout = inspect_las(self.path)
        #: Why the last :meth:`batches` ended before ``layout.declared`` points.
        self.stopped_by = "the file ends there"

    def open(self):
        """A laspy reader of the file (its ``header``, ``read_points``); close it (``with``)."""
        import laspy

        # lazrs's parallel decoder needs a sound chunk table; without one the chunks are decoded in turn
        backend = None if self.layout.chunk_table is not None else laspy.LazBackend.Lazrs
        with las_errors(self.path):
            reader = laspy.open(str(self.path), laz_backend=backend, read_evlrs=self.layout.evlrs_intact)
        reader.header.point_count = self.layout.declared  # LAS 1.4 with only the 32-bit count set
        return reader

    def batches(self, size: int = BATCH_POINTS, limit: Optional[int] = None) -> Iterator:
        """The file's points in order as laspy ``ScaleAwarePointRecord`` batches of at most ``size``, at most
        ``limit`` (default: what the file can hold) in all. A LAZ file is decoded one compressed chunk at a
        time: decoding that fails after the first chunk ends the batches with the last complete chunk
        (the caller compares the count read with :attr:`LasLayout.declared`); failing before, it raises
        PcsegError."""
        import laspy

        layout = self.layout
        limit = layout.readable if limit is None else min(limit, layout.readable)
        unit = min(size, layout.chunk_size) if 0 < layout.chunk_size < VARIABLE_CHUNKS else size
        done, pending = 0, []
        with self.open() as reader:
            while done < limit:
                try:
                    points = reader.read_points(min(unit, limit - done))
                except BaseException as exc:  # see las_errors
                    reraise_interrupts(exc)
                    if done == 0:
                        raise PcsegError(f"{self.path}: {self._undecodable()} ({_reason(exc)})") from None
                    self.stopped_by = _reason(exc)
                    break
                if len(points) == 0:
                    break
                done += len(points)
                pending.append(points)
                if sum(len(p) for p in pending) >= size:
                    yield _joined(pending)
                    pending = []
        if pending:
            yield _joined(pending)

    def _undecodable(self) -> str:
        if self.layout.compressed and self.layout.chunk_table is None:
            return "its LAZ chunk table is missing or does not match its points (a cut or damaged file)"
        return "its points cannot be read (a cut or damaged file?)"

    def warn_if_short(self, read: int) -> None:
        """Warn (one line) when ``read`` points are fewer than the header declares; PcsegError for none."""
        declared = self.layout.declared
        if read == 0:
            raise PcsegError(f"{self.path}: the cloud has zero points" if declared == 0 else
                             f"{self.path}: none of the {declared:,} points its header declares could be read")
        if read < declared:
            warnings.warn(f"{self.path}: the header declares {declared:,} points but only the first {read:,} "
                          f"could be read ({self.stopped_by}); those {read:,} are segmented and written",
                          stacklevel=3)


def _joined(batches: list):
    """One ``ScaleAwarePointRecord`` of laspy point ``batches`` (a non-empty list, in order)."""
    import laspy

    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    return laspy.ScaleAwarePointRecord(np.concatenate([b.array for b in batches]), first.point_format,
                                       first.scales, first.offsets)


def open_las(path: os.PathLike):
    """A laspy reader (``header``, ``chunk_iterator``) of a LAS/LAZ file whose layout has been checked;
    PcsegError (one line) for a bad file."""
    return LasFile(path).open()


def _unique(name: str, used: set) -> str:
    """``name`` (``extra`` when empty), with ``_extra`` appended while another property has it."""
    name = name or "extra"
    while name in used:
        name += "_extra"
    used.add(name)
    return name


def las_rows(points) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """(xyz (n, 3) float64, raw colours (n, 3) or None, properties (n,)) of laspy points (a file's
    or a chunk's). The properties' red/green/blue fields are left for the caller to fill with
    the uint8 colours (:func:`pcseg.io.cloud.colors_to_uint8` of the whole file's colours)."""
    xyz = np.stack([np.asarray(points.x), np.asarray(points.y), np.asarray(points.z)], axis=1)
    names = set(points.point_format.dimension_names)
    fields = [("x", "f8"), ("y", "f8"), ("z", "f8")]
    colors = None
    if {"red", "green", "blue"} <= names:
        colors = np.stack([np.asarray(points[c]) for c in ("red", "green", "blue")], 1)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    used = {name for name, _ in fields}
    columns = [(_unique(d, used), np.asarray(points[d])) for d in KEPT_DIMENSIONS if d in names]
    extra = set(points.point_format.extra_dimension_names)
    for d in (d for d in points.point_format.dimension_names if d in extra):
        values = np.asarray(points[d])
        if values.ndim == 1:
            columns.append((_unique(d, used), values))
        else:  # an array dimension (e.g. a 3-vector): one column per value
            columns += [(_unique(f"{d}_{i}", used), values[:, i]) for i in range(values.shape[1])]
    properties = np.zeros(xyz.shape[0], dtype=fields + [(name, values.dtype) for name, values in columns])
    for i, axis in enumerate("xyz"):
        properties[axis] = xyz[:, i]
    for name, values in columns:
        properties[name] = values
    return xyz, colors, properties


def fill_colors(properties: np.ndarray, rgb: Optional[np.ndarray]) -> np.ndarray:
    """``properties`` with its red/green/blue fields set to ``rgb`` (n, 3) uint8 (when not None)."""
    if rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            properties[channel] = rgb[:, i]
    return properties


def read_las(path: os.PathLike) -> Cloud:
    """Read a .las or .laz file into a :class:`Cloud`; an extra dimension ``label`` is ``Cloud.labels``.

    Warns (one line) when the file holds fewer points than its header declares (see the module)."""
    source = LasFile(path)
    path = source.path
    # memory grows with the points decoded, whatever the header's count
    batches = list(source.batches(max(source.layout.readable, 1)))
    source.warn_if_short(sum(len(b) for b in batches))
    with las_errors(path):
        points = _joined(batches)
        del batches
        xyz, colors, properties = las_rows(points)
    rgb = None if colors is None else colors_to_uint8(colors)
    own_label = "label" in points.point_format.extra_dimension_names and "label" in properties.dtype.names
    labels = properties["label"] if own_label else None
    return Cloud.from_arrays(xyz, rgb=rgb, labels=labels, properties=fill_colors(properties, rgb), path=path)
