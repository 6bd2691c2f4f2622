"""Normals and the angular ordering of ring members that A-CNN convolves along.

All functions are batched and vectorised over points (no Python loops over points);
coordinates are block-centred metres: x, y about the block centre, z from the floor.
"""

from __future__ import annotations

import torch

from .. import ops
from .layers import gather_points

#: A normal with |n_z| above this belongs to a horizontal-ish surface and is turned up (+z).
HORIZONTAL_NZ = 0.5


def estimate_normals(xyz: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Unit normals (B, N, 3) by PCA over each point's k nearest neighbours (itself included).

    xyz (B, N, 3) float32 block-centred metres. The normal is the eigenvector of the
    smallest eigenvalue of the neighbourhood covariance (computed in float64), oriented
    by :func:`orient_normals`. No gradient flows through the normals.
    """
    xyz = xyz.detach()
    k = min(k, xyz.shape[1])
    _, idx = ops.knn(xyz, xyz, k)
    nbrs = gather_points(xyz, idx).double()                      # (B, N, k, 3)
    centred = nbrs - nbrs.mean(dim=2, keepdim=True)
    cov = centred.transpose(2, 3) @ centred                       # (B, N, 3, 3)
    _, vecs = torch.linalg.eigh(cov)                              # eigenvalues ascending
    return orient_normals(vecs[..., 0].to(xyz.dtype), xyz)


def orient_normals(normal: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Flip unit normals (B, N, 3) of points xyz (B, N, 3) to a deterministic orientation.

    Horizontal-ish surfaces (|n_z| > ``HORIZONTAL_NZ``: floors, table tops, ceilings)
    get n_z > 0 (up). Other normals point toward the block's vertical axis (x = y = 0),
    i.e. walls and object sides face the inside of the block. A normal exactly
    perpendicular to its reference direction keeps its sign.
    """
    toward_axis = torch.cat([-xyz[..., :2], torch.zeros_like(xyz[..., 2:])], dim=-1)
    up = torch.zeros_like(normal)
    up[..., 2] = 1.0
    horizontal = (normal[..., 2].abs() > HORIZONTAL_NZ).unsqueeze(-1)
    reference = torch.where(horizontal, up, toward_axis)
    flip = (normal * reference).sum(-1, keepdim=True) < 0
    return torch.where(flip, -normal, normal)


def tangent_frame(normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit axes (u, v) spanning the plane orthogonal to unit ``normal`` (..., 3).

    u is the x axis projected on the plane (the y axis when |n_x| > 0.9), v = n x u;
    (u, v, n) is right-handed, so angles increase counter-clockwise seen from n.
    """
    use_y = (normal[..., 0].abs() > 0.9).to(normal.dtype)
    axis = torch.stack([1.0 - use_y, use_y, torch.zeros_like(use_y)], dim=-1)
    u = axis - (axis * normal).sum(-1, keepdim=True) * normal
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return u, torch.linalg.cross(normal, u, dim=-1)


def angular_order(offsets: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Permutation (B, M, k) int64 sorting ring members counter-clockwise around the normal.

    offsets (B, M, k, 3): member minus centre; normals (B, M, 3) unit normals of the
    centres. The key is ``atan2(d.v, d.u)`` in (-pi, pi] in the frame of
    :func:`tangent_frame`. The sort is stable: equal angles (the repeated fill members
    of a ring with fewer than k points, or members at the centre itself) keep their
    slot order, so the repeats sit next to the member they copy.
    """
    u, v = tangent_frame(normals)
    angle = torch.atan2((offsets * v.unsqueeze(2)).sum(-1), (offsets * u.unsqueeze(2)).sum(-1))
    return torch.sort(angle, dim=-1, stable=True).indices


def order_by_angle(centers: torch.Tensor, normals: torch.Tensor, points: torch.Tensor,
                   idx: torch.Tensor) -> torch.Tensor:
    """Ring members idx (B, M, k) into points (B, N, 3), reordered by :func:`angular_order`
    around centers (B, M, 3) with unit normals (B, M, 3)."""
    offsets = gather_points(points, idx) - centers.unsqueeze(2)
    return torch.gather(idx, -1, angular_order(offsets, normals))
