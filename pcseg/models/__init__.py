"""Segmentation networks behind one interface.

``build(name, num_classes, in_channels, **options)`` returns a module whose forward maps
points (B, N, C) (channels 0-2: block-centred xyz, metres) to ``(logits (B, N, K),
aux_loss)``, where ``aux_loss`` is a scalar already weighted (0 when the model has none).
``model.config`` rebuilds it: ``build(**model.config)``.
"""

from __future__ import annotations

from torch import nn

from .acnn import ACNNSeg
from .pointnet import PointNetSeg

MODELS = {"pointnet": PointNetSeg, "acnn": ACNNSeg}


def build(name: str, num_classes: int, in_channels: int, **options) -> nn.Module:
    """Build model ``name`` ("pointnet" or "acnn"); ValueError for an unknown name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels, **options)


__all__ = ["MODELS", "build", "ACNNSeg", "PointNetSeg"]
