"""Normals and the angular ordering of ring neighbours that A-CNN convolves along.

All functions are batched and vectorised (no loops over points).
"""

from __future__ import annotations

import torch

from .. import ops
from .layers import gather_points

#: |n_z| above this counts as a horizontal surface, whose normal is turned up (+z).
HORIZONTAL_NZ = 0.5


def estimate_normals(xyz: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Unit normals (B, N, 3) by PCA over each point's k nearest neighbours.

    The normal is the eigenvector of the smallest eigenvalue of the neighbourhood
    covariance. Orientation is deterministic: normals of horizontal-ish surfaces
    (|n_z| > 0.5) point up (+z); the others point toward the block's vertical axis
    (x = y = 0 in block-centred coordinates), i.e. into the room seen from the block.
    """
    k = min(k, xyz.shape[1])
    _, idx = ops.knn(xyz.detach(), xyz.detach(), k)
    nbrs = gather_points(xyz.detach(), idx)                       # (B, N, k, 3)
    centred = nbrs - nbrs.mean(dim=2, keepdim=True)
    cov = centred.transpose(2, 3) @ centred / k                   # (B, N, 3, 3)
    _, vecs = torch.linalg.eigh(cov.double())
    normal = vecs[..., 0].to(xyz.dtype)                           # smallest eigenvalue
    return orient_normals(normal, xyz.detach())


def orient_normals(normal: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Flip normals (B, N, 3) to the deterministic orientation of :func:`estimate_normals`."""
    toward_axis = torch.cat([-xyz[..., :2], torch.zeros_like(xyz[..., 2:])], dim=-1)
    horizontal = normal[..., 2].abs() > HORIZONTAL_NZ
    reference = torch.where(horizontal.unsqueeze(-1), torch.tensor([0.0, 0.0, 1.0], dtype=normal.dtype,
                                                                   device=normal.device), toward_axis)
    sign = torch.where((normal * reference).sum(-1) < 0, -1.0, 1.0).to(normal.dtype)
    return normal * sign.unsqueeze(-1)


def tangent_frame(normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit axes (u, v) spanning the plane orthogonal to ``normal`` (..., 3).

    u is the x axis projected on the plane (the y axis when the normal is close to x),
    v = n x u, so the frame — and the angular order — is deterministic.
    """
    ex = torch.zeros_like(normal)
    use_y = normal[..., 0].abs() > 0.9
    ex[..., 0] = (~use_y).to(normal.dtype)
    ex[..., 1] = use_y.to(normal.dtype)
    u = ex - (ex * normal).sum(-1, keepdim=True) * normal
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return u, torch.cross(normal, u, dim=-1)


def order_by_angle(centers: torch.Tensor, normals: torch.Tensor, points: torch.Tensor,
                   idx: torch.Tensor) -> torch.Tensor:
    """Reorder ring members counter-clockwise around each centre's normal.

    Args:
        centers: (B, M, 3) ring centres; normals: (B, M, 3) their unit normals.
        points: (B, N, 3) the cloud ``idx`` points into; idx: (B, M, k) ring members.
    Returns idx (B, M, k) sorted by the angle atan2(d.v, d.u) of d = member - centre in the
    tangent frame (u, v) of :func:`tangent_frame`; ties (e.g. repeated fill members)
    keep their order (stable sort).
    """
    d = gather_points(points, idx) - centers.unsqueeze(2)           # (B, M, k, 3)
    u, v = tangent_frame(normals)
    angle = torch.atan2((d * v.unsqueeze(2)).sum(-1), (d * u.unsqueeze(2)).sum(-1))
    order = torch.sort(angle, dim=-1, stable=True).indices
    return torch.gather(idx, -1, order)
