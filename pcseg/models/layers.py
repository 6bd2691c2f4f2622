"""Building blocks shared by the models, channels-last: feature tensors are (..., C) float32.

Per-point layers are ``nn.Linear`` on the last dimension (a 1x1 convolution without the
transposes), batch norm statistics are taken over every leading dimension (every point
of every cloud), and in eval mode batch norm is folded into the linear weights.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops


class LinearBN(nn.Module):
    """Linear (no bias) -> BatchNorm -> ReLU over the last dimension: (..., c_in) -> (..., c_out).

    ``forward(x, broadcast)`` treats its input as the concatenation ``[x, broadcast]``
    where ``broadcast`` (B, 1, c_b) holds one vector per cloud (PointNet's global
    feature), without materialising the concatenated (B, N, c_in) tensor: the weight
    is split and the per-cloud part is computed once per cloud. ``c_in`` counts both.
    """

    def __init__(self, c_in: int, c_out: int, relu: bool = True):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor, broadcast: Optional[torch.Tensor] = None) -> torch.Tensor:
        weight, bias = self.linear.weight, None
        if not self.training:  # fold the running statistics into the weights
            scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
            weight = weight * scale.unsqueeze(1)
            bias = self.bn.bias - self.bn.running_mean * scale
        c = x.shape[-1]
        y = F.linear(x, weight[:, :c], bias)
        if broadcast is not None:
            y = y + F.linear(broadcast, weight[:, c:])
        if self.training:
            y = self.bn(y.reshape(-1, y.shape[-1])).view(y.shape)
        return F.relu(y) if self.relu else y


class SharedMLP(nn.Module):
    """Stacked :class:`LinearBN` layers of the given widths: (..., c_in) -> (..., widths[-1]).

    ``broadcast`` (B, 1, c_b), if given, is concatenated to the input of the first layer
    (``c_in`` then counts both parts).
    """

    def __init__(self, c_in: int, widths: Sequence[int]):
        super().__init__()
        self.layers = nn.ModuleList()
        for width in widths:
            self.layers.append(LinearBN(c_in, width))
            c_in = width
        self.out_channels = c_in

    def forward(self, x: torch.Tensor, broadcast: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.layers[0](x, broadcast)
        for layer in self.layers[1:]:
            x = layer(x)
        return x


class CircularConv(nn.Module):
    """1-D convolution with kernel 3 and circular padding along an ordered ring, then BN, ReLU.

    Input (..., k, c_in) (the k ring members in order), output (..., k, c_out). Member i
    sees members i-1, i, i+1 (indices modulo k) through one linear layer on their
    concatenated features — the same operator as ``nn.Conv1d(c_in, c_out, 3,
    padding=1, padding_mode="circular")`` with weight ``[:, :, j]`` stored in
    ``linear.weight[:, j * c_in:(j + 1) * c_in]``, without channels-first transposes.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.layer = LinearBN(3 * c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = torch.cat([x.roll(1, dims=-2), x, x.roll(-1, dims=-2)], dim=-1)
        return self.layer(window)


def gather_points(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather rows: features (B, N, C), idx (B, ...) int64 in [0, N) -> (B, ..., C)."""
    B, _, C = features.shape
    flat = idx.reshape(B, -1)
    out = torch.gather(features, 1, flat.unsqueeze(-1).expand(-1, -1, C))
    return out.reshape(*idx.shape, C)


def interpolate_3nn(fine_xyz: torch.Tensor, coarse_xyz: torch.Tensor,
                    coarse_feats: torch.Tensor) -> torch.Tensor:
    """Inverse-distance weighted 3-NN interpolation of coarse features onto fine points.

    fine_xyz (B, N, 3), coarse_xyz (B, M, 3) metres, coarse_feats (B, M, C) ->
    (B, N, C). Weights are ``1 / (d + 1e-8)`` normalised over the 3 nearest coarse
    points (``pcseg.ops.knn``; fewer when M < 3); a fine point that coincides with a
    coarse point takes its features. The neighbour search carries no gradient.
    """
    k = min(3, coarse_xyz.shape[1])
    dist2, idx = ops.knn(fine_xyz.detach(), coarse_xyz.detach(), k)
    weights = 1.0 / (dist2.sqrt() + 1e-8)
    weights = (weights / weights.sum(dim=-1, keepdim=True)).to(coarse_feats.dtype)
    return (gather_points(coarse_feats, idx) * weights.unsqueeze(-1)).sum(dim=2)
