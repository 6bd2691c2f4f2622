"""Planning the tiles of a cloud too large for memory: its bounds, two tile grids, and the split.

:func:`scan_bounds` reads the cloud three times: for its origin (as :class:`pcseg.io.Cloud` takes
it) and colour range; for the points its :class:`pcseg.placement.Placement` (up axis, unit) is
decided on, the ones a cloud read whole is placed by; and for its :class:`pcseg.infer.Frame` and a
histogram of points per :data:`CELL` in the model's frame (z up, metres). Two grids
of square tiles are planned on that histogram, each of the largest side whose points with a halo
fit a point budget:

- *model tiles* (:func:`plan_tiles`), with the halo of :func:`halo_width` (what a block or a shared
  voxel can reach);
- *voting tiles* (:func:`plan_voting_tiles`), whole 3 m cells of the flat-patch voting's grid with its
  0.2 m :data:`pcseg.refine.CELL_HALO` (patches never leave their cell).

:func:`split_into_tiles` then appends every finite point to the scratch file of every tile whose
haloed square holds it (a :data:`TILE_RECORD`: its index, float32 model coordinates (about the
origin, z up, metres), colour, and whether the tile owns it). :mod:`pcseg.tiled` runs the tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import PcsegError
from .infer import Frame
from .io.chunked import ChunkedCloud
from .io.cloud import color_peak, valid_points
from .placement import Placement, looked_at, place_points
from .refine import CELL as VOTING_CELL, CELL_HALO, cell_of
from .up_judge import Judge

#: Side of the histogram cells tiles are planned on, metres.
CELL = 1.0

#: One point in a tile's scratch file.
TILE_RECORD = np.dtype([("index", "<i8"), ("xyz", "<f4", 3), ("rgb", "u1", 3), ("owned", "?")])


def halo_width(block_size: float, stride: float, voxel_size: float) -> float:
    """Metres around a tile holding every point that can affect its points' probabilities: a block's
    side (as :class:`pcseg.data.blocks.BlockTiling` rounds it) and two voxels (a representative's
    voxel on either side), plus a centimetre for rounding."""
    side = math.ceil(block_size / stride - 1e-9) * stride
    return side + 2 * voxel_size + 0.01


@dataclass
class Bounds:
    """What pass 1 learns: ``origin`` (3,) float64 (``Cloud.origin``), the cloud's ``placement``,
    its ``frame``, whether the file has colours, and ``histogram`` (nx, ny)
    points per ``CELL`` from ``lo`` (2,) in the model's frame."""

    origin: np.ndarray
    placement: Placement
    frame: Frame
    has_colors: bool
    lo: np.ndarray
    histogram: np.ndarray


def _frame_xyz(chunk_xyz: np.ndarray, origin: np.ndarray, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """(finite mask (n,), float32 model coordinates (m, 3) of the finite rows: about ``origin``, turned
    z-up and in metres), the values :class:`pcseg.io.Cloud` and :class:`pcseg.segment.Segmenter` give them."""
    finite = valid_points(chunk_xyz)
    return finite, placement.model_xyz((chunk_xyz[finite] - origin).astype(np.float32))


def scan_bounds(reader: ChunkedCloud, up: str = "z", units: str = "m", judge: Optional[Judge] = None) -> Bounds:
    """Pass 1 (three reads: the origin and colour range first, then the points the placement is
    decided on, then everything measured in the model's frame). ``up``, ``units`` and ``judge`` as
    :func:`pcseg.placement.place` takes them ("auto": found from the cloud); the reader's colours are
    scaled by the whole file's range from then on."""
    low = np.full(3, np.inf)
    peak, has_colors, finite_count = -np.inf, False, 0
    for chunk in reader.chunks():
        finite = valid_points(chunk.xyz)
        finite_count += int(finite.sum())
        if finite.any():
            low = np.minimum(low, chunk.xyz[finite].min(axis=0))
        if chunk.colors is not None:
            has_colors, peak = True, max(peak, color_peak(chunk.colors))
    if not np.isfinite(low).all():
        raise PcsegError(f"{reader.path}: all {reader.count} points have non-finite coordinates")
    origin = np.floor(low)
    reader.set_color_peak(peak)
    looked_at_xyz, looked_at_rgb = _looked_at_points(reader, origin, finite_count)
    placement = place_points(looked_at_xyz, up, units, str(reader.path), looked_at_rgb, judge)
    lo32, hi32 = np.full(3, np.inf, np.float32), np.full(3, -np.inf, np.float32)
    cells: dict = {}
    for chunk in reader.chunks():
        _, xyz = _frame_xyz(chunk.xyz, origin, placement)
        if len(xyz) == 0:
            continue
        lo32, hi32 = np.minimum(lo32, xyz.min(axis=0)), np.maximum(hi32, xyz.max(axis=0))
        keys, counts = np.unique(np.floor(xyz[:, :2] / CELL).astype(np.int64), axis=0, return_counts=True)
        for key, count in zip(map(tuple, keys.tolist()), counts.tolist()):
            cells[key] = cells.get(key, 0) + count
    keys = np.array(list(cells), dtype=np.int64)
    first = keys.min(axis=0)
    histogram = np.zeros(keys.max(axis=0) - first + 1, dtype=np.int64)
    histogram[tuple((keys - first).T)] = list(cells.values())
    frame = Frame(lo32.astype(np.float64), lo32, hi32)
    return Bounds(origin, placement, frame, has_colors, first * CELL, histogram)


def _looked_at_points(reader: ChunkedCloud, origin: np.ndarray,
                      finite_count: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """((k, 3) float64 file coordinates, (k, 3) uint8 colours or None) of the ``finite_count`` finite
    points that :func:`pcseg.placement.looked_at` picks, as a cloud read whole about ``origin`` holds them."""
    chosen = looked_at(finite_count)
    parts, colours, seen = [], [], 0
    for chunk in reader.chunks():
        finite = np.flatnonzero(valid_points(chunk.xyz))
        if chosen is None:
            mine = finite
        else:
            lo, hi = np.searchsorted(chosen, [seen, seen + len(finite)])
            mine = finite[chosen[lo:hi] - seen]
        seen += len(finite)
        parts.append((chunk.xyz[mine] - origin).astype(np.float32).astype(np.float64) + origin)
        rgb = reader.rgb(chunk)
        colours.append(None if rgb is None else rgb[mine])
    if not parts:
        return np.zeros((0, 3)), None
    return np.concatenate(parts), None if any(rgb is None for rgb in colours) else np.concatenate(colours)


@dataclass
class TileGrid:
    """Square tiles of side ``side`` metres from ``lo`` (2,) in the xyz frame, ``shape`` (nx, ny),
    each read with a halo of ``halo`` metres. With ``voting_cells`` > 0 a tile is that many cells
    of the flat-patch voting a side, from its grid origin ``lo``, and a point belongs to the tile of
    its cell as :func:`pcseg.refine.cell_of` counts it, to the bit."""

    lo: np.ndarray
    side: float
    shape: tuple[int, int]
    halo: float
    voting_cells: int = 0

    def __len__(self) -> int:
        return self.shape[0] * self.shape[1]

    def owner(self, xy: np.ndarray) -> np.ndarray:
        """(n,) the tile owning each point of xy (n, 2)."""
        if self.voting_cells:
            tile = cell_of(xy, self.lo) // self.voting_cells
        else:
            tile = np.floor((xy - self.lo) / self.side).astype(np.int64)
        tile = np.clip(tile, 0, np.array(self.shape) - 1)
        return tile[:, 0] * self.shape[1] + tile[:, 1]

    def reading(self, xy: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(tile, mask (n,)) for every tile whose haloed square holds some of the points xy (n, 2),
        one mask per tile, so its points keep their order."""
        owner = self.owner(xy)
        ti, tj = np.divmod(owner, self.shape[1])
        reach = math.ceil(self.halo / self.side)
        masks: dict[int, np.ndarray] = {}
        for di in range(-reach, reach + 1):
            for dj in range(-reach, reach + 1):
                i, j = ti + di, tj + dj
                inside = (i >= 0) & (i < self.shape[0]) & (j >= 0) & (j < self.shape[1])
                low = self.lo + np.stack([i, j], axis=1) * self.side - self.halo
                inside &= (xy >= low).all(axis=1) & (xy < low + self.side + 2 * self.halo).all(axis=1)
                if di == 0 and dj == 0:
                    inside[:] = True  # a point's own tile, even beyond the grid's last edge
                tiles = i * self.shape[1] + j
                for tile in np.unique(tiles[inside]).tolist():
                    mask = inside & (tiles == tile)
                    masks[tile] = masks[tile] | mask if tile in masks else mask
        return sorted(masks.items())


def plan_tiles(bounds: Bounds, halo: float, max_points: int) -> TileGrid:
    """Model tiles: the fewest (a multiple of ``CELL`` per side, from the histogram's corner) whose
    haloed squares each hold at most ``max_points`` points by the histogram (tiles of one cell
    when none is small enough)."""
    m, shape = _largest_tiles(bounds, bounds.lo, CELL, halo, max_points)
    return TileGrid(bounds.lo, m * CELL, shape, halo)


def plan_voting_tiles(bounds: Bounds, max_points: int) -> TileGrid:
    """Voting tiles: the fewest, each a square of whole cells of the flat-patch voting's grid (from
    the whole cloud's origin) read with the voting's :data:`pcseg.refine.CELL_HALO`, whose haloed
    squares hold at most ``max_points`` points by the histogram (one cell when none is small enough)."""
    lo = bounds.frame.origin[:2]
    m, shape = _largest_tiles(bounds, lo, VOTING_CELL, CELL_HALO, max_points)
    return TileGrid(lo, m * VOTING_CELL, shape, CELL_HALO, voting_cells=m)


def _largest_tiles(bounds: Bounds, lo: np.ndarray, step: float, halo: float, max_points: int):
    """(m, shape): the largest tiles of ``m`` steps of ``step`` metres a side from ``lo`` (2,) whose
    haloed squares hold at most ``max_points`` points, counted on the histogram cells they touch,
    and how many of them cover the cloud (nx, ny)."""
    extent = bounds.lo + np.array(bounds.histogram.shape) * CELL - lo  # every point lies below lo + extent

    def tiling(m: int) -> tuple[int, int]:
        return tuple(int(n) for n in np.maximum(1, np.ceil(extent / (m * step))))

    m = max(1, math.ceil(float(extent.max()) / step))
    while m > 1 and haloed_counts(bounds, lo, m * step, tiling(m), halo).max() > max_points:
        m = max(1, int(m / 1.25))
    return m, tiling(m)


def haloed_counts(bounds: Bounds, lo: np.ndarray, side: float, shape: tuple[int, int], halo: float) -> np.ndarray:
    """(nx, ny) points in the haloed square of each tile of side ``side`` metres from ``lo`` (2,), counted
    on the histogram cells the square touches (an upper bound)."""
    hist = bounds.histogram
    table = np.zeros((hist.shape[0] + 1, hist.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = hist.cumsum(0).cumsum(1)
    ranges = []
    for axis, count in enumerate(shape):
        edges = lo[axis] + np.arange(count + 1) * side - bounds.lo[axis]
        first = np.clip(np.floor((edges[:-1] - halo) / CELL).astype(np.int64), 0, hist.shape[axis])
        last = np.clip(np.ceil((edges[1:] + halo) / CELL).astype(np.int64), 0, hist.shape[axis])
        ranges.append((first, last))
    (a0, a1), (b0, b1) = ranges
    a0, a1, b0, b1 = a0[:, None], a1[:, None], b0[None, :], b1[None, :]
    return table[a1, b1] - table[a0, b1] - table[a1, b0] + table[a0, b0]


def tile_file_bytes(bounds: Bounds, grids: list[TileGrid]) -> int:
    """Bytes of the scratch files :func:`split_into_tiles` writes for ``grids`` (at most)."""
    return TILE_RECORD.itemsize * sum(int(haloed_counts(bounds, g.lo, g.side, g.shape, g.halo).sum()) for g in grids)


def split_into_tiles(reader: ChunkedCloud, bounds: Bounds, grids: list[TileGrid], folder: Path) -> None:
    """Pass 2: every finite point appended to the scratch file (:func:`tile_path`) of each tile of
    each grid that reads it. A tile's file is open only while one chunk's points are appended to it, so
    a small budget's thousands of tiles never exhaust the process's open files."""
    for grid_index, grid in enumerate(grids):
        for tile in range(len(grid)):
            tile_path(folder, grid_index, tile).touch()
    for chunk in reader.chunks():
        finite, xyz = _frame_xyz(chunk.xyz, bounds.origin, bounds.placement)
        records = np.empty(len(xyz), TILE_RECORD)
        records["index"] = chunk.start + np.flatnonzero(finite)
        records["xyz"] = xyz
        rgb = reader.rgb(chunk)
        records["rgb"] = 0 if rgb is None else rgb[finite]
        for grid_index, grid in enumerate(grids):
            owner = grid.owner(xyz[:, :2])
            for tile, mask in grid.reading(xyz[:, :2]):
                part = records[mask]
                part["owned"] = owner[mask] == tile
                with open(tile_path(folder, grid_index, tile), "ab") as out:
                    out.write(part.tobytes())


def tile_path(folder: Path, grid: int, tile: int) -> Path:
    """The scratch file of one tile of grid ``grid`` (0: model tiles, 1: voting tiles)."""
    return folder / f"grid{grid}_tile{tile}.bin"
