"""Small samples (sparse blocks) cost in proportion to their points: the A-CNN scales its
centroids to the sample and shortens rings that its input cannot fill. Full samples give
the same logits as before; the shortened rings are exact; the bundled model's labels on a
dense room and on a sparse airborne tile stay those of the full-cost path."""

from pathlib import Path

import pytest
import torch

from pcseg.checkpoint import load_model
from pcseg.data import blocks
from pcseg.infer import predict_probabilities
from pcseg.io import read_cloud
from pcseg.models import build
from pcseg.models.acnn import AnnularLevel
from pcseg.models.ring_ordering import estimate_normals

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_WITH_LABELS = ROOT / "datasets" / "samples" / "room_labels.ply"
BUNDLED_ACNN = ROOT / "pcseg" / "weights" / "acnn_synthetic.pt"


def _randomised_acnn(seed=0):
    """The default A-CNN with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build("acnn", 13, 9)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def _block(n, seed=0):
    """(1, n, 9) features of a 1 m block: a floor and a wall, block-centred metres, then 6 channels in [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) - torch.tensor([0.5, 0.5, 0.0])
    xyz[: n // 2, 2] = 0.0                                   # floor
    xyz[n // 2:, 0] = -0.5                                   # wall
    return torch.cat([xyz, torch.rand(n, 6, generator=g)], -1)[None]


def _old_centroids(self, share, num_inputs):
    """Every sample's centroids before scaling: min(centroids, points)."""
    return min(self.num_centroids, num_inputs)


def _old_sample_size(n, num_points):
    """Padding of small blocks before one-point samples: a power of two, at least 16."""
    return num_points if n >= num_points else min(num_points, max(16, 1 << (int(n) - 1).bit_length()))


def test_full_samples_give_the_same_logits():
    model = _randomised_acnn()
    x = _block(2048)
    with torch.inference_mode():
        before = model(x)[0]
        model.sample_points = 2048
        after = model(x)[0]
        model.sample_points = 1024                          # larger samples than a full one: no change
        larger = model(x)[0]
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    torch.testing.assert_close(before, larger, rtol=0, atol=0)


def test_centroids_follow_the_sample_size():
    level = _randomised_acnn().levels[0]                    # 1024 centroids for a full sample
    assert level.centroids_for(1.0, 2048) == 1024
    assert level.centroids_for(256 / 2048, 256) == 128
    assert level.centroids_for(1 / 2048, 1) == 1
    assert level.centroids_for(1.0, 300) == 300              # never more than the input


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_short_rings_are_exact(n, monkeypatch):
    """Rings of ``ring_size`` slots give every level's features of rings of k slots on inputs
    that cannot fill them (64 clouds of n points within 0.3 m, so rings hold some but not all)."""
    level = _randomised_acnn(n).levels[0]
    x = torch.rand(64, n, 9, generator=torch.Generator().manual_seed(n)) * 0.3 - 0.15
    xyz = x[..., :3].contiguous()
    normals = estimate_normals(xyz)
    with torch.inference_mode():
        short = level(xyz, normals, x)[2]
        monkeypatch.setattr(AnnularLevel, "ring_size", lambda self, num_inputs: self.k)
        full = level(xyz, normals, x)[2]
    torch.testing.assert_close(short, full, rtol=0, atol=1e-6)


def _bundled_labels(xyz, rgb):
    model, meta = load_model(BUNDLED_ACNN)
    data = meta["data"]
    probs = predict_probabilities(model, xyz, rgb, feature_set=data["feature_set"], num_points=data["num_points"],
                                  block_size=data["block_size"], stride=data["stride"], voxel_size=0.02,
                                  progress=False)
    return probs.argmax(1)


def _labels_both_ways(xyz, rgb, monkeypatch):
    """The bundled A-CNN's labels with small samples as now, and as before (padded to 16, full centroids)."""
    fast = _bundled_labels(xyz, rgb)
    monkeypatch.setattr(AnnularLevel, "centroids_for", _old_centroids)
    monkeypatch.setattr(blocks, "sample_size", _old_sample_size)
    return fast, _bundled_labels(xyz, rgb)


def test_dense_room_labels_unchanged(monkeypatch):
    """A 2 m x 2 m corner of the sample room: its edge blocks are partly filled samples."""
    room = read_cloud(SAMPLE_WITH_LABELS)
    xyz = room.xyz
    keep = (xyz[:, 0] < xyz[:, 0].min() + 2) & (xyz[:, 1] < xyz[:, 1].min() + 2)
    fast, old = _labels_both_ways(xyz[keep], room.rgb[keep], monkeypatch)
    truth = room.labels[keep]
    assert (fast == old).mean() >= 0.99
    assert (fast == truth).mean() >= (old == truth).mean() - 0.005


def test_sparse_airborne_labels_stay_sensible(real_scans, monkeypatch):
    """About 600 points of an airborne tile, one or two per 1 m block: nearly every label as before."""
    tile = real_scans / "laspy_autzen_trim.laz"
    if not tile.is_file():
        pytest.skip(f"{tile} not found")
    cloud = read_cloud(tile)
    keep = cloud.xyz[:, 0] < cloud.xyz[:, 0].min() + 40
    fast, old = _labels_both_ways(cloud.xyz[keep], cloud.rgb[keep], monkeypatch)
    assert 500 < keep.sum() < 1000
    assert (fast == old).mean() >= 0.9
