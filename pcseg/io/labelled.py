"""What every labelled output holds, checked once for all writers.

Labels are class ids 0-254 with 255 (unlabelled) for the cloud's non-finite points;
confidence is the float32 voted probability of the chosen class, in [0, 1], 0 for
non-finite points.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from ..classes import UNLABELLED
from ..errors import PcsegError
from .cloud import Cloud


def output_labels(path: Path, cloud: Cloud, labels: np.ndarray) -> np.ndarray:
    """(N,) int64 labels of ``cloud`` for the output ``path``: 255 for its non-finite points.

    Raises :class:`PcsegError` for a wrong shape or ids outside 0-255.
    """
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (len(cloud),):
        raise PcsegError(f"{path}: expected {len(cloud)} labels, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > UNLABELLED):
        raise PcsegError(f"{path}: labels must be class ids in 0-{UNLABELLED}, "
                         f"got {labels.min()}..{labels.max()}")
    return np.where(cloud.valid, labels, UNLABELLED)


def output_confidence(path: Path, cloud: Cloud, confidence: np.ndarray) -> np.ndarray:
    """(N,) float32 confidence of ``cloud`` for the output ``path`` (0 for non-finite points).

    Raises :class:`PcsegError` for a wrong shape or values outside [0, 1].
    """
    confidence = np.asarray(confidence, np.float32)
    if confidence.shape != (len(cloud),):
        raise PcsegError(f"{path}: expected {len(cloud)} confidence values, got shape {confidence.shape}")
    confidence = np.where(cloud.valid, confidence, np.float32(0))
    if not ((confidence >= 0) & (confidence <= 1)).all():
        raise PcsegError(f"{path}: confidence must lie in [0, 1]")
    return confidence


def output_property_names(names, reserved) -> dict:
    """Output name of each input property in ``names``: its own, or, when a writer adds a property of
    that name (``reserved``), the name with ``_input`` appended (again while that is taken too)."""
    used = set(reserved) | set(names)
    renamed = {}
    for name in names:
        new = name
        if name in reserved:
            while new in used:
                new += "_input"
            used.add(new)
        renamed[name] = new
    return renamed


def confidence_of(probabilities: np.ndarray) -> np.ndarray:
    """(N,) float32 probability of the chosen class: the row maximum of ``probabilities`` (N, C),
    clipped to [0, 1] (a vote average can round an ulp above 1)."""
    return np.clip(np.asarray(probabilities, np.float32).max(axis=1), 0, 1)
