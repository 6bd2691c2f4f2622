"""Segmenting whole scans: the Python face of ``pcseg segment``.

    from pcseg.segment import segment
    labels, probs = segment("scan.ply")                                 # bundled default model
    labels, probs = segment(cloud, model="runs/x/best.pt", device="cuda")

Every point gets a label: valid points the class with the highest voted probability,
non-finite points 255 (unlabelled), so ``len(labels) == len(cloud)``. Clouds without
colours are segmented with the constant grey of :data:`pcseg.data.features.MISSING_RGB`
when the model's feature set has colour channels. By default the model runs on one point
per 2 cm voxel (``voxel_size``) and the points of a voxel share its label; then, where the model
asks for it (``refine``, default: the checkpoint's ``data.refine``), the points of each large flat
patch (a wall, a floor, a table top) share the patch's mean probabilities (:mod:`pcseg.refine`). The cloud's up axis and unit are
found from the cloud unless given (``up``, ``units``; :mod:`pcseg.placement`); :func:`segment`
warns with what it assumed and when the cloud does not look like an indoor scan.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .bundled import resolve_model
from .checkpoint import load_model
from .classes import UNLABELLED
from .errors import PcsegError
from .infer import predict_probabilities
from .io import Cloud, read_cloud
from .placement import Placement, place
from .refine import model_refines, refine_probabilities
from .units import check_units
from .up_axis import check_up
from .up_judge import VOXEL as JUDGE_VOXEL

#: Side (metres) of the voxels whose points share one model prediction (0: every point).
DEFAULT_VOXEL_SIZE = 0.02


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; PcsegError for an unusable device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise PcsegError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise PcsegError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise PcsegError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type != "cpu":
        raise PcsegError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return str(parsed)


@dataclass
class Segmenter:
    """A loaded model with its inference settings (from the checkpoint unless overridden).

    ``block_size`` and ``stride`` are metres; ``num_points`` is the points per model sample;
    ``batch_size`` the full samples' worth of points per forward pass (memory grows linearly with it);
    ``voxel_size`` (metres) groups points that share a prediction, 0 runs every point;
    ``votes`` is the number of turns of every block averaged (see :mod:`pcseg.infer`);
    ``refine`` votes the probabilities over flat patches (see :mod:`pcseg.refine`);
    ``up`` and ``units`` are the clouds' up axis and unit, or "auto" (see :mod:`pcseg.placement`).
    """

    model: torch.nn.Module
    class_names: list
    feature_set: str
    num_points: int
    block_size: float
    stride: float
    device: str
    batch_size: int = 16
    up: str = "auto"
    voxel_size: float = DEFAULT_VOXEL_SIZE
    votes: int = 1
    colours: bool = True
    refine: bool = True
    units: str = "auto"

    @classmethod
    def load(cls, model: Optional[str] = None, device: str = "auto", batch_size: int = 16,
             block_size: Optional[float] = None, stride: Optional[float] = None,
             num_points: Optional[int] = None, up: str = "auto",
             voxel_size: Optional[float] = None, votes: int = 1, refine: Optional[bool] = None,
             units: str = "auto") -> "Segmenter":
        """Load a bundled model name or a checkpoint path; PcsegError for bad settings.

        ``up`` names the cloud's up axis (see :mod:`pcseg.up_axis`; the models expect z) and
        ``units`` its unit (m, cm, mm; the models expect metres); "auto" finds them per cloud.
        ``refine`` None takes the checkpoint's ``data.refine`` (true where it says nothing).
        """
        device = resolve_device(device)
        check_up(up, allow_auto=True)
        check_units(units)
        net, meta = load_model(resolve_model(model), device)
        data = meta["data"]
        block = data["block_size"] if block_size is None else block_size
        stride = min(data["stride"], block) if stride is None else stride
        num_points = data["num_points"] if num_points is None else num_points
        if not batch_size >= 1:
            raise PcsegError(f"--batch-size must be at least 1, got {batch_size}")
        if not votes >= 1:
            raise PcsegError(f"--votes must be at least 1, got {votes}")
        if not num_points >= 1:
            raise PcsegError(f"--num-points must be at least 1, got {num_points}")
        if not block > 0:
            raise PcsegError(f"--block-size must be positive, got {block}")
        if not 0 < stride <= block:
            raise PcsegError(f"--stride must be in (0, block size {block:g}] so every point is covered, got {stride}")
        voxel_size = DEFAULT_VOXEL_SIZE if voxel_size is None else voxel_size
        if not 0 <= voxel_size < block:
            raise PcsegError(f"--voxel-size must be in [0, block size {block:g}), got {voxel_size}")
        return cls(net, list(meta["class_names"]), data["feature_set"], int(num_points), float(block),
                   float(stride), device, int(batch_size), up, float(voxel_size), int(votes),
                   data["colours"], model_refines(data, refine), units)

    def place(self, cloud: Cloud, name: str = "cloud") -> Placement:
        """The cloud's up axis and unit for this segmenter's settings (see :func:`pcseg.placement.place`)."""
        return place(cloud, self.up, self.units, name, judge=self.judge)

    def judge(self, xyz: np.ndarray, rgb: Optional[np.ndarray]) -> float:
        """How sure the model is of one reading of a cloud (:data:`pcseg.up_judge.Judge`): its mean top
        probability over the points (n, 3) float32 (metres, z up; colours (n, 3) uint8 or None) from one
        coarse pass, blocks side by side on one point per :data:`pcseg.up_judge.VOXEL`; 0 for no points."""
        if len(xyz) == 0:
            return 0.0
        probs = predict_probabilities(self.model, xyz, rgb, feature_set=self.feature_set, num_points=self.num_points,
                                      block_size=self.block_size, stride=self.block_size, batch_size=self.batch_size,
                                      device=self.device, voxel_size=JUDGE_VOXEL, progress=False, colours=self.colours)
        return float(probs.max(axis=1).mean())

    def probabilities(self, cloud: Cloud, progress: bool = True,
                      placement: Optional[Placement] = None) -> np.ndarray:
        """(N, K) float32 voted (and refined) class probabilities (zeros for non-finite points);
        ``placement`` defaults to :meth:`place`'s."""
        placement = self.place(cloud) if placement is None else placement
        xyz = placement.model_xyz(cloud.xyz)
        probs = predict_probabilities(self.model, xyz, cloud.rgb, feature_set=self.feature_set,
                                      num_points=self.num_points, block_size=self.block_size,
                                      stride=self.stride, batch_size=self.batch_size, device=self.device,
                                      valid=cloud.valid, voxel_size=self.voxel_size, votes=self.votes,
                                      progress=progress, colours=self.colours)
        return refine_probabilities(xyz, probs, cloud.valid) if self.refine else probs

    def labels(self, cloud: Cloud, progress: bool = True,
               placement: Optional[Placement] = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N,) int64 with 255 for non-finite points, probabilities (N, K) float32)."""
        probs = self.probabilities(cloud, progress, placement)
        labels = np.where(cloud.valid, probs.argmax(axis=1), UNLABELLED).astype(np.int64)
        return labels, probs


def segment(cloud: Cloud | str | os.PathLike, model: Optional[str] = None, device: str = "auto",
            progress: bool = False, **options) -> tuple[np.ndarray, np.ndarray]:
    """Label every point of ``cloud`` (a :class:`Cloud` or a file path).

    Args:
        model: a bundled model name or a checkpoint path (default: the bundled default).
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        options: ``batch_size``, ``block_size``, ``stride``, ``num_points``, ``voxel_size``, ``votes``,
            ``refine`` overrides, ``up`` (the cloud's up axis, e.g. "-y" for a camera-frame RGB-D capture;
            default "auto") and ``units`` ("m", "cm", "mm"; default "auto").
    Returns (labels (N,) int64, 255 for non-finite points; probabilities (N, K) float32). What was
    assumed about the up axis and unit, and a cloud that does not look indoor, are told as warnings.
    """
    segmenter = Segmenter.load(model, device, **options)
    if not isinstance(cloud, Cloud):
        cloud = read_cloud(cloud)
    placement = segmenter.place(cloud, str(cloud.path) if cloud.path is not None else "cloud")
    for line in placement.notes + ([placement.warning] if placement.warning else []):
        warnings.warn(line, stacklevel=2)
    return segmenter.labels(cloud, progress, placement)
