"""PointNet and A-CNN: the build interface, the shared layers, PointNet against a plain
Conv1d reference of the paper's network, invariances, identity T-Nets, gradients,
overfitting a small scene, and torch.compile."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pcseg.models import build
from pcseg.models.acnn import AnnularConv
from pcseg.models.layers import CircularConv, LinearBN, SharedMLP, interpolate_3nn
from pcseg.models.pointnet import FEATURE_TRANSFORM_WEIGHT

#: A narrow A-CNN for tests on blocks of a few hundred points.
SMALL_LEVELS = (
    (256, ((0.0, 0.1), (0.1, 0.2)), 8, 16, 32, 32),
    (64, ((0.0, 0.25), (0.25, 0.5)), 8, 32, 32, 64),
    (16, ((0.0, 0.5), (0.5, 1.0)), 8, 32, 64, 64),
)


def small(name, num_classes=4, in_channels=3):
    """PointNet exactly as published; A-CNN with narrow levels."""
    options = {"levels": SMALL_LEVELS, "global_width": 64, "decoder_width": 64} if name == "acnn" else {}
    return build(name, num_classes, in_channels, **options)


def scene(n=1024, seed=0):
    """A 1 m block, n points in block-centred metres: floor (class 0), a wall at x = -0.5 (1),
    a table top at 0.72 m (2), the side of a box standing on the floor (3)."""
    rng = np.random.default_rng(seed)
    q = n // 4
    floor = np.column_stack([rng.uniform(-0.5, 0.5, (q, 2)), np.zeros(q)])
    wall = np.column_stack([np.full(q, -0.5), rng.uniform(-0.5, 0.5, q), rng.uniform(0, 1.0, q)])
    table = np.column_stack([rng.uniform(-0.2, 0.5, (q, 2)), np.full(q, 0.72)])
    box = np.column_stack([rng.uniform(-0.4, -0.1, q), np.full(q, -0.3), rng.uniform(0, 0.4, q)])
    xyz = np.concatenate([floor, wall, table, box]) + rng.normal(0, 0.003, (4 * q, 3))
    labels = np.repeat(np.arange(4), q)
    return torch.tensor(xyz, dtype=torch.float32)[None], torch.tensor(labels)[None]


# --------------------------------------------------------------------------- plain reference

def conv_bn_relu(widths):
    return [m for a, b in zip(widths[:-1], widths[1:])
            for m in (nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b), nn.ReLU())]


def fc_bn_relu(widths):
    return [m for a, b in zip(widths[:-1], widths[1:])
            for m in (nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU())]


class ConvTNet(nn.Module):
    """The paper's T-Net written channels-first: x (B, C, N) -> (B, k, k)."""

    def __init__(self, c_in, k):
        super().__init__()
        self.k = k
        self.convs = nn.Sequential(*conv_bn_relu([c_in, 64, 128, 1024]))
        self.fc = nn.Sequential(*fc_bn_relu([1024, 512, 256]))
        self.out = nn.Linear(256, k * k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(k).flatten())

    def forward(self, x):
        return self.out(self.fc(self.convs(x).max(dim=2).values)).view(-1, self.k, self.k)


class ConvPointNetReference(nn.Module):
    """PointNet segmentation in the usual channels-first Conv1d style, every layer spelled out:
    the 1088-wide concatenation is built, transforms are applied as transposed bmm."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.tnet1 = ConvTNet(3, 3)
        self.mlp1 = nn.Sequential(*conv_bn_relu([in_channels, 64, 64]))
        self.tnet2 = ConvTNet(64, 64)
        self.mlp2 = nn.Sequential(*conv_bn_relu([64, 64, 128, 1024]))
        self.head = nn.Sequential(*conv_bn_relu([1088, 512, 256, 128]))
        self.drop = nn.Dropout(0.3)
        self.cls = nn.Conv1d(128, num_classes, 1)

    def forward(self, x):                                   # x (B, N, C)
        x = x.transpose(1, 2)
        xyz = torch.bmm(self.tnet1(x[:, :3]).transpose(1, 2), x[:, :3])
        x = self.mlp1(torch.cat([xyz, x[:, 3:]], 1))
        t = self.tnet2(x)
        x = torch.bmm(t.transpose(1, 2), x)
        g = self.mlp2(x).max(dim=2, keepdim=True).values.expand(-1, -1, x.shape[2])
        out = self.cls(self.drop(self.head(torch.cat([x, g], 1)))).transpose(1, 2)
        eye = torch.eye(64, dtype=t.dtype)
        return out, 0.001 * (eye - t @ t.transpose(1, 2)).square().sum((1, 2)).mean()


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every Linear/Conv1d and BatchNorm of src into dst, matched in registration order."""
    def layers(model):
        return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.BatchNorm1d))]

    pairs = list(zip(layers(src), layers(dst), strict=True))
    with torch.no_grad():
        for a, b in pairs:
            assert type(a) is type(b) or {type(a), type(b)} == {nn.Linear, nn.Conv1d}
            for name, tensor in list(a.named_parameters()) + list(a.named_buffers()):
                getattr(b, name).copy_(tensor.view_as(getattr(b, name)))


def randomise(model: nn.Module, seed=0) -> None:
    """Non-trivial batch-norm statistics and affine terms, and T-Nets away from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for tnet in (model.input_tnet, model.feature_tnet):
            tnet.out.weight.copy_(torch.randn(tnet.out.weight.shape, generator=g) * 0.02)


@pytest.mark.parametrize("training", [False, True])
def test_pointnet_equals_the_plain_reference(training):
    torch.manual_seed(0)
    ours = build("pointnet", 13, 9)
    randomise(ours)
    reference = ConvPointNetReference(13, 9)
    copy_weights(ours, reference)
    ours.train(training)
    reference.train(training)
    ours.dropout.p = reference.drop.p = 0.0                 # same numbers in train mode
    # float64: the T-Nets' FC batch norm over two clouds amplifies float32 rounding.
    ours.double()
    reference.double()
    x = torch.randn(2, 300, 9, dtype=torch.float64) * 0.4
    with torch.no_grad():
        transform = ours.feature_tnet(ours.mlp1(torch.cat([x[..., :3] @ ours.input_tnet(x[..., :3]),
                                                           x[..., 3:]], -1)))
        (a, reg_a), (b, reg_b) = ours(x), reference(x)
    assert (transform - torch.eye(64)).abs().max() > 0.05  # the T-Nets really transform
    assert reg_a > 1e-4
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(reg_a, reg_b, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- shared layers

def test_linear_bn_folds_batch_norm_in_eval_and_splits_the_broadcast_part():
    torch.manual_seed(0)
    layer = LinearBN(5 + 7, 6)
    bn = layer.bn
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x, g = torch.randn(3, 10, 5), torch.randn(3, 1, 7)
    full = torch.cat([x, g.expand(-1, 10, -1)], dim=-1)

    def plain(inp):
        return torch.relu(layer.bn(layer.linear(inp).reshape(-1, 6)).reshape(3, 10, 6))

    for training in (True, False):
        layer.train(training)
        with torch.no_grad():
            expected = plain(full)
            torch.testing.assert_close(layer(x, g), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(layer(full), expected, rtol=1e-5, atol=1e-5)


def _plain_max_pool(mlp, x):
    return mlp(x).amax(dim=1)


@pytest.mark.parametrize("training", [True, False])
def test_max_pool_equals_mlp_then_amax_with_the_same_gradients_and_statistics(training):
    torch.manual_seed(0)
    fused = SharedMLP(16, (32, 64)).double()
    with torch.no_grad():  # channels with a negative scale pool the minimum of x W^T
        fused.layers[-1].bn.weight.uniform_(-1, 1)
        fused.layers[-1].bn.bias.uniform_(-0.5, 0.5)
        fused.layers[-1].bn.running_var.uniform_(0.5, 2)
    plain = copy.deepcopy(fused)
    fused.train(training)
    plain.train(training)
    x = torch.randn(3, 50, 16, dtype=torch.float64)
    x[1, 10:20] = x[1, 0]                                    # duplicate points
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = fused.max_pool(xa), _plain_max_pool(plain, xb)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert (a > 0).any() and (a == 0).any()                 # both sides of the ReLU are exercised
    weights = torch.randn_like(a)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    # A maximum shared by duplicates sends its gradient to one of them (amax splits it):
    # the group's total, and so every parameter's gradient, is the same.
    dup = torch.zeros(50, dtype=torch.bool)
    dup[10:20] = True
    dup[0] = True
    torch.testing.assert_close(xa.grad[:, ~dup], xb.grad[:, ~dup], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(xa.grad[:, dup].sum(1), xb.grad[:, dup].sum(1), rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, p), q in zip(fused.named_buffers(), plain.buffers()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_training_step_under_autocast(name):
    """AMP: a reduced-precision forward (bfloat16 on the CPU, float16 on CUDA) trains, and the
    fused pooled layer keeps its running statistics in float32."""
    torch.manual_seed(0)
    model = small(name, in_channels=9).train()
    x = torch.rand(2, 300, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, aux = model(x)
        loss = logits.float().square().mean() + aux
    loss.backward()
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in model.buffers())


def test_pointnet_gradients_equal_the_unfused_network(monkeypatch):
    torch.manual_seed(0)
    model = build("pointnet", 13, 9).double()
    randomise(model)
    model.dropout.p = 0.0
    plain = copy.deepcopy(model)
    x = torch.randn(2, 200, 9, dtype=torch.float64) * 0.4
    target = torch.randint(0, 13, (2, 200))

    def loss_of(net):
        logits, aux = net(x)
        return F.cross_entropy(logits.reshape(-1, 13), target.reshape(-1)) + aux

    loss_of(model).backward()
    monkeypatch.setattr(SharedMLP, "max_pool", _plain_max_pool)
    loss_of(plain).backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        # Batch norm over two clouds in the T-Nets' FC layers makes gradients of order 1e3.
        scale = float(q.grad.abs().max())
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-7, atol=1e-8 * max(scale, 1.0), msg=name)


def test_circular_conv_is_conv1d_with_circular_padding():
    torch.manual_seed(0)
    ours = CircularConv(4, 5).eval()
    conv = nn.Conv1d(4, 5, 3, padding=1, padding_mode="circular", bias=False)
    with torch.no_grad():
        ours.layer.linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(5, 12))
    x = torch.randn(2, 3, 7, 4)                                # (B, M, k, C)
    with torch.no_grad():
        expected = torch.relu(ours.layer.bn(conv(x.reshape(6, 7, 4).transpose(1, 2))))
        torch.testing.assert_close(ours(x), expected.transpose(1, 2).reshape(2, 3, 7, 5))


def test_annular_conv_sees_the_cyclic_order_only():
    torch.manual_seed(0)
    conv = AnnularConv(6, 8, 16).eval()
    members = torch.randn(2, 5, 9, 6)
    with torch.no_grad():
        out = conv(members)
        rotated = conv(members.roll(4, dims=2))
        shuffled = conv(members[:, :, torch.tensor([0, 2, 1, 3, 4, 5, 6, 7, 8])])
    torch.testing.assert_close(rotated, out)
    assert not torch.allclose(shuffled, out, atol=1e-4)       # the order is part of the operator


def test_interpolate_3nn_matches_brute_force(rng):
    fine = torch.tensor(rng.uniform(-0.5, 0.5, (2, 50, 3)), dtype=torch.float32)
    coarse = torch.tensor(rng.uniform(-0.5, 0.5, (2, 12, 3)), dtype=torch.float32)
    coarse[:, 0] = fine[:, 0]                                  # a coincident point
    feats = torch.randn(2, 12, 4)
    out = interpolate_3nn(fine, coarse, feats)
    d = torch.cdist(fine.double(), coarse.double())
    dist, idx = d.topk(3, largest=False)
    w = 1 / (dist + 1e-8)
    w = w / w.sum(-1, keepdim=True)
    expected = (feats.double()[torch.arange(2)[:, None, None], idx] * w[..., None]).sum(2)
    torch.testing.assert_close(out, expected.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[:, 0], feats[:, 0], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- both models

@pytest.mark.parametrize("name", ["pointnet", "acnn"])
@pytest.mark.parametrize("channels", [3, 6, 9])
def test_shapes_and_rebuild(name, channels):
    model = small(name, 13, channels)
    x = torch.randn(2, 512, channels) * 0.3
    logits, aux = model(x)
    assert logits.shape == (2, 512, 13) and logits.dtype == torch.float32
    assert aux.shape == () and torch.isfinite(logits).all()
    copy = build(**model.config)
    copy.load_state_dict(model.state_dict())
    model.eval()
    copy.eval()
    with torch.no_grad():
        torch.testing.assert_close(copy(x)[0], model(x)[0])


def test_default_acnn_on_a_full_block():
    model = build("acnn", 13, 9).eval()
    x = torch.cat([scene(4096)[0], torch.rand(1, 4096, 6)], dim=-1)
    with torch.no_grad():
        logits, aux = model(x)
    assert logits.shape == (1, 4096, 13) and float(aux) == 0.0


def test_bad_names_and_channels():
    with pytest.raises(ValueError, match="unknown model"):
        build("pointnet++", 13, 9)
    for name in ("pointnet", "acnn"):
        with pytest.raises(ValueError, match="at least 3"):
            build(name, 13, 2)


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_blocks_padded_with_repeated_points(name):
    """Inference pads small blocks by repeating points: duplicates must not break normals,
    rings or interpolation."""
    model = small(name, 5, 6).eval()
    x = torch.rand(2, 512, 6) - 0.5
    x[0] = x[0, torch.randint(0, 20, (512,))]                  # 20 distinct points
    x[1] = x[1, :1]                                            # a single point, repeated
    with torch.no_grad():
        logits, _ = model(x)
    assert torch.isfinite(logits).all()


def test_pointnet_tnets_start_as_identity():
    model = build("pointnet", 13, 9)
    for training in (True, False):
        model.train(training)
        with torch.no_grad():
            torch.testing.assert_close(model.input_tnet(torch.randn(3, 256, 3)), torch.eye(3).expand(3, 3, 3))
            torch.testing.assert_close(model.feature_tnet(torch.randn(3, 256, 64)),
                                       torch.eye(64).expand(3, 64, 64))
            _, aux = model(torch.randn(3, 256, 9))
        assert float(aux) == pytest.approx(0.0, abs=1e-9)


def test_pointnet_regulariser_is_weighted_orthogonality_loss():
    model = build("pointnet", 13, 3).eval()
    with torch.no_grad():
        model.feature_tnet.out.bias.copy_((2 * torch.eye(64)).flatten())   # A = 2I
        _, aux = model(torch.randn(2, 64, 3))
    # ||I - 4I||_F^2 = 9 * 64
    assert float(aux) == pytest.approx(FEATURE_TRANSFORM_WEIGHT * 9 * 64, rel=1e-5)


def test_pointnet_is_permutation_equivariant():
    model = build("pointnet", 13, 9).eval()
    randomise(model)
    x = torch.randn(2, 300, 9)
    perm = torch.randperm(300)
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x[:, perm])
    torch.testing.assert_close(a[:, perm], b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = small(name, 5, 6)
    x = scene(512)[0].expand(2, -1, -1) + torch.randn(2, 512, 3) * 0.01
    x = torch.cat([x, torch.rand(2, 512, 3)], dim=-1)
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


@pytest.mark.parametrize("name,lr", [("pointnet", 1e-3), ("acnn", 5e-3)])
def test_overfits_a_small_scene(name, lr):
    # Eight small blocks: batch norm statistics over fewer clouds (PointNet's T-Net FC
    # layers see one row per cloud) make eval mode lag far behind training mode.
    torch.manual_seed(0)
    steps = 60
    parts = [scene(n=128, seed=s) for s in range(8)]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    model = small(name)
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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_torch_compile_runs(name):
    torch.manual_seed(0)
    model = small(name)
    x = scene(512)[0].expand(2, -1, -1).contiguous()
    compiled = torch.compile(model, fullgraph=True)
    logits, aux = compiled(x)                                  # training mode, with backward
    (logits.square().mean() + aux).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        expected, _ = model(x)
        got, _ = compiled(x)
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
