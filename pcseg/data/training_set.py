"""The training dataset: random blocks of the rooms of a prepared cache."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..classes import UNLABELLED
from .augment import AugmentConfig, augment_block
from .blocks import sample_block
from .features import check_feature_set, make_features
from .rooms import Room, load_room


def class_weights(counts: Sequence[int], ignore_absent: bool = True) -> np.ndarray:
    """Inverse-log-frequency class weights (as PointNet++ / Open3D-ML): 1 / log(1.2 + f).

    ``f`` is the class's share of points. Classes with no points get weight 0 when
    ``ignore_absent``. Weights are normalised to mean 1 over the present classes.
    """
    counts = np.asarray(counts, dtype=np.float64)
    freq = counts / max(counts.sum(), 1.0)
    weights = 1.0 / np.log(1.2 + freq)
    if ignore_absent:
        weights[counts == 0] = 0.0
    present = weights > 0
    return (weights / weights[present].mean()).astype(np.float32)


class BlockTrainingDataset(Dataset):
    """Random training blocks of the rooms of a cache.

    Item ``i`` of epoch ``e`` is drawn with a generator seeded by ``(seed, e, i)``, so
    data-loader workers and a resumed run reproduce the same samples; call
    :meth:`set_epoch` each epoch. Rooms are chosen in proportion to their point counts, and
    a block is centred on a random point of the room. A class-balanced block draws a class
    first, uniformly among the labelled classes present, then a room in proportion to its
    points of that class, and is centred on one of them: rare classes (columns, boards)
    are then seen as often as walls. ``balance_classes`` is the share of class-balanced
    blocks: ``True`` or 1 all of them, ``False`` or 0 none, 0.25 a quarter (the others
    keep the rooms' true class frequencies).

    Args:
        root: cache folder; entries: its index entries to use (e.g. the training areas).
        num_points: points per block; block_size: block side, metres.
        feature_set: see :mod:`pcseg.data.features`.
        augment: an :class:`AugmentConfig` (``AugmentConfig.none()`` for validation).
        samples_per_epoch: items per epoch (default: total points / num_points).
        sampling: ``"random"`` or ``"fps"`` (farthest point sampling of the block's points).
        balance_classes: share in [0, 1] of blocks centred on class-balanced points (above).
        colours: False gives every block ``MISSING_RGB`` (a model that never reads colours).
    Items: (features (num_points, C) float32, labels (num_points,) int64).
    """

    def __init__(self, root: os.PathLike, entries: Sequence[dict], num_points: int = 4096,
                 block_size: float = 1.0, feature_set: str = "xyzrgbn",
                 augment: AugmentConfig | None = None, samples_per_epoch: int | None = None,
                 sampling: str = "random", seed: int = 0, balance_classes: bool | float = False,
                 colours: bool = True):
        if not entries:
            raise ValueError("no rooms to train on")
        if not 0.0 <= float(balance_classes) <= 1.0:
            raise ValueError(f"balance_classes must be a share in [0, 1], got {balance_classes!r}")
        if sampling not in ("random", "fps"):
            raise ValueError(f"sampling must be 'random' or 'fps', got {sampling!r}")
        check_feature_set(feature_set)
        self.rooms: list[Room] = [load_room(root, e) for e in entries]
        sizes = np.array([len(r.xyz) for r in self.rooms], dtype=np.float64)
        self.room_p = sizes / sizes.sum()
        self.bounds = [(r.xyz.min(0), r.xyz.max(0)) for r in self.rooms]
        self.num_points, self.block_size, self.feature_set = num_points, block_size, feature_set
        self.augment = augment or AugmentConfig()
        self.sampling, self.seed, self.epoch = sampling, seed, 0
        self.length = samples_per_epoch or max(1, int(sizes.sum() // num_points))
        self.balanced_share = float(balance_classes)
        self.colours = colours
        self.class_points = [_points_by_class(r.labels) for r in self.rooms] if self.balanced_share > 0 else None
        if self.class_points is not None:
            present = sorted({c for by_class in self.class_points for c in by_class})
            counts = np.array([[len(by_class.get(c, ())) for by_class in self.class_points] for c in present], float)
            self.balanced_classes, self.class_room_p = present, counts / counts.sum(1, keepdims=True)

    def _block(self, rng: np.random.Generator, num_points: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(room index, block centre (2,), point indices (num_points,)) of one random block."""
        if self.class_points is None or (self.balanced_share < 1 and rng.random() >= self.balanced_share):
            k = rng.choice(len(self.rooms), p=self.room_p)
            return (k, *sample_block(self.rooms[k].xyz, rng, num_points, self.block_size))
        j = rng.integers(len(self.balanced_classes))
        c, k = self.balanced_classes[j], rng.choice(len(self.rooms), p=self.class_room_p[j])
        return (k, *sample_block(self.rooms[k].xyz, rng, num_points, self.block_size,
                                 centers_from=self.class_points[k][c]))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        oversample = 4 if self.sampling == "fps" else 1
        k, center, idx = self._block(rng, self.num_points * oversample)
        room = self.rooms[k]
        if self.sampling == "fps":
            from .. import ops
            unique = np.unique(idx)
            if len(unique) > self.num_points:
                pts = torch.from_numpy(np.ascontiguousarray(room.xyz[unique]))[None]
                idx = unique[ops.fps(pts, self.num_points)[0].numpy()]
            else:
                idx = unique[rng.integers(0, len(unique), self.num_points)]
        xyz = np.asarray(room.xyz[idx], dtype=np.float32)
        rgb = np.asarray(room.rgb[idx], dtype=np.float32) / 255.0
        xyz, rgb = augment_block(xyz, rgb, center, self.augment, rng)
        lo, hi = self.bounds[k]
        feats = make_features(xyz, rgb if self.colours else None, center, lo, hi, self.feature_set)
        return torch.from_numpy(feats), torch.from_numpy(np.asarray(room.labels[idx], dtype=np.int64))


def _points_by_class(labels: np.ndarray) -> dict[int, np.ndarray]:
    """{class id: int32 indices of its points} for the labelled classes of one room."""
    order = np.argsort(labels, kind="stable").astype(np.int32)
    classes, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    return {int(c): g for c, g in zip(classes, groups) if c != UNLABELLED}
