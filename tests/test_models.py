"""PointNet and A-CNN: shapes, invariances, identity T-Nets, gradients, overfitting, compile."""

import numpy as np
import pytest
import torch

from pcseg.models import build
from pcseg.models.ring_ordering import estimate_normals, order_by_angle, tangent_frame

SMALL_LEVELS = (
    (256, ((0.0, 0.1), (0.1, 0.2)), 8, 16, 32, 32),
    (64, ((0.0, 0.25), (0.25, 0.5)), 8, 32, 32, 64),
    (16, ((0.0, 0.5), (0.5, 1.0)), 8, 32, 64, 64),
)


def small(name, num_classes=4, in_channels=3):
    options = {"levels": SMALL_LEVELS, "global_width": 64} if name == "acnn" else {}
    return build(name, num_classes, in_channels, **options)


def scene(n=1024, seed=0):
    """A 1 m block: floor (0), a wall at x = -0.5 (1), a table top (2), a box on the floor (3)."""
    rng = np.random.default_rng(seed)
    q = n // 4
    floor = np.column_stack([rng.uniform(-0.5, 0.5, (q, 2)), np.zeros(q)])
    wall = np.column_stack([np.full(q, -0.5), rng.uniform(-0.5, 0.5, q), rng.uniform(0, 1.0, q)])
    table = np.column_stack([rng.uniform(-0.2, 0.5, (q, 2)), np.full(q, 0.72)])
    box = np.column_stack([rng.uniform(-0.4, -0.1, q), np.full(q, -0.3), rng.uniform(0, 0.4, q)])
    xyz = np.concatenate([floor, wall, table, box]) + rng.normal(0, 0.003, (4 * q, 3))
    labels = np.repeat(np.arange(4), q)
    return torch.tensor(xyz, dtype=torch.float32)[None], torch.tensor(labels)[None]


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
@pytest.mark.parametrize("channels", [3, 6, 9])
def test_shapes(name, channels):
    model = small(name, 13, channels)
    x = torch.randn(2, 512, channels) * 0.3
    logits, aux = model(x)
    assert logits.shape == (2, 512, 13) and aux.shape == ()
    assert build(**model.config).config == model.config


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        build("pointnet++", 13, 9)


def test_pointnet_tnets_start_as_identity():
    model = build("pointnet", 13, 9).eval()
    x = torch.randn(3, 256, 3)
    torch.testing.assert_close(model.input_tnet(x), torch.eye(3).expand(3, 3, 3))
    torch.testing.assert_close(model.feature_tnet(torch.randn(3, 256, 64)), torch.eye(64).expand(3, 64, 64))
    _, aux = model(torch.randn(3, 256, 9))
    assert float(aux) == pytest.approx(0.0, abs=1e-6)


def test_pointnet_is_permutation_equivariant():
    model = build("pointnet", 13, 9).eval()
    x = torch.randn(2, 300, 9)
    perm = torch.randperm(300)
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x[:, perm])
    torch.testing.assert_close(a[:, perm], b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_every_parameter_gets_a_gradient(name):
    model = small(name, 5, 6)
    x = torch.randn(2, 512, 6) * 0.3
    # The T-Nets' last layers start at zero (identity transforms), which zeroes the
    # gradient of the layers before them until that layer has moved: take one step first.
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        logits, aux = model(x)
        (logits.square().mean() + aux).backward()
        opt.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name,lr", [("pointnet", 2e-3), ("acnn", 3e-3)])
def test_overfits_a_small_scene(name, lr):
    torch.manual_seed(0)
    parts = [scene(n=256, seed=s) for s in range(8)]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    model = small(name)
    steps = 80
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in range(steps):
        logits, aux = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 4), y.reshape(-1)) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x)[0].argmax(-1) == y).float().mean().item()
    assert accuracy >= 0.95


def test_normals_are_oriented():
    x, _ = scene(2048)
    normals = estimate_normals(x, 16)[0]
    assert torch.allclose(normals.norm(dim=-1), torch.ones(2048), atol=1e-4)
    floor, wall = normals[:512], normals[512:1024]
    # PCA mixes planes within a neighbourhood of the floor-wall edge: allow those points.
    assert (floor[:, 2] > 0.95).float().mean() > 0.9
    assert (wall[:, 0] > 0.95).float().mean() > 0.9  # the wall at x = -0.5 faces the axis (+x)


def test_ring_order_matches_brute_force():
    rng = np.random.default_rng(1)
    pts = torch.tensor(rng.normal(size=(1, 200, 3)), dtype=torch.float32)
    centers = pts[:, :5]
    normals = torch.nn.functional.normalize(torch.randn(1, 5, 3), dim=-1)
    idx = torch.tensor(rng.integers(0, 200, (1, 5, 9)))
    ordered = order_by_angle(centers, normals, pts, idx)[0].numpy()
    u, v = tangent_frame(normals)
    for m in range(5):
        c, n = centers[0, m].numpy(), normals[0, m].numpy()
        uu, vv = u[0, m].numpy(), v[0, m].numpy()
        assert abs(uu @ n) < 1e-5 and abs(vv @ n) < 1e-5 and np.allclose(np.cross(n, uu), vv, atol=1e-5)
        members = idx[0, m].numpy()
        angles = [np.arctan2((pts[0, j].numpy() - c) @ vv, (pts[0, j].numpy() - c) @ uu) for j in members]
        expected = [members[i] for i in sorted(range(len(members)), key=lambda i: (angles[i], i))]
        assert ordered[m].tolist() == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_torch_compile_runs(name):
    model = small(name).eval()
    x = torch.randn(2, 512, 3) * 0.3
    with torch.no_grad():
        expected, _ = model(x)
        compiled, _ = torch.compile(model)(x)
    torch.testing.assert_close(compiled, expected, rtol=1e-3, atol=1e-3)
