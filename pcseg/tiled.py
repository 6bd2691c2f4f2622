"""Clouds larger than a memory budget: read in spatial tiles, segmented with a halo, written streaming.

``segment_tiled`` makes four passes over the file (:mod:`pcseg.io.chunked`), never holding
more than one chunk of it:

1. bounds and 2. tiles (:mod:`pcseg.tile_plan`): the cloud's frame and point histogram, the model
   and voting tile grids planned on it, and every finite point appended to the scratch file of each
   tile that reads it;
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

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from .classes import UNLABELLED
from .errors import PcsegError
from .claims import claimed
from .fileutil import atomic_path, check_free_space, check_output_path, disk_errors
from .io.chunked import ChunkedCloud, open_chunked
from .io.labelled import confidence_of
from .io.las import open_las
from .io.ply import labelled_vertex, ply_header
from .placement import Placement
from .ranks import Ranks
from .refine import refine_probabilities
from .tile_plan import (TILE_RECORD, halo_width, plan_tiles, plan_voting_tiles, scan_bounds, split_into_tiles,
                        tile_file_bytes, tile_path)

#: Memory per point of a cloud segmented whole (read, voxels, probabilities, output rows), bytes.
IN_MEMORY_BYTES_PER_POINT = 300
#: Memory per point of a tile being segmented, bytes.
TILE_BYTES_PER_POINT = 250
#: Memory per point of a tile being flat-patch voted (its records, probabilities, their mapped pages
#: and the voting's voxels; 300 measured on a 1M-point room), bytes.
VOTE_BYTES_PER_POINT = 320
#: Memory taken whatever the cloud: the interpreter, torch, the model, one chunk, bytes.
BASE_BYTES = 1 << 30


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


def segment_tiled(segmenter, source: Path, target: Path, budget: int, *, keep_colors: bool = False,
                  overwrite: bool = False, progress: bool = True, ranks: Ranks = Ranks(),
                  scratch: Optional[Path] = None, placed: Callable[[Placement], None] = lambda placement: None):
    """Segment ``source`` (binary PLY, LAS or LAZ) tile by tile within ``budget`` bytes and write the
    labelled PLY ``target`` (as :func:`pcseg.io.write_labelled_ply` would, streaming, atomically),
    flat-patch voted when ``segmenter.refine``.

    The scratch files go to a folder made in ``scratch`` (default: ``target``'s folder) and are
    removed at the end, whatever the end; their size and the output's are checked against the free
    space of their disks once the tiles are planned, before the model runs (:func:`scratch_bytes`).
    ``target`` is claimed (:mod:`pcseg.claims`) unless this process holds its claim already.
    The cloud's up axis and unit are ``segmenter.up`` and ``segmenter.units``, or found from the
    points a cloud read whole is placed by (:func:`pcseg.tile_plan.scan_bounds`); ``placed`` is
    called with the :class:`pcseg.placement.Placement` once it is decided, before the model runs.

    With several ``ranks`` every rank calls this: rank 0 reads, splits and writes, and the tiles are
    shared between the ranks through the scratch folder (on storage every rank sees).

    Returns (labels (N,) uint8, 255 for non-finite points; confidence (N,) float32, 0 for them;
    the placement) on rank 0, None on the others.
    """
    from .infer import predict_probabilities

    target = check_output_path(target, inputs=[source], overwrite=overwrite)
    with _scratch_folder(target, scratch, ranks) as folder, disk_errors(folder):
        shared = reader = None
        if ranks.is_first:
            reader = open_chunked(source)
            bounds = scan_bounds(reader, segmenter.up, segmenter.units, segmenter.judge)
            placed(bounds.placement)
            halo = halo_width(segmenter.block_size, segmenter.stride, segmenter.voxel_size)
            grids = [plan_tiles(bounds, halo, max(1, (budget - BASE_BYTES) // TILE_BYTES_PER_POINT))]
            if segmenter.refine:
                grids.append(plan_voting_tiles(bounds, max(1, (budget - BASE_BYTES) // VOTE_BYTES_PER_POINT)))
            check_free_space([(folder, scratch_bytes(bounds, grids, reader.count, len(segmenter.class_names))),
                              (target.parent, output_bytes(reader, keep_colors))])
            if segmenter.refine:
                _scratch_array(folder / "probabilities.npy", np.float32, (reader.count, len(segmenter.class_names)))
            _scratch_array(folder / "labels.npy", np.uint8, (reader.count,))[:] = UNLABELLED
            _scratch_array(folder / "confidence.npy", np.float32, (reader.count,))
            split_into_tiles(reader, bounds, grids, folder)
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
        return labels, confidence, bounds.placement


def scratch_bytes(bounds, grids, count: int, classes: int) -> int:
    """Bytes of scratch a tiled run of ``count`` points and ``classes`` classes writes at most: the
    tiles' files (:func:`pcseg.tile_plan.tile_file_bytes`), then, with a voting grid, ``4 * classes``
    bytes of probabilities a point, and five bytes of labels and confidences a point."""
    probabilities = 4 * classes if len(grids) > 1 else 0
    return tile_file_bytes(bounds, grids) + count * (probabilities + 5)


def output_bytes(reader: ChunkedCloud, keep_colors: bool) -> int:
    """Bytes of the labelled PLY of ``reader``'s points (its first point's row times the count)."""
    chunks = reader.chunks(1)
    chunk = next(chunks)
    chunks.close()  # the file closed
    row = labelled_vertex(reader.properties(chunk), np.zeros(1, np.uint8), np.zeros(1, np.float32),
                          keep_colors and chunk.colors is not None)
    return len(ply_header(row.dtype, reader.count)) + row.dtype.itemsize * reader.count


def _scratch_array(path: Path, dtype, shape: tuple) -> np.memmap:
    """A new scratch array of ``shape`` at ``path``, its disk space taken now: writing a mapped page a
    full disk cannot hold would kill the process (SIGBUS) instead of raising."""
    array = np.lib.format.open_memmap(path, "w+", dtype, shape)
    with open(path, "rb+") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems that cannot reserve
                raise
    return array


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
def _scratch_folder(target: Path, scratch: Optional[Path], ranks: Ranks):
    """A scratch folder ``.pcseg_tiles_<target name>.<pid>`` in ``scratch`` (default: beside ``target``),
    made by rank 0 under its claim on ``target`` (which lists it, so a run finding the claim dead
    removes it), its path sent to every rank, removed by rank 0 when it leaves, however it leaves
    (after the others, which leave it once their tiles are done)."""
    if not ranks.is_first:
        yield Path(ranks.broadcast(None))
        return
    with claimed([target]) as (claim,):
        base = target.parent if scratch is None else check_scratch(scratch)
        folder = Path(os.path.abspath(base / f".pcseg_tiles_{target.name}.{os.getpid()}"))
        claim.add_scratch(folder)
        try:
            with disk_errors(base):
                if folder.exists():  # a dead run's of this pid, whose claim was lost
                    shutil.rmtree(folder)
                folder.mkdir()
            ranks.broadcast(str(folder))
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def check_scratch(scratch: os.PathLike) -> Path:
    """``scratch`` as a Path; PcsegError when it is not an existing folder."""
    if not Path(scratch).is_dir():
        raise PcsegError(f"{scratch}: the scratch folder does not exist")
    return Path(scratch)


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
