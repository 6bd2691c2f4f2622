"""A-CNN's geometry: PCA normals and their orientation, the tangent frame, and the angular
order of ring members, each against a brute-force per-point reference."""

import math

import numpy as np
import pytest
import torch

from pcseg import ops
from pcseg.models.ring_ordering import (HORIZONTAL_NZ, angular_order, estimate_normals,
                                        order_by_angle, tangent_frame)


def planes(rng, density=300):
    """Noisy planes in block-centred metres, ``density`` points per square metre: floor,
    ceiling at 2.8 m, walls at x = -0.5 and y = +0.5, labelled 0..3."""
    n, w = density, int(2.8 * density)
    floor = np.column_stack([rng.uniform(-0.5, 0.5, (n, 2)), np.zeros(n)])
    ceiling = np.column_stack([rng.uniform(-0.5, 0.5, (n, 2)), np.full(n, 2.8)])
    wall_x = np.column_stack([np.full(w, -0.5), rng.uniform(-0.5, 0.5, w), rng.uniform(0, 2.8, w)])
    wall_y = np.column_stack([rng.uniform(-0.5, 0.5, w), np.full(w, 0.5), rng.uniform(0, 2.8, w)])
    xyz = np.concatenate([floor, ceiling, wall_x, wall_y]) + rng.normal(0, 0.002, (2 * n + 2 * w, 3))
    return xyz, np.repeat(np.arange(4), [n, n, w, w])


def brute_force_normals(xyz, k):
    """Per point: k nearest by full sort, covariance, smallest eigenvector, orientation rule."""
    normals, gaps = np.zeros_like(xyz), np.zeros(len(xyz))
    for i, p in enumerate(xyz):
        nbrs = xyz[np.argsort(((xyz - p) ** 2).sum(1), kind="stable")[:k]]
        centred = nbrs - nbrs.mean(0)
        values, vectors = np.linalg.eigh(centred.T @ centred)
        n = vectors[:, 0]
        reference = np.array([0.0, 0.0, 1.0]) if abs(n[2]) > HORIZONTAL_NZ else np.array([-p[0], -p[1], 0.0])
        normals[i] = -n if n @ reference < 0 else n
        gaps[i] = values[1] / max(values[0], 1e-30)
    return normals, gaps


def test_normals_match_brute_force_pca(rng):
    xyz, _ = planes(rng, 150)
    ours = estimate_normals(torch.tensor(xyz, dtype=torch.float32)[None], 12)[0].double().numpy()
    expected, gaps = brute_force_normals(xyz, 12)
    clear = gaps > 10                      # a well-defined smallest eigenvector
    assert clear.mean() > 0.8
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours[clear], expected[clear], atol=1e-3)


def test_normals_are_oriented_up_or_toward_the_block_axis(rng):
    xyz, label = planes(rng, 1000)
    normals = estimate_normals(torch.tensor(xyz, dtype=torch.float32)[None], 16)[0].numpy()
    expected = {0: [0, 0, 1], 1: [0, 0, 1], 2: [1, 0, 0], 3: [0, -1, 0]}   # up, up, toward x = y = 0
    for plane, direction in expected.items():
        cosine = normals[label == plane] @ np.array(direction, dtype=np.float32)
        # Neighbourhoods at the edges between planes mix them; elsewhere PCA finds the plane ...
        assert (np.abs(cosine) > 0.95).mean() > 0.8, plane
        # ... and every normal along the plane's axis has the documented sign.
        assert (cosine[np.abs(cosine) > 0.95] > 0).all(), plane


def test_normals_of_degenerate_neighbourhoods_are_finite():
    same = torch.zeros(1, 64, 3)
    line = torch.zeros(1, 64, 3)
    line[0, :, 0] = torch.linspace(-0.5, 0.5, 64)
    normals = estimate_normals(torch.cat([same, line]), 16)
    assert torch.isfinite(normals).all()
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(2, 64))


def test_tangent_frame_is_right_handed_and_orthonormal():
    normals = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=-1)
    normals[:3] = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 1.0]], dtype=torch.float64)
    u, v = tangent_frame(normals)
    frame = torch.stack([u, v, normals], dim=-1)               # columns u, v, n
    torch.testing.assert_close(frame.transpose(1, 2) @ frame, torch.eye(3, dtype=torch.float64).expand(500, 3, 3))
    torch.testing.assert_close(torch.linalg.det(frame), torch.ones(500, dtype=torch.float64))


def test_members_run_counter_clockwise_seen_from_the_normal():
    angles = torch.tensor([2.0, -3.0, 0.5, 1.0, -1.0])
    offsets = torch.stack([angles.cos(), angles.sin(), torch.zeros(5)], dim=-1)
    up = torch.tensor([[[0.0, 0.0, 1.0]]])
    down = -up
    assert angular_order(offsets[None, None], up)[0, 0].tolist() == [1, 4, 2, 3, 0]
    # Seen from below the same points run the other way round (a cyclic shift of the reverse).
    order = angular_order(offsets[None, None], down)[0, 0].tolist()
    assert " ".join(map(str, order * 2)).find("0 3 2 4 1") >= 0


def acnn_style_order(points, center, normal, members):
    """The original code's way: project the members on the tangent plane and measure each
    one's counter-clockwise angle from the first member's projection, then sort."""
    projected = [(points[j] - center) - ((points[j] - center) @ normal) * normal for j in members]
    first = projected[0]
    keys = []
    for p in projected:
        keys.append(math.atan2(normal @ np.cross(first, p), first @ p) % (2 * math.pi))
    return [members[i] for i in sorted(range(len(members)), key=lambda i: keys[i])]


def is_rotation(a, b):
    return len(a) == len(b) and any(a[s:] + a[:s] == b for s in range(len(a)))


def test_ring_order_matches_the_brute_force_reference(rng):
    points = torch.tensor(rng.uniform(-0.5, 0.5, (2, 600, 3)), dtype=torch.float64)
    centers = points[:, :40]
    normals = torch.nn.functional.normalize(torch.randn(2, 40, 3, dtype=torch.float64), dim=-1)
    normals[:, :5] = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)    # the frame's other branch
    idx, count = ops.ring_knn(centers, points, 10, 0.1, 0.3)
    assert bool((count == 10).all())                           # full rings: no ties
    ordered = order_by_angle(centers, normals, points, idx)
    checked = 0
    for b in range(2):
        for m in range(40):
            expected = acnn_style_order(points[b].numpy(), centers[b, m].numpy(), normals[b, m].numpy(),
                                        idx[b, m].tolist())
            assert is_rotation(ordered[b, m].tolist(), expected), (b, m)
            checked += 1
    assert checked == 80


def test_ring_order_turns_with_the_scene(rng):
    """Rotating the cloud about the (vertical) normal changes no ring's cyclic order."""
    points = torch.tensor(rng.uniform(-0.5, 0.5, (1, 400, 3)), dtype=torch.float64)
    c, s = math.cos(1.1), math.sin(1.1)
    rotation = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    up = torch.zeros(1, 30, 3, dtype=torch.float64)
    up[..., 2] = 1.0
    orders = []
    for cloud in (points, points @ rotation.T):
        idx, _ = ops.ring_knn(cloud[:, :30], cloud, 8, 0.05, 0.25)
        orders.append(order_by_angle(cloud[:, :30], up, cloud, idx)[0].tolist())
    assert all(is_rotation(a, b) for a, b in zip(*orders))


def test_fill_members_stay_beside_the_member_they_repeat():
    """Rings with fewer than k members repeat their first member; after ordering the copies
    are adjacent (cyclically), and no member is lost or invented."""
    rng = np.random.default_rng(5)
    points = torch.tensor(rng.uniform(-0.5, 0.5, (1, 60, 3)), dtype=torch.float32)
    normals = torch.nn.functional.normalize(torch.randn(1, 60, 3), dim=-1)
    idx, count = ops.ring_knn(points, points, 12, 0.05, 0.2)
    assert bool((count < 12).any()) and bool((count == 0).any())
    ordered = order_by_angle(points, normals, points, idx)
    for m in range(60):
        before, after = idx[0, m].tolist(), ordered[0, m].tolist()
        assert sorted(before) == sorted(after)
        first = before[0]
        runs = sum(1 for i in range(12) if after[i] == first and after[i - 1] != first)
        assert runs == 1 or after == [first] * 12, (m, after)
