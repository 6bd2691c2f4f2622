"""A-CNN for semantic segmentation of 1 m blocks (design: docs/ACNN.md).

Annular convolution (Komarichev et al., CVPR 2019): around FPS centroids, each ring
``[r_in, r_out)`` holds the k nearest points inside the annulus (``pcseg.ops.ring_knn``),
ordered by angle in the centroid's tangent plane; a shared MLP lifts every member, a
1-D convolution runs along the ordered ring with circular padding, and max-pooling over
the ring gives the ring's feature. Rings are concatenated. Three such levels, a global
level, and a decoder of inverse-distance 3-NN interpolation with skip connections.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .layers import SharedMLP, gather_points
from .ring_ordering import estimate_normals, order_by_angle

#: (centroids, rings [(r_in, r_out) metres], k per ring, MLP width, conv width, output width)
DEFAULT_LEVELS = (
    (1024, ((0.0, 0.1), (0.1, 0.2)), 16, 32, 64, 128),
    (256, ((0.0, 0.2), (0.2, 0.4)), 16, 64, 128, 256),
    (64, ((0.0, 0.4), (0.4, 0.8)), 16, 128, 256, 512),
)


class AnnularConv(nn.Module):
    """One ring: MLP on (relative xyz, features) of each member, circular 1-D conv along
    the ordered ring, max over the ring. (B, M, k, c_in) -> (B, M, c_out)."""

    def __init__(self, c_in: int, mlp_width: int, c_out: int):
        super().__init__()
        self.mlp = SharedMLP(c_in, (mlp_width,))
        self.conv = nn.Conv1d(mlp_width, c_out, kernel_size=3, bias=False)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, members: torch.Tensor) -> torch.Tensor:
        B, M, k, _ = members.shape
        h = self.mlp(members).reshape(B * M, k, -1).transpose(1, 2)     # (B*M, C, k)
        h = F.pad(h, (1, 1), mode="circular")
        h = F.relu(self.bn(self.conv(h)))
        return h.amax(dim=2).reshape(B, M, -1)


class AnnularLevel(nn.Module):
    """FPS centroids, one :class:`AnnularConv` per ring, rings concatenated, then an MLP."""

    def __init__(self, c_in: int, num_centroids: int, rings: Sequence, k: int, mlp_width: int,
                 conv_width: int, c_out: int):
        super().__init__()
        self.num_centroids, self.rings, self.k = num_centroids, tuple(rings), k
        self.convs = nn.ModuleList(AnnularConv(c_in + 3, mlp_width, conv_width) for _ in rings)
        self.fuse = SharedMLP(conv_width * len(rings), (c_out,))

    def forward(self, xyz, normals, feats):
        m = min(self.num_centroids, xyz.shape[1])
        centre_idx = ops.fps(xyz.detach(), m)
        centres = gather_points(xyz, centre_idx)
        centre_normals = gather_points(normals, centre_idx)
        rings = []
        for (r_in, r_out), conv in zip(self.rings, self.convs):
            idx, _ = ops.ring_knn(centres.detach(), xyz.detach(), self.k, r_in, r_out)
            idx = order_by_angle(centres, centre_normals, xyz, idx)
            rel = gather_points(xyz, idx) - centres.unsqueeze(2)
            rings.append(conv(torch.cat([rel, gather_points(feats, idx)], dim=-1)))
        return centres, centre_normals, self.fuse(torch.cat(rings, dim=-1))


def interpolate(fine_xyz, coarse_xyz, coarse_feats):
    """Inverse-distance weighted 3-NN interpolation of coarse features onto fine points."""
    k = min(3, coarse_xyz.shape[1])
    dist2, idx = ops.knn(fine_xyz.detach(), coarse_xyz.detach(), k)
    weights = 1.0 / (dist2.sqrt() + 1e-8)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return (gather_points(coarse_feats, idx) * weights.unsqueeze(-1)).sum(dim=2)


def _as_lists(value):
    """Nested tuples as nested lists, so the config survives YAML and JSON unchanged."""
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


class ACNNSeg(nn.Module):
    """A-CNN semantic segmentation: input (B, N, C), xyz first; logits (B, N, K)."""

    def __init__(self, num_classes: int, in_channels: int = 9, levels=DEFAULT_LEVELS,
                 global_width: int = 512, normal_k: int = 16, dropout: float = 0.5):
        super().__init__()
        self.config = {"name": "acnn", "num_classes": num_classes, "in_channels": in_channels,
                       "global_width": global_width, "normal_k": normal_k, "dropout": dropout,
                       "levels": _as_lists(levels)}
        self.normal_k = normal_k
        c, widths = in_channels, []
        self.levels = nn.ModuleList()
        for num, rings, k, mlp_w, conv_w, out_w in levels:
            self.levels.append(AnnularLevel(c, num, rings, k, mlp_w, conv_w, out_w))
            widths.append(out_w)
            c = out_w
        self.global_mlp = SharedMLP(c + 3, (global_width,))
        skips = [in_channels] + widths[:-1]
        self.decoders = nn.ModuleList()
        c = widths[-1] + global_width
        for skip, out in zip(reversed(skips), reversed([128] + widths[:-1])):
            self.decoders.append(SharedMLP(c + skip, (out, out)))
            c = out
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor):
        xyz = x[..., :3].contiguous()
        normals = estimate_normals(xyz, self.normal_k)
        stack = [(xyz, x)]
        feats = x
        pts, nrm = xyz, normals
        for level in self.levels:
            pts, nrm, feats = level(pts, nrm, feats)
            stack.append((pts, feats))
        glob = self.global_mlp(torch.cat([pts, feats], dim=-1)).amax(dim=1, keepdim=True)
        feats = torch.cat([feats, glob.expand(-1, feats.shape[1], -1)], dim=-1)
        coarse_xyz = pts
        for decoder, (fine_xyz, skip) in zip(self.decoders, reversed(stack[:-1])):
            up = interpolate(fine_xyz, coarse_xyz, feats)
            feats = decoder(torch.cat([up, skip], dim=-1))
            coarse_xyz = fine_xyz
        return self.classifier(self.dropout(feats)), x.new_zeros(())
