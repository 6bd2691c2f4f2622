"""Clouds larger than a memory budget: read in spatial tiles, segmented with a halo, written streaming.

``segment_tiled`` makes four passes over the file (:mod:`pcseg.io.chunked`), never holding
more than one chunk of it:

1. bounds: the cloud's origin (as :class:`pcseg.io.Cloud` takes it), its :class:`pcseg.infer.Frame`,
   colour range, and a histogram of points per square metre-sized cell;
2. tiles: two grids of square tiles, each of the largest side whose points with a halo fit the
   budget: *model tiles*, with the halo of :func:`halo_width` (what a block or a shared voxel can
   reach), and *voting tiles*, whole 3 m cells of the flat-patch voting's grid with its 0.2 m
   :data:`pcseg.refine.CELL_HALO` (patches never leave their cell). Every finite point is
   appended to a scratch file of every tile whose haloed square holds it (its index, float32
   coordinates about the origin, colour, and whether the tile owns it);
3. each model tile in turn is segmented in the whole cloud's frame, and the class probabilities
   of the points it owns are written to a scratch array on disk (``4 K`` bytes per point); then
   each voting tile is flat-patch voted (:func:`pcseg.refine.refine_probabilities`, in the whole
   cloud's grid) and the labels and confidences of its own points are kept (255 and 0 for
   non-finite points). Both halos hold everything an owned point's result depends on, so every
   label is the one an untiled run gives (with ``--no-refine`` the voting tiles are skipped and
   the model tiles give the labels);
4. the labelled PLY is written chunk by chunk from them, atomically.

Peak memory is about the largest haloed tile's points times ``TILE_BYTES_PER_POINT`` (voting
tiles: ``VOTE_BYTES_PER_POINT``) plus one chunk, the model, and, at the end, five bytes per point
of labels and confidences. The scratch arrays are mapped only while a tile reads or writes them.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from .classes import UNLABELLED
from .errors import PcsegError
from .fileutil import atomic_path, check_output_path
from .infer import Frame
from .io.chunked import ChunkedCloud, open_chunked
from .io.cloud import color_peak
from .io.labelled import confidence_of
from .io.las import open_las
from .io.ply import labelled_vertex, ply_header
from .ranks import Ranks
from .refine import CELL as VOTING_CELL, CELL_HALO, cell_of, refine_probabilities
from .up_axis import to_z_up

#: Memory per point of a cloud segmented whole (read, voxels, probabilities, output rows), bytes.
IN_MEMORY_BYTES_PER_POINT = 300
#: Memory per point of a tile being segmented, bytes.
TILE_BYTES_PER_POINT = 250
#: Memory per point of a tile being flat-patch voted (its records, probabilities, their mapped pages
#: and the voting's voxels; 300 measured on a 1M-point room), bytes.
VOTE_BYTES_PER_POINT = 320
#: Memory taken whatever the cloud: the interpreter, torch, the model, one chunk, bytes.
BASE_BYTES = 1 << 30
#: Side of the histogram cells tiles are planned on, metres.
CELL = 1.0

#: One point in a tile's scratch file.
TILE_RECORD = np.dtype([("index", "<i8"), ("xyz", "<f4", 3), ("rgb", "u1", 3), ("owned", "?")])


def default_budget() -> int:
    """Half of the machine's physical memory, bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def parse_size(text: str) -> int:
    """Bytes from ``"6G"``, ``"512M"``, ``"2.5GB"``, ``"800k"`` or a plain number; PcsegError otherwise."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in units else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        number = -1.0
    if not number > 0:
        raise PcsegError(f"--max-memory: expected a size such as 6G or 512M, got {text!r}")
    return int(number * units[unit])


def point_count(path: Path) -> Optional[int]:
    """The points a PLY/LAS/LAZ header declares, reading the header only (None for other files or
    an unreadable header: the whole-file reader then reports what is wrong)."""
    import plyfile

    suffix = path.suffix.lower()
    try:
        if suffix == ".ply":
            with open(path, "rb") as fh:
                return plyfile.PlyData._parse_header(fh)["vertex"].count
        if suffix in (".las", ".laz"):
            with open_las(path) as reader:
                return int(reader.header.point_count)
    except (PcsegError, plyfile.PlyParseError, KeyError, ValueError, OSError):
        return None
    return None


def tiled_inputs(plan, budget: int) -> set[Path]:
    """The inputs of ``plan`` ((input, output, picture or None, probabilities or None) rows) too large
    to segment whole within ``budget`` bytes; PcsegError when one of them cannot be segmented in tiles."""
    tiled = set()
    for source, target, picture, probabilities in plan:
        count = point_count(source)
        if count is None or BASE_BYTES + count * IN_MEMORY_BYTES_PER_POINT <= budget:
            continue
        open_chunked(source)  # raises for files that cannot be read in parts
        if target.suffix.lower() != ".ply":
            raise PcsegError(f"{target}: clouds over --max-memory are written as .ply (-o NAME.ply, or --format ply for a folder)")
        if picture is not None or probabilities is not None:
            raise PcsegError(f"{source}: --render and --probabilities are not available for clouds over --max-memory")
        tiled.add(source)
    return tiled


def halo_width(block_size: float, stride: float, voxel_size: float) -> float:
    """Metres around a tile holding every point that can affect its points' probabilities: a block's
    side (as :class:`pcseg.data.blocks.BlockTiling` rounds it) and two voxels (a representative's
    voxel on either side), plus a centimetre for rounding."""
    side = math.ceil(block_size / stride - 1e-9) * stride
    return side + 2 * voxel_size + 0.01


@dataclass
class Bounds:
    """What pass 1 learns: ``origin`` (3,) float64 (``Cloud.origin``), ``frame``, whether the file
    has colours and their ``color_peak``, and ``histogram`` (nx, ny) points per ``CELL`` from ``lo``
    (2,) in the xyz frame."""

    origin: np.ndarray
    frame: Frame
    has_colors: bool
    color_peak: float
    lo: np.ndarray
    histogram: np.ndarray


def _frame_xyz(chunk_xyz: np.ndarray, origin: np.ndarray, up: str) -> tuple[np.ndarray, np.ndarray]:
    """(finite mask (n,), float32 coordinates about ``origin`` turned z-up (m, 3) of the finite rows),
    the values :class:`pcseg.io.Cloud` and :class:`pcseg.segment.Segmenter` give them."""
    finite = np.isfinite(chunk_xyz).all(axis=1)
    return finite, to_z_up((chunk_xyz[finite] - origin).astype(np.float32), up)


def scan_bounds(reader: ChunkedCloud, up: str) -> Bounds:
    """Pass 1 (two reads: the origin first, then everything measured about it)."""
    low = np.full(3, np.inf)
    peak, has_colors = -np.inf, False
    for chunk in reader.chunks():
        finite = np.isfinite(chunk.xyz).all(axis=1)
        if finite.any():
            low = np.minimum(low, chunk.xyz[finite].min(axis=0))
        if chunk.colors is not None:
            has_colors, peak = True, max(peak, color_peak(chunk.colors))
    if not np.isfinite(low).all():
        raise PcsegError(f"{reader.path}: all {reader.count} points have non-finite coordinates")
    origin = np.floor(low)
    lo32, hi32 = np.full(3, np.inf, np.float32), np.full(3, -np.inf, np.float32)
    cells: dict = {}
    for chunk in reader.chunks():
        _, xyz = _frame_xyz(chunk.xyz, origin, up)
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
    return Bounds(origin, frame, has_colors, peak, first * CELL, histogram)


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
    hist = bounds.histogram
    table = np.zeros((hist.shape[0] + 1, hist.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = hist.cumsum(0).cumsum(1)
    extent = bounds.lo + np.array(hist.shape) * CELL - lo  # every point lies below lo + extent

    def tiling(m: int) -> tuple[int, int]:
        return tuple(int(n) for n in np.maximum(1, np.ceil(extent / (m * step))))

    def largest_tile(m: int) -> int:
        ranges = []
        for axis, count in enumerate(tiling(m)):
            edges = lo[axis] + np.arange(count + 1) * m * step - bounds.lo[axis]
            first = np.clip(np.floor((edges[:-1] - halo) / CELL).astype(np.int64), 0, hist.shape[axis])
            last = np.clip(np.ceil((edges[1:] + halo) / CELL).astype(np.int64), 0, hist.shape[axis])
            ranges.append((first, last))
        (a0, a1), (b0, b1) = ranges
        a0, a1, b0, b1 = a0[:, None], a1[:, None], b0[None, :], b1[None, :]
        return int((table[a1, b1] - table[a0, b1] - table[a1, b0] + table[a0, b0]).max())

    m = max(1, math.ceil(float(extent.max()) / step))
    while m > 1 and largest_tile(m) > max_points:
        m = max(1, int(m / 1.25))
    return m, tiling(m)


def split_into_tiles(reader: ChunkedCloud, bounds: Bounds, grids: list[TileGrid], up: str, folder: Path) -> None:
    """Pass 2: every finite point appended to the scratch file (:func:`tile_path`) of each tile of
    each grid that reads it."""
    files = [[open(tile_path(folder, g, t), "wb") for t in range(len(grid))] for g, grid in enumerate(grids)]
    try:
        for chunk in reader.chunks():
            finite, xyz = _frame_xyz(chunk.xyz, bounds.origin, up)
            records = np.empty(len(xyz), TILE_RECORD)
            records["index"] = chunk.start + np.flatnonzero(finite)
            records["xyz"] = xyz
            rgb = reader.rgb(chunk)
            records["rgb"] = 0 if rgb is None else rgb[finite]
            for grid, grid_files in zip(grids, files):
                owner = grid.owner(xyz[:, :2])
                for tile, mask in grid.reading(xyz[:, :2]):
                    part = records[mask]
                    part["owned"] = owner[mask] == tile
                    grid_files[tile].write(part.tobytes())
    finally:
        for f in (f for grid_files in files for f in grid_files):
            f.close()


def tile_path(folder: Path, grid: int, tile: int) -> Path:
    """The scratch file of one tile of grid ``grid`` (0: model tiles, 1: voting tiles)."""
    return folder / f"grid{grid}_tile{tile}.bin"


def segment_tiled(segmenter, source: Path, target: Path, budget: int, *, keep_colors: bool = False,
                  overwrite: bool = False, progress: bool = True, ranks: Ranks = Ranks()):
    """Segment ``source`` (binary PLY, LAS or LAZ) tile by tile within ``budget`` bytes and write the
    labelled PLY ``target`` (as :func:`pcseg.io.write_labelled_ply` would, streaming, atomically),
    flat-patch voted when ``segmenter.refine``.

    With several ``ranks`` every rank calls this: rank 0 reads, splits and writes, and the tiles are
    shared between the ranks through a scratch folder beside ``target`` (on storage every rank sees).

    Returns (labels (N,) uint8, 255 for non-finite points; confidence (N,) float32, 0 for them) on
    rank 0, None on the others.
    """
    from .infer import predict_probabilities

    target = check_output_path(target, inputs=[source], overwrite=overwrite)
    reader = open_chunked(source)
    with _scratch_folder(target, ranks) as folder:
        shared = None
        if ranks.is_first:
            bounds = scan_bounds(reader, segmenter.up)
            reader.set_color_peak(bounds.color_peak)
            halo = halo_width(segmenter.block_size, segmenter.stride, segmenter.voxel_size)
            grids = [plan_tiles(bounds, halo, max(1, (budget - BASE_BYTES) // TILE_BYTES_PER_POINT))]
            if segmenter.refine:
                grids.append(plan_voting_tiles(bounds, max(1, (budget - BASE_BYTES) // VOTE_BYTES_PER_POINT)))
                np.lib.format.open_memmap(folder / "probabilities.npy", "w+", np.float32,
                                          (reader.count, len(segmenter.class_names)))
            np.lib.format.open_memmap(folder / "labels.npy", "w+", np.uint8, (reader.count,))[:] = UNLABELLED
            np.lib.format.open_memmap(folder / "confidence.npy", "w+", np.float32, (reader.count,))
            split_into_tiles(reader, bounds, grids, segmenter.up, folder)
            shared = bounds, [len(grid) for grid in grids]
        bounds, tiles = ranks.broadcast(shared)
        for records, owned in _own_tiles(folder, 0, tiles[0], ranks, f"{source.name}: tiles", progress):
            rgb = records["rgb"] if bounds.has_colors else None
            probs = predict_probabilities(
                segmenter.model, np.ascontiguousarray(records["xyz"]), rgb, feature_set=segmenter.feature_set,
                num_points=segmenter.num_points, block_size=segmenter.block_size, stride=segmenter.stride,
                batch_size=segmenter.batch_size, device=segmenter.device, voxel_size=segmenter.voxel_size,
                votes=segmenter.votes, progress=False, frame=bounds.frame, colours=segmenter.colours)
            if segmenter.refine:
                _write_rows(folder / "probabilities.npy", records["index"][owned], probs[owned])
            else:
                _keep_labels(folder, records["index"], probs, owned)
        if segmenter.refine:
            ranks.barrier()  # every rank's model tiles are in before any tile is voted
            for records, owned in _own_tiles(folder, 1, tiles[1], ranks, f"{source.name}: flat patches", progress):
                probs = _read_rows(folder / "probabilities.npy", records["index"])
                refine_probabilities(np.ascontiguousarray(records["xyz"]), probs, origin=bounds.frame.origin)
                _keep_labels(folder, records["index"], probs, owned)
        ranks.barrier()
        if not ranks.is_first:
            return None
        labels, confidence = np.load(folder / "labels.npy"), np.load(folder / "confidence.npy")
        write_streaming_ply(target, reader, labels, confidence, keep_colors=keep_colors)
        return labels, confidence


def _own_tiles(folder: Path, grid: int, tiles: int, ranks: Ranks, desc: str, progress: bool):
    """This rank's share of the tiles of ``grid``: (records, owned (n,) bool) of each tile that owns
    points, its scratch file removed once read."""
    for tile in tqdm(range(ranks.rank, tiles, ranks.world), desc=desc, unit="tile", disable=not progress):
        path = tile_path(folder, grid, tile)
        records = np.fromfile(path, TILE_RECORD)
        path.unlink()
        owned = records["owned"]
        if owned.any():
            yield records, owned


def _keep_labels(folder: Path, index: np.ndarray, probs: np.ndarray, owned: np.ndarray) -> None:
    """Write the labels and confidences of a tile's ``owned`` (n,) bool points, whose indices are
    ``index`` (n,), from its probabilities (n, K) (without copying the owned rows)."""
    _write_rows(folder / "labels.npy", index[owned], probs.argmax(axis=1)[owned])
    _write_rows(folder / "confidence.npy", index[owned], confidence_of(probs)[owned])


def _write_rows(path: Path, index: np.ndarray, rows: np.ndarray) -> None:
    """Write ``rows`` at ``index`` of the scratch array ``path``, mapped only meanwhile: pages of a
    mapping kept open would stay in the process's memory, tile after tile, up to the whole array."""
    array = np.load(path, mmap_mode="r+")
    array[index] = rows
    array.flush()
    del array


def _read_rows(path: Path, index: np.ndarray) -> np.ndarray:
    """The rows ``index`` of the scratch array ``path``, copied, the array mapped only meanwhile."""
    array = np.load(path, mmap_mode="r")
    rows = np.asarray(array[index])
    del array
    return rows


@contextmanager
def _scratch_folder(target: Path, ranks: Ranks):
    """A scratch folder beside ``target``: made by rank 0, its path sent to every rank, removed by rank 0
    when it leaves (after the others, which leave it once their tiles are done)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not ranks.is_first:
        yield Path(ranks.broadcast(None))
        return
    with tempfile.TemporaryDirectory(prefix=".pcseg_tiles_", dir=target.parent) as scratch:
        ranks.broadcast(scratch)
        yield Path(scratch)


def write_streaming_ply(target: Path, reader: ChunkedCloud, labels: np.ndarray, confidence: np.ndarray, *,
                        keep_colors: bool) -> None:
    """Pass 4: the labelled PLY of ``reader``'s points, one chunk at a time, atomically."""
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        header_written = False
        for chunk in reader.chunks():
            part = slice(chunk.start, chunk.start + len(chunk.xyz))
            rows = labelled_vertex(reader.properties(chunk), labels[part], confidence[part],
                                   keep_colors and chunk.colors is not None)
            if not header_written:
                out.write(ply_header(rows.dtype, reader.count))
                header_written = True
            out.write(rows.astype(rows.dtype.newbyteorder("<")).tobytes())
