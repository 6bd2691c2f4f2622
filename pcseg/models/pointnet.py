"""PointNet segmentation network (Qi et al., CVPR 2017), with both T-Nets.

Input (B, N, C) float32 with channels 0-2 xyz (metres); output per-point logits
(B, N, K) and the feature transform's orthogonality loss
``0.001 * ||I - A A^T||_F^2`` (mean over the batch) as the auxiliary loss.

    xyz ── input T-Net (3x3) ──► [xyz', other channels] ── MLP 64-64 ── feature T-Net (64x64)
        ── MLP 64-128-1024 ── max-pool ── global 1024 ──┐
    per-point 64 ──────────────────────────────────────┴─ concat 1088 ── MLP 512-256-128
        ── dropout ── linear K

Every MLP layer is Linear -> BatchNorm -> ReLU. The 1088-wide concatenation is never
built: the first head layer's weight is split into its per-point (64) and global (1024)
parts and the global part is computed once per cloud (see :class:`LinearBN`). The three
1024-wide layers feed only max-pools and are never materialised per point (see
:meth:`SharedMLP.max_pool`).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import SharedMLP

#: Weight of the feature transform's orthogonality regulariser.
FEATURE_TRANSFORM_WEIGHT = 0.001


class TNet(nn.Module):
    """Predicts a (k x k) transform from points (B, N, c_in): shared MLP 64-128-1024,
    max-pool, FC 512-256, linear k*k. Starts as the identity: the last layer's
    weights are zero and its bias is the flattened identity."""

    def __init__(self, c_in: int, k: int):
        super().__init__()
        self.k = k
        self.mlp = SharedMLP(c_in, (64, 128, 1024))
        self.fc = SharedMLP(1024, (512, 256))
        self.out = nn.Linear(256, k * k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(k).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, c_in) -> transform (B, k, k), applied as ``x @ transform``."""
        pooled = self.mlp.max_pool(x)
        return self.out(self.fc(pooled)).view(-1, self.k, self.k)


class PointNetSeg(nn.Module):
    """PointNet semantic segmentation; see the module docstring for the architecture.

    The input T-Net transforms the xyz channels only; any further channels (colour,
    normalised coordinates) join them unchanged before the first MLP.
    """

    def __init__(self, num_classes: int, in_channels: int = 9, dropout: float = 0.3):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"in_channels must be at least 3 (xyz first), got {in_channels}")
        self.config = {"name": "pointnet", "num_classes": num_classes, "in_channels": in_channels,
                       "dropout": dropout}
        self.input_tnet = TNet(3, 3)
        self.mlp1 = SharedMLP(in_channels, (64, 64))
        self.feature_tnet = TNet(64, 64)
        self.mlp2 = SharedMLP(64, (64, 128, 1024))
        self.head = SharedMLP(64 + 1024, (512, 256, 128))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, C) -> (logits (B, N, num_classes), weighted regulariser scalar)."""
        xyz = x[..., :3]
        xyz = torch.bmm(xyz, self.input_tnet(xyz))
        x = torch.cat([xyz, x[..., 3:]], dim=-1) if x.shape[-1] > 3 else xyz
        x = self.mlp1(x)
        transform = self.feature_tnet(x)
        local = torch.bmm(x, transform)
        glob = self.mlp2.max_pool(local).unsqueeze(1)              # (B, 1, 1024)
        logits = self.classifier(self.dropout(self.head(local, broadcast=glob)))
        eye = torch.eye(transform.shape[-1], device=x.device, dtype=transform.dtype)
        ortho = (eye - transform @ transform.transpose(1, 2)).square().sum(dim=(1, 2)).mean()
        return logits, FEATURE_TRANSFORM_WEIGHT * ortho
