"""Building blocks shared by the models, channels-last: tensors are (..., C)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class SharedMLP(nn.Module):
    """Per-point Linear -> BatchNorm -> ReLU layers over the last dimension.

    Input (..., c_in), output (..., widths[-1]); batch norm statistics are taken over
    all leading dimensions (every point of every cloud), as a 1x1 convolution would.
    """

    def __init__(self, c_in: int, widths: Sequence[int]):
        super().__init__()
        layers = []
        for width in widths:
            layers += [nn.Linear(c_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            c_in = width
        self.layers = nn.ModuleList(layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        for layer in self.layers:
            x = layer(x)
        return x.reshape(*shape, x.shape[-1])


def gather_points(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather rows: features (B, N, C), idx (B, ...) int64 -> (B, ..., C)."""
    B, _, C = features.shape
    flat = idx.reshape(B, -1)
    out = torch.gather(features, 1, flat.unsqueeze(-1).expand(-1, -1, C))
    return out.reshape(*idx.shape, C)
