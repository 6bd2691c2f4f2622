"""PointNet segmentation network (Qi et al., CVPR 2017), with both T-Nets.

Input (B, N, C) with channels 0-2 xyz; output per-point logits (B, N, K) and the feature
transform's orthogonality loss ``0.001 * ||I - A A^T||_F^2`` (mean over the batch).

    xyz ── input T-Net (3x3) ──► [xyz', other channels] ── MLP 64-64 ── feature T-Net (64x64)
        ── MLP 64-128-1024 ── max-pool ── global 1024 ──┐
    per-point 64 ──────────────────────────────────────┴─ concat 1088 ── MLP 512-256-128
        ── dropout ── linear K
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import SharedMLP

FEATURE_TRANSFORM_WEIGHT = 0.001


class TNet(nn.Module):
    """Predicts a (k x k) transform from points (B, N, c_in); starts as the identity."""

    def __init__(self, c_in: int, k: int):
        super().__init__()
        self.k = k
        self.mlp = SharedMLP(c_in, (64, 128, 1024))
        self.fc = nn.Sequential(
            nn.Linear(1024, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
            nn.Linear(512, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(inplace=True))
        self.out = nn.Linear(256, k * k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(k).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mlp(x).amax(dim=1)
        return self.out(self.fc(g)).view(-1, self.k, self.k)


class PointNetSeg(nn.Module):
    """PointNet semantic segmentation; see the module docstring for the architecture."""

    def __init__(self, num_classes: int, in_channels: int = 9, dropout: float = 0.3):
        super().__init__()
        if in_channels < 3:
            raise ValueError("in_channels must be at least 3 (xyz first)")
        self.config = {"name": "pointnet", "num_classes": num_classes, "in_channels": in_channels,
                       "dropout": dropout}
        self.input_tnet = TNet(3, 3)
        self.mlp1 = SharedMLP(in_channels, (64, 64))
        self.feature_tnet = TNet(64, 64)
        self.mlp2 = SharedMLP(64, (64, 128, 1024))
        self.head = SharedMLP(1088, (512, 256, 128))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor):
        xyz = x[..., :3]
        xyz = torch.bmm(xyz, self.input_tnet(xyz))
        x = torch.cat([xyz, x[..., 3:]], dim=-1)
        x = self.mlp1(x)
        transform = self.feature_tnet(x)
        local = torch.bmm(x, transform)
        glob = self.mlp2(local).amax(dim=1, keepdim=True)
        x = torch.cat([local, glob.expand(-1, local.shape[1], -1)], dim=-1)
        logits = self.classifier(self.dropout(self.head(x)))
        eye = torch.eye(64, device=x.device, dtype=transform.dtype)
        ortho = (eye - transform @ transform.transpose(1, 2)).square().sum(dim=(1, 2)).mean()
        return logits, FEATURE_TRANSFORM_WEIGHT * ortho
