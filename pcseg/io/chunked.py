"""Reading a cloud part by part, for clouds larger than memory (:mod:`pcseg.tiled`).

Binary PLY vertices are memory-mapped one chunk at a time (so the mapped pages of earlier
chunks are released), LAS/LAZ points are decoded by laspy batch by batch
(:class:`pcseg.io.las.LasFile`). Each chunk carries
the rows the whole-file readers (:func:`pcseg.io.read_cloud`) would give for those points:
absolute coordinates, colours (converted with the whole file's colour range) and the
per-point properties that the labelled writers keep.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import PcsegError
from .cloud import colors_to_uint8
from .las import LasFile, fill_colors, las_errors, las_rows
from .ply import COLOR_NAMES, check_ply_header, _first_present

#: Points per chunk read (about 30-60 MB of rows).
CHUNK_POINTS = 1 << 20


@dataclass
class Chunk:
    """Points ``start`` .. ``start + len(xyz)`` of a file: ``xyz`` (n, 3) float64 absolute metres,
    ``colors`` (n, 3) raw colour channels or None, ``properties`` (n,) structured rows as read
    (see :meth:`ChunkedCloud.properties`)."""

    start: int
    xyz: np.ndarray
    colors: Optional[np.ndarray]
    properties: np.ndarray


class ChunkedCloud(ABC):
    """A cloud file read in chunks: ``count`` points, :meth:`chunks`, and a chunk's :meth:`rgb`
    and :meth:`properties` as the whole-file reader gives them."""

    def __init__(self, path: Path, count: int):
        self.path, self.count = path, count
        self._color_peak: Optional[float] = None

    @abstractmethod
    def chunks(self, size: int = CHUNK_POINTS) -> Iterator[Chunk]:
        """The file's points in order, ``size`` at a time."""

    def properties(self, chunk: Chunk) -> np.ndarray:
        """(n,) structured rows of ``chunk``, as ``Cloud.properties`` holds them."""
        return chunk.properties

    def set_color_peak(self, peak: float) -> None:
        """The largest colour value of the whole file (from a first pass), so every chunk's
        colours are scaled as :func:`pcseg.io.read_cloud` scales the whole file's."""
        self._color_peak = peak

    def rgb(self, chunk: Chunk) -> Optional[np.ndarray]:
        """(n, 3) uint8 colours of ``chunk`` or None."""
        if chunk.colors is None:
            return None
        return colors_to_uint8(chunk.colors, peak=self._color_peak)


class PlyChunks(ChunkedCloud):
    """Binary PLY (either byte order), vertices memory-mapped chunk by chunk; other elements
    (mesh faces) are not supported here."""

    def __init__(self, path: Path):
        import plyfile

        check_ply_header(path)
        with open(path, "rb") as fh:
            try:
                header = plyfile.PlyData._parse_header(fh)
            except (plyfile.PlyParseError, ValueError) as exc:  # ValueError: also a header that is not ASCII
                raise PcsegError(f"{path}: unreadable PLY ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            self.offset = fh.tell()
        if header.text:
            raise PcsegError(f"{path}: an ascii PLY cannot be read in parts; convert it to binary "
                             "or raise --max-memory")
        if [e.name for e in header.elements] != ["vertex"]:
            raise PcsegError(f"{path}: a PLY with elements besides its vertices (a mesh) cannot be read in "
                             "parts; raise --max-memory")
        vertex = header["vertex"]
        self.dtype = vertex.dtype(header.byte_order)
        super().__init__(path, vertex.count)
        self.color_names = _first_present(COLOR_NAMES, self.dtype.names)

    def chunks(self, size: int = CHUNK_POINTS) -> Iterator[Chunk]:
        for start in range(0, self.count, size):
            n = min(size, self.count - start)
            rows = np.memmap(self.path, self.dtype, "r", self.offset + start * self.dtype.itemsize, (n,))
            native = np.array(rows, dtype=self.dtype.newbyteorder("="))
            del rows  # unmaps this chunk's pages
            xyz = np.stack([native["x"], native["y"], native["z"]], axis=1).astype(np.float64)
            colors = None if self.color_names is None else np.stack([native[c] for c in self.color_names], 1)
            yield Chunk(start, xyz, colors, native)


class LasChunks(ChunkedCloud):
    """LAS/LAZ through :class:`pcseg.io.las.LasFile`; colour properties are the uint8 colours.

    ``count`` starts as the points the file can hold; a pass that ends early (a damaged or cut LAZ)
    lowers it to the points read, with the one-line warning of the whole-file reader, and every later
    pass stops there, so each pass gives the same points."""

    def __init__(self, path: Path):
        self.source = LasFile(path)
        super().__init__(path, self.source.layout.readable)
        self._counted = False

    def chunks(self, size: int = CHUNK_POINTS) -> Iterator[Chunk]:
        start = 0
        for points in self.source.batches(size, limit=self.count):
            with las_errors(self.path):
                xyz, colors, properties = las_rows(points)
            yield Chunk(start, xyz, colors, properties)
            start += len(xyz)
        if not self._counted:
            self.source.warn_if_short(start)
            self.count, self._counted = start, True

    def properties(self, chunk: Chunk) -> np.ndarray:
        return fill_colors(chunk.properties, self.rgb(chunk))


def open_chunked(path: os.PathLike) -> ChunkedCloud:
    """A :class:`ChunkedCloud` for a binary PLY, LAS or LAZ file; PcsegError for other files."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return PlyChunks(path)
    if suffix in (".las", ".laz"):
        return LasChunks(path)
    raise PcsegError(f"{path}: only PLY, LAS and LAZ files can be read in parts; raise --max-memory")
