"""A-CNN for semantic segmentation of 1 m blocks (design and diagram: docs/ACNN.md).

Annular convolution (Komarichev et al., CVPR 2019): around FPS centroids, each ring
``[r_in, r_out)`` holds the k nearest points inside the annulus (``pcseg.ops.ring_knn``),
ordered by angle in the centroid's tangent plane; a shared MLP lifts every member, a
1-D convolution runs along the ordered ring with circular padding, and max-pooling over
the ring gives the ring's feature. The rings of a level are concatenated and fused by
an MLP. Three such levels, a global level, and a decoder of inverse-distance 3-NN
interpolation with skip connections, then a per-point classifier.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from .. import ops
from .layers import CircularConv, SharedMLP, gather_points, interpolate_3nn
from .ring_ordering import angular_order, estimate_normals

#: Per level: (centroids, rings [(r_in, r_out) metres], k per ring, member MLP width,
#: circular-conv width, fused output width).
DEFAULT_LEVELS = (
    (1024, ((0.0, 0.1), (0.1, 0.2)), 16, 32, 64, 128),
    (256, ((0.0, 0.2), (0.2, 0.4)), 16, 64, 128, 256),
    (64, ((0.0, 0.4), (0.4, 0.8)), 16, 128, 256, 512),
)


class AnnularConv(nn.Module):
    """One ring: members (B, M, k, c_in) in angular order -> ring feature (B, M, c_out).

    A shared MLP lifts each member, :class:`CircularConv` (kernel 3) runs along the ring,
    max over the ring. The result does not depend on which member comes first, only on
    the cyclic order; repeated fill members (rings with fewer than k points) add no new
    values to the max.
    """

    def __init__(self, c_in: int, mlp_width: int, c_out: int):
        super().__init__()
        self.mlp = SharedMLP(c_in, (mlp_width,))
        self.conv = CircularConv(mlp_width, c_out)

    def forward(self, members: torch.Tensor) -> torch.Tensor:
        return self.conv(self.mlp(members)).amax(dim=2)


class AnnularLevel(nn.Module):
    """FPS centroids, one :class:`AnnularConv` per ring, rings concatenated, then an MLP.

    forward(xyz (B, N, 3), normals (B, N, 3), feats (B, N, c_in)) ->
    (centroids (B, M, 3), their normals (B, M, 3), features (B, M, c_out)).
    Each member's input is its offset to the centroid (metres) followed by its features.
    """

    def __init__(self, c_in: int, num_centroids: int, rings: Sequence, k: int, mlp_width: int,
                 conv_width: int, c_out: int):
        super().__init__()
        self.num_centroids, self.k = num_centroids, k
        self.rings = tuple((float(r_in), float(r_out)) for r_in, r_out in rings)
        self.convs = nn.ModuleList(AnnularConv(3 + c_in, mlp_width, conv_width) for _ in self.rings)
        self.fuse = SharedMLP(conv_width * len(self.rings), (c_out,))

    def centroids_for(self, share: float, num_inputs: int) -> int:
        """Centroids of this level for a sample holding ``share`` (in (0, 1]) of a full
        sample's points, its input having ``num_inputs`` points: ``ceil(num_centroids *
        share)``, at most ``num_inputs``. A full sample (share 1) keeps ``num_centroids``."""
        return max(1, min(num_inputs, math.ceil(self.num_centroids * share - 1e-9)))

    def ring_size(self, num_inputs: int) -> int:
        """Members per ring when the level's input has ``num_inputs`` points: ``k``, or fewer
        for inputs too small to fill a ring, with the same result.

        A ring holds at most ``num_inputs`` distinct members m; the other slots repeat the
        first member c, and the angular sort keeps the repeats next to it. The ring's
        feature is a max over the convolution's windows (member and ring neighbours), and
        with at least 3 repeats the set of windows, hence the max, is the same for any
        ring length: ``(x, c, c), (c, c, c), (c, c, y)`` plus the windows among the m
        members. ``num_inputs + 3`` slots keep those 3 repeats; a one-point input has
        only the window ``(c, c, c)``, so one slot gives it.
        """
        return 1 if num_inputs == 1 else min(self.k, num_inputs + 3)

    def forward(self, xyz: torch.Tensor, normals: torch.Tensor, feats: torch.Tensor, share: float = 1.0):
        """``share``: the sample's points over a full sample's (see :meth:`centroids_for`)."""
        points = xyz.detach()
        centre_idx = ops.fps(points, self.centroids_for(share, xyz.shape[1]))
        centres = gather_points(xyz, centre_idx)
        centre_normals = gather_points(normals, centre_idx)
        rings = []
        for (r_in, r_out), conv in zip(self.rings, self.convs):
            idx, _ = ops.ring_knn(centres.detach(), points, self.ring_size(points.shape[1]), r_in, r_out)
            offsets = gather_points(xyz, idx) - centres.unsqueeze(2)          # (B, M, k, 3)
            order = angular_order(offsets, centre_normals)
            idx = torch.gather(idx, -1, order)
            offsets = torch.gather(offsets, 2, order.unsqueeze(-1).expand(-1, -1, -1, 3))
            members = torch.cat([offsets, gather_points(feats, idx)], dim=-1)
            rings.append(conv(members))
        return centres, centre_normals, self.fuse(torch.cat(rings, dim=-1))


def _as_lists(value):
    """Nested tuples as nested lists, so the config survives YAML and JSON unchanged."""
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


class ACNNSeg(nn.Module):
    """A-CNN semantic segmentation: x (B, N, C) float32, xyz first -> logits (B, N, K).

    Args:
        num_classes: K.
        in_channels: C >= 3 (channels 0-2 block-centred xyz in metres).
        levels: per level (centroids, rings, k, mlp width, conv width, out width), see
            ``DEFAULT_LEVELS``; radii in metres.
        global_width: width of the global feature (max over the last level's centroids).
        decoder_width: width of the decoder MLP at full resolution.
        normal_k: neighbours of the PCA normal estimate.
        dropout: before the classifier.

    ``sample_points`` (not a weight, not in ``config``) is the number of points of a full
    sample, as the model was trained; :func:`pcseg.infer.predict_probabilities` sets it.
    A smaller sample of n points (a sparse block's) then gets ``ceil(centroids * n /
    sample_points)`` centroids per level instead of ``min(centroids, n)``, so its cost
    follows its points: a 16-point sample no longer runs 16 centroids at every level.
    Full samples are unaffected; None keeps ``min(centroids, n)`` for every sample.
    """

    sample_points: Optional[int] = None

    def __init__(self, num_classes: int, in_channels: int = 9, levels=DEFAULT_LEVELS,
                 global_width: int = 512, decoder_width: int = 128, normal_k: int = 16,
                 dropout: float = 0.5):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"in_channels must be at least 3 (xyz first), got {in_channels}")
        if not levels:
            raise ValueError("A-CNN needs at least one level")
        self.config = {"name": "acnn", "num_classes": num_classes, "in_channels": in_channels,
                       "levels": _as_lists(levels), "global_width": global_width,
                       "decoder_width": decoder_width, "normal_k": normal_k, "dropout": dropout}
        self.normal_k = normal_k
        self.levels = nn.ModuleList()
        widths = [in_channels]                      # feature width at each resolution
        for num, rings, k, mlp_w, conv_w, out_w in levels:
            self.levels.append(AnnularLevel(widths[-1], num, rings, k, mlp_w, conv_w, out_w))
            widths.append(out_w)
        self.global_mlp = SharedMLP(3 + widths[-1], (global_width,))
        # Decoder step i goes from resolution i+1 to i: [interpolated, skip] -> MLP.
        outs = [decoder_width] + widths[1:-1]
        self.decoders = nn.ModuleList()
        c = widths[-1]
        for i in reversed(range(len(levels))):
            extra = global_width if i == len(levels) - 1 else 0
            self.decoders.append(SharedMLP(c + widths[i] + extra, (outs[i], outs[i])))
            c = outs[i]
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, C) -> (logits (B, N, num_classes), zero auxiliary loss)."""
        xyz = x[..., :3].contiguous()
        stack = [(xyz, x)]
        share = 1.0 if self.sample_points is None else min(1.0, x.shape[1] / self.sample_points)
        pts, nrm, feats = xyz, estimate_normals(xyz, self.normal_k), x
        for level in self.levels:
            pts, nrm, feats = level(pts, nrm, feats, share)
            stack.append((pts, feats))
        glob = self.global_mlp(torch.cat([pts, feats], dim=-1)).amax(dim=1, keepdim=True)
        for decoder, (fine_xyz, skip) in zip(self.decoders, reversed(stack[:-1])):
            up = interpolate_3nn(fine_xyz, pts, feats)
            feats = decoder(torch.cat([up, skip], dim=-1), glob)
            pts, glob = fine_xyz, None
        return self.classifier(self.dropout(feats)), x.new_zeros(())
