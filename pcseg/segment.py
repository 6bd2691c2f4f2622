"""Segmenting whole scans: the Python face of ``pcseg segment``.

    labels, probs = pcseg.segment.segment("scan.ply")             # bundled default model
    labels, probs = pcseg.segment.segment(cloud, model="runs/x/best.pt", device="cuda")

Every point gets a label: valid points the class with the highest voted probability,
non-finite points 255 (unlabelled), so ``len(labels) == len(cloud)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .bundled import resolve_model
from .checkpoint import load_model
from .classes import UNLABELLED
from .infer import predict_probabilities
from .io import Cloud, read_cloud


@dataclass
class Segmenter:
    """A loaded model with its inference settings (from the checkpoint unless overridden)."""

    model: torch.nn.Module
    class_names: list
    feature_set: str
    num_points: int
    block_size: float
    stride: float
    device: str
    batch_size: int = 16

    @classmethod
    def load(cls, model: str | None = None, device: str = "auto", batch_size: int = 16,
             block_size: float | None = None, stride: float | None = None,
             num_points: int | None = None) -> "Segmenter":
        device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        net, meta = load_model(resolve_model(model), device)
        data = meta["data"]
        block = block_size or data["block_size"]
        return cls(net, list(meta["class_names"]), data["feature_set"], num_points or data["num_points"],
                   block, stride or min(data["stride"], block), device, batch_size)

    def probabilities(self, cloud: Cloud, progress: bool = True) -> np.ndarray:
        """(N, K) float32 voted class probabilities (zeros for non-finite points)."""
        return predict_probabilities(self.model, cloud.xyz, cloud.rgb, feature_set=self.feature_set,
                                     num_points=self.num_points, block_size=self.block_size,
                                     stride=self.stride, batch_size=self.batch_size, device=self.device,
                                     valid=cloud.valid, progress=progress)

    def labels(self, cloud: Cloud, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N,) int64 with 255 for non-finite points, probabilities (N, K))."""
        probs = self.probabilities(cloud, progress)
        labels = np.where(cloud.valid, probs.argmax(axis=1), UNLABELLED).astype(np.int64)
        return labels, probs


def segment(cloud: Cloud | str | os.PathLike, model: str | None = None, device: str = "auto",
            progress: bool = False, **options) -> tuple[np.ndarray, np.ndarray]:
    """Label every point of ``cloud`` (a :class:`Cloud` or a file path).

    Args:
        model: a bundled model name or a checkpoint path (default: the bundled default).
        options: ``batch_size``, ``block_size``, ``stride``, ``num_points`` overrides.
    Returns (labels (N,) int64, probabilities (N, K) float32).
    """
    if not isinstance(cloud, Cloud):
        cloud = read_cloud(cloud)
    return Segmenter.load(model, device, **options).labels(cloud, progress)
