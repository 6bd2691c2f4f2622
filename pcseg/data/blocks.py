"""Blocks: vertical columns of ``block_size`` x ``block_size`` metres (full height).

- :func:`tile_blocks` covers a whole cloud with overlapping blocks for inference.
- :func:`sample_block` draws one random training block from a room.
- :func:`chunk_block` splits a block's points into fixed-size samples that together
  contain every point.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


class BlockTiling:
    """Overlapping blocks that together cover every (valid) point; iterate to get them.

    Points are hashed once into square cells of side ``stride``; the block with lower-left
    cell (i, j) spans cells i..i+s-1, j..j+s-1 where ``s = ceil(block_size / stride)``,
    so its side is ``s * stride >= block_size``. Blocks start at every occupied cell
    (each point lies in the block starting at its own cell), so coverage is exact and no
    block is empty. Gathering a block costs O(its points); ``len()`` is the block count.
    Cells count from ``origin`` (x, y metres, at most the points' minimum; default that
    minimum), so tiles of a cloud given the cloud's origin get the cloud's blocks.

    Iteration yields (center (2,) float64 x, y of the block centre, indices (n,) int64);
    :meth:`cells` also yields each block's lower-left cell (i, j).
    """

    def __init__(self, xyz: np.ndarray, block_size: float = 1.0, stride: float = 0.5,
                 valid: np.ndarray | None = None, origin: np.ndarray | None = None):
        if stride <= 0 or block_size <= 0:
            raise ValueError("block_size and stride must be positive")
        if stride > block_size:
            raise ValueError(f"stride ({stride}) must not exceed block_size ({block_size}): "
                             "points would be missed")
        self.points = np.arange(len(xyz)) if valid is None else np.flatnonzero(valid)
        self.stride, self.span = stride, int(np.ceil(block_size / stride - 1e-9))
        if len(self.points) == 0:
            self.keys = np.empty(0, dtype=np.int64)
            return
        xy = np.asarray(xyz[self.points, :2], dtype=np.float64)
        self.lo = xy.min(axis=0) if origin is None else np.asarray(origin, dtype=np.float64)[:2]
        cells = np.floor((xy - self.lo) / stride).astype(np.int64)
        self.width = int(cells[:, 1].max()) + self.span + 1
        keys = cells[:, 0] * self.width + cells[:, 1]
        self.order = np.argsort(keys, kind="stable")
        self.keys, starts = np.unique(keys[self.order], return_index=True)
        ends = np.append(starts[1:], len(keys))
        self.ranges = dict(zip(self.keys.tolist(), zip(starts.tolist(), ends.tolist())))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _, center, indices in self.cells():
            yield center, indices

    def cells(self) -> Iterator[tuple[tuple[int, int], np.ndarray, np.ndarray]]:
        """Per block: ((i, j) its lower-left cell counted from the origin, center, indices)."""
        side = self.span * self.stride
        for key in self.keys.tolist():
            i, j = divmod(key, self.width)
            cells = (self.ranges.get((i + di) * self.width + j + dj)
                     for di in range(self.span) for dj in range(self.span))
            parts = [self.order[s:e] for s, e in filter(None, cells)]
            center = self.lo + np.array([i, j], dtype=np.float64) * self.stride + side / 2
            yield (i, j), center, self.points[np.concatenate(parts)]


def tile_blocks(xyz: np.ndarray, block_size: float = 1.0, stride: float = 0.5,
                valid: np.ndarray | None = None, origin: np.ndarray | None = None) -> BlockTiling:
    """Overlapping blocks covering every (valid) point of ``xyz`` (N, 3), metres; see
    :class:`BlockTiling`."""
    return BlockTiling(xyz, block_size, stride, valid, origin)


def sample_size(n: int, num_points: int) -> int:
    """Points per sample for a block of ``n`` points: ``num_points``, or for a block with
    fewer points the next power of two >= n, so near-empty blocks of sparse scans do not
    cost a full sample each (a one-point block is a one-point sample)."""
    if n >= num_points:
        return num_points
    return min(num_points, 1 << max(int(n) - 1, 0).bit_length())


def chunk_block(indices: np.ndarray, num_points: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split a block's point ``indices`` into samples of ``sample_size(n, num_points)`` points.

    A random permutation is cut into ceil(n / num_points) chunks; the last (or only) chunk
    is padded by repeating randomly chosen points of the block. Every point appears in
    at least one sample.
    """
    n = len(indices)
    num_points = sample_size(n, num_points)
    perm = indices[rng.permutation(n)]
    chunks = []
    for start in range(0, n, num_points):
        chunk = perm[start:start + num_points]
        if len(chunk) < num_points:
            chunk = np.concatenate([chunk, indices[rng.integers(0, n, num_points - len(chunk))]])
        chunks.append(chunk)
    return chunks


def sample_block(xyz: np.ndarray, rng: np.random.Generator, num_points: int, block_size: float = 1.0,
                 min_points: int = 512, tries: int = 10,
                 centers_from: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A random training block: centred on a random point of the room, ``num_points`` indices.

    ``centers_from`` (int indices into ``xyz``) restricts the points a centre is drawn from
    (default: every point). Retries (up to ``tries``) when the block has fewer than
    ``min_points`` points and keeps the fullest block seen. Points are drawn without
    replacement when the block has enough, else with replacement.

    Returns (center (2,) float64, indices (num_points,) int64).
    """
    best_center, best = None, np.empty(0, dtype=np.int64)
    half = block_size / 2
    for _ in range(tries):
        pick = rng.integers(len(xyz)) if centers_from is None else centers_from[rng.integers(len(centers_from))]
        center = np.asarray(xyz[pick, :2], dtype=np.float64)
        inside = np.flatnonzero((np.abs(xyz[:, 0] - center[0]) <= half) & (np.abs(xyz[:, 1] - center[1]) <= half))
        if len(inside) > len(best):
            best_center, best = center, inside
        if len(inside) >= min_points:
            break
    replace = len(best) < num_points
    return best_center, best[rng.choice(len(best), num_points, replace=replace)]
