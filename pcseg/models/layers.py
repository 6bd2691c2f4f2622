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

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (c_out, c_in), bias (c_out,)) of the linear layer with batch norm's running
        statistics and affine terms folded in: the eval-mode layer before its ReLU."""
        scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
        return self.linear.weight * scale.unsqueeze(1), self.bn.bias - self.bn.running_mean * scale

    def forward(self, x: torch.Tensor, broadcast: Optional[torch.Tensor] = None) -> torch.Tensor:
        weight, bias = (self.linear.weight, None) if self.training else self.folded()
        c = x.shape[-1]
        y = F.linear(x, weight[:, :c], bias)
        if broadcast is not None:
            y = y + F.linear(broadcast, weight[:, c:])
        if self.training:
            y = self.bn(y.reshape(-1, y.shape[-1])).view(y.shape)
        return F.relu(y) if self.relu else y


class _PooledLinearBNReLU(torch.autograd.Function):
    """``max over points of ReLU(BN_train(x W^T))`` with exact gradients, without the (B, N, c_out) tensor.

    Batch-norm statistics of ``z = x W^T`` come from the input's mean and covariance
    (``mean_z = W mean_x``, ``var_z = diag(W cov_x W^T)``); the per-channel scale
    ``gamma / sigma`` is monotone, so the pooled value is the ReLU of the normalised
    maximum (or, for a negative scale, minimum) of ``z``. In the backward pass the
    gradient reaching ``z`` is one point per (cloud, channel) plus the batch-norm
    terms, which collapse to (c_in x c_in) matrices: the cost is O(B N c_in^2)
    instead of O(B N c_in c_out), and nothing of size (B, N, c_out) is stored.
    """

    @staticmethod
    def forward(ctx, x, weight, gamma, beta, eps):
        flat = x.reshape(-1, x.shape[-1])
        n = flat.shape[0]
        mean_x = flat.mean(dim=0)
        centred = flat - mean_x
        cov_x = centred.T @ centred / n
        mean_z = weight @ mean_x
        var_z = ((weight @ cov_x) * weight).sum(dim=1).clamp_min(0)
        sigma = torch.sqrt(var_z + eps)
        sign = torch.where(gamma >= 0, 1.0, -1.0).to(x.dtype)
        extreme, idx = (x @ (weight * sign[:, None]).T).max(dim=1)       # (B, c_out)
        xhat = (extreme * sign - mean_z) / sigma
        pre = gamma * xhat + beta
        ctx.save_for_backward(x, weight, gamma, sigma, mean_x, cov_x, idx, xhat, pre > 0)
        return F.relu(pre), mean_z, var_z

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        x, weight, gamma, sigma, mean_x, cov_x, idx, xhat, active = ctx.saved_tensors
        B, N, c_in = x.shape
        n = B * N
        g = grad_out * active                                             # (B, c_out)
        g_sum, gx_sum = g.sum(dim=0), (g * xhat).sum(dim=0)
        point = gamma * g / sigma                                         # at the argmax points
        mean_term = gamma * g_sum / (n * sigma)                           # per channel, every point
        q = gamma * gx_sum / (n * sigma * sigma)                          # times (z - mean_z)
        flat = x.reshape(-1, c_in)
        rows = (idx + torch.arange(B, device=x.device)[:, None] * N).reshape(-1)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = -(flat - mean_x) @ (weight.T @ (q[:, None] * weight)) - mean_term @ weight
            grad_x.index_add_(0, rows, (point[:, :, None] * weight).reshape(-1, c_in))
            grad_x = grad_x.view(B, N, c_in)
        if ctx.needs_input_grad[1]:
            grad_w = (point[:, :, None] * flat[rows].view(B, -1, c_in)).sum(dim=0)
            grad_w -= mean_term[:, None] * (n * mean_x) + q[:, None] * (weight @ cov_x) * n
        return grad_x, grad_w, gx_sum, g_sum, None


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

    def max_pool(self, x: torch.Tensor) -> torch.Tensor:
        """``self(x).amax(dim=1)``: (B, N, c_in) -> (B, widths[-1]), computed without the
        last layer's per-point output (:class:`_PooledLinearBNReLU` in training; in eval
        the folded bias and ReLU are applied after the max). Same values and gradients."""
        for layer in self.layers[:-1]:
            x = layer(x)
        last = self.layers[-1]
        if not last.relu:
            return last(x).amax(dim=1)
        if not last.training:
            weight, bias = last.folded()
            return F.relu(F.linear(x, weight).amax(dim=1) + bias)
        bn = last.bn
        # In the parameters' dtype even under autocast (AMP): a float16 covariance loses the
        # variance, and the running statistics it updates are float32.
        with torch.autocast(x.device.type, enabled=False):
            pooled, mean_z, var_z = _PooledLinearBNReLU.apply(x.to(last.linear.weight.dtype), last.linear.weight,
                                                              bn.weight, bn.bias, bn.eps)
        if bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked += 1
                momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                n = x.shape[0] * x.shape[1]
                bn.running_mean.lerp_(mean_z, momentum)
                bn.running_var.lerp_(var_z * n / max(n - 1, 1), momentum)
        return pooled


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
