"""Whole-cloud inference: overlapping blocks, a model, and probability voting per point.

Every valid point is covered by at least one block (:func:`pcseg.data.blocks.tile_blocks`)
and seen in at least one sample of it (:func:`pcseg.data.blocks.chunk_block`). Softmax
probabilities of every sample are added to their points with ``index_add_``; the sum is
divided by the number of samples that held the point. Blocks are streamed and batched, so
memory is bounded by the batch, not by the cloud (plus the (N, K) result). A block with
fewer points than a sample is padded only to :func:`pcseg.data.blocks.sample_size`; samples
are batched by size, ``batch_size`` full samples' worth of points per forward pass (so
sparse scans with many small samples run few, large passes). A model with a
``sample_points`` attribute (the A-CNN) is told ``num_points``, so it can scale its work
on small samples to their size (see :class:`pcseg.models.acnn.ACNNSeg`).

With ``votes > 1`` every block is seen ``votes`` times, turned about the vertical axis
through its centre by 0, 360/votes, ... degrees (the models train with random turns), with
fresh samples each time; all the probabilities are averaged (test-time augmentation:
``votes`` times the cost).

With ``voxel_size > 0`` the model runs on one point per voxel
(:func:`pcseg.data.voxels.voxel_subsample`) and every point takes its voxel's probabilities:
dense scans then cost what their voxel count costs, not their point count.

Nothing depends on which other points are in the cloud beyond a block's reach: the voxel
and block grids count from a :class:`Frame`'s origin, room-normalised features use its
bounds, and every block draws its samples from its own generator, seeded by (seed, vote,
its cell). A tile of a larger cloud, segmented in the whole cloud's frame with a halo of
one block around it, therefore gives its points the whole cloud's probabilities
(:mod:`pcseg.tiled`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from tqdm import tqdm

from .data.blocks import chunk_block, tile_blocks
from .data.features import make_features
from .data.voxels import voxel_subsample


def _turned(xyz: np.ndarray, center: np.ndarray, angle: float) -> np.ndarray:
    """``xyz`` (n, 3) metres turned by ``angle`` radians about the vertical through ``center`` (2,)."""
    if angle == 0:
        return xyz
    c, s = np.cos(angle), np.sin(angle)
    out = np.array(xyz, dtype=np.float32)
    out[:, :2] = (xyz[:, :2] - center) @ np.array([[c, s], [-s, c]], dtype=np.float32) + center
    return out


@dataclass(frozen=True)
class Frame:
    """What ties a cloud's predictions to the cloud as a whole, in its xyz coordinates (metres):
    ``origin`` (3,) float64, where the voxel and block grids start (at most every point),
    and ``room_min``, ``room_max`` (3,) float32, the bounds of the room-normalised features."""

    origin: np.ndarray
    room_min: np.ndarray
    room_max: np.ndarray

    @classmethod
    def of(cls, xyz: np.ndarray, valid: Optional[np.ndarray] = None) -> "Frame":
        """The frame of a whole cloud: its valid points' minimum and maximum."""
        finite = xyz[valid] if valid is not None else xyz
        if len(finite) == 0:
            raise ValueError("the cloud has no valid points")
        low, high = finite.min(axis=0), finite.max(axis=0)
        return cls(low.astype(np.float64), low.astype(np.float32), high.astype(np.float32))


def _block_generator(seed: int, vote: int, cell: tuple[int, int]) -> np.random.Generator:
    """The generator of one block's samples: the same for the block in any tile of the cloud."""
    i, j = cell
    return np.random.Generator(np.random.SFC64((((seed << 16) + vote) << 64) + (i << 32) + j))


def _block_samples(xyz, rgb, tiling, frame, feature_set, num_points, seed, votes) -> Iterator:
    """Per block and vote, a list of (features (num_points, C), point indices (num_points,))
    samples; vote v turns the block by 2 pi v / ``votes`` radians about its centre."""
    for vote, angle in enumerate(2 * np.pi * np.arange(votes) / votes):
        for cell, center, indices in tiling.cells():
            rng = _block_generator(seed, vote, cell)
            yield [(make_features(_turned(xyz[chunk], center, angle), None if rgb is None else rgb[chunk],
                                  center, frame.room_min, frame.room_max, feature_set), chunk)
                   for chunk in chunk_block(indices, num_points, rng)]


@torch.inference_mode()
def predict_probabilities(model: torch.nn.Module, xyz: np.ndarray, rgb: Optional[np.ndarray], *,
                          feature_set: str, num_points: int = 4096, block_size: float = 1.0,
                          stride: float = 0.5, batch_size: int = 16, device: str | torch.device = "cpu",
                          valid: Optional[np.ndarray] = None, voxel_size: float = 0.0, votes: int = 1,
                          seed: int = 0, progress: bool = True, frame: Optional[Frame] = None,
                          colours: bool = True) -> np.ndarray:
    """Class probabilities (N, K) float32 for every point of a cloud.

    Args:
        model: returns ``(logits (B, n, K), aux)`` for inputs (B, n, C) (the models contract).
        xyz: (N, 3) float32 metres; rgb: (N, 3) uint8 or None.
        valid: (N,) bool; invalid points get all-zero probabilities.
        feature_set, num_points, block_size, stride: as the model was trained.
        voxel_size: metres; > 0 runs the model on one point per voxel (see the module).
        votes: turns of every block (>= 1; see the module).
        frame: the whole cloud's :class:`Frame` when ``xyz`` is a tile of it (default: this cloud's).
        colours: False for a model trained without colours (``data.colours``): ``rgb`` is not read.
    """
    if votes < 1:
        raise ValueError(f"votes must be at least 1, got {votes}")
    frame = Frame.of(xyz, valid) if frame is None else frame
    rgb = rgb if colours else None
    options = dict(feature_set=feature_set, num_points=num_points, block_size=block_size, stride=stride,
                   batch_size=batch_size, device=device, votes=votes, seed=seed, progress=progress, frame=frame)
    if voxel_size <= 0:
        return _vote(model, xyz, rgb, valid, **options)
    representatives, voxel_of = voxel_subsample(xyz, voxel_size, valid, frame.origin)
    if len(representatives) == 0:
        raise ValueError("the cloud has no valid points")
    voxel_probs = _vote(model, xyz[representatives], None if rgb is None else rgb[representatives], None, **options)
    probs = np.zeros((len(xyz), voxel_probs.shape[1]), dtype=np.float32)
    kept = voxel_of >= 0
    probs[kept] = voxel_probs[voxel_of[kept]]
    return probs


def _vote(model, xyz, rgb, valid, *, feature_set, num_points, block_size, stride, batch_size, device, votes,
          seed, progress, frame) -> np.ndarray:
    """:func:`predict_probabilities` on every valid point (no voxel subsampling)."""
    model.eval()
    if hasattr(model, "sample_points"):
        model.sample_points = num_points
    n = len(xyz)
    tiling = tile_blocks(xyz, block_size, stride, valid, frame.origin)
    if len(tiling) == 0:
        raise ValueError("the cloud has no valid points")
    bar = tqdm(total=len(tiling) * votes, desc="segment", unit="block", disable=not progress)
    probs: Optional[torch.Tensor] = None
    seen = torch.zeros(n, dtype=torch.float32)  # samples each point was in
    pending: dict[int, list] = {}  # sample size -> [(features, point indices)]

    def flush(size):
        nonlocal probs
        feats, idx = zip(*pending.pop(size))
        x = torch.from_numpy(np.stack(feats)).to(device)
        logits, _ = model(x)
        p = torch.softmax(logits.float(), dim=-1).cpu().reshape(-1, logits.shape[-1])
        idx = torch.from_numpy(np.concatenate(idx))
        if probs is None:
            probs = torch.zeros(n, logits.shape[-1], dtype=torch.float32)
        probs.index_add_(0, idx, p)
        seen.index_add_(0, idx, torch.ones(len(idx)))

    for samples in _block_samples(xyz, rgb, tiling, frame, feature_set, num_points, seed, votes):
        for feats, chunk in samples:
            batch = pending.setdefault(len(chunk), [])
            batch.append((feats, chunk))
            if len(batch) * len(chunk) >= batch_size * num_points:  # the same points per pass for any size
                flush(len(chunk))
        bar.update()
    for size in list(pending):
        flush(size)
    bar.close()
    covered = seen > 0
    probs[covered] /= seen[covered, None]
    return probs.numpy()
