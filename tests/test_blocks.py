"""Features, block tiling and sampling, voxel subsampling, augmentations, the training set, and voting."""

import numpy as np
import pytest
import torch

from pcseg.classes import UNLABELLED
from pcseg.data.augment import AugmentConfig, augment_block
from pcseg.data.blocks import chunk_block, sample_block, sample_size, tile_blocks
from pcseg.data.features import FEATURE_SETS, MISSING_RGB, make_features
from pcseg.data.rooms import load_index, write_index, write_room
from pcseg.data.training_set import BlockTrainingDataset, class_weights
from pcseg.data.voxels import voxel_subsample
from pcseg.errors import PcsegError
from pcseg.infer import Frame, predict_probabilities


def test_features_by_hand():
    xyz = np.array([[1.5, 2.5, 0.3], [2.0, 3.0, 2.3]], np.float32)
    rgb = np.array([[255, 0, 51], [0, 255, 102]], np.uint8)
    f = make_features(xyz, rgb, np.array([1.5, 2.5]), np.array([0, 0, 0.3]), np.array([4, 5, 3.3]), "xyzrgbn")
    np.testing.assert_allclose(f[0], [0, 0, 0, 1, 0, 0.2, 1.5 / 4, 2.5 / 5, 0], atol=1e-6)
    np.testing.assert_allclose(f[1], [0.5, 0.5, 2.0, 0, 1, 0.4, 0.5, 0.6, 2 / 3], atol=1e-6)
    for name, channels in FEATURE_SETS.items():
        assert make_features(xyz, None, np.zeros(2), np.zeros(3), np.ones(3), name).shape == (2, channels)
    no_color = make_features(xyz, None, np.zeros(2), np.zeros(3), np.ones(3), "xyzrgb")
    assert (no_color[:, 3:] == MISSING_RGB).all()
    with pytest.raises(ValueError, match="unknown feature set"):
        make_features(xyz, None, np.zeros(2), np.zeros(3), np.ones(3), "rgb")


CLOUDS = {
    "random": lambda rng: rng.uniform(0, 7, (5000, 3)),
    "one point": lambda rng: np.array([[3.0, 4.0, 1.0]]),
    "identical": lambda rng: np.full((100, 3), 2.0),
    "thin line": lambda rng: np.column_stack([rng.uniform(0, 40, 2000), np.zeros(2000), rng.uniform(0, 3, 2000)]),
    "on boundaries": lambda rng: np.array([[x, y, 0.0] for x in np.arange(0, 3.01, 0.5) for y in np.arange(0, 3.01, 0.5)]),
    "georeferenced": lambda rng: np.array([6.5e5, 4.2e6, 100.0]) + rng.uniform(0, 5, (3000, 3)),
}


@pytest.mark.parametrize("name", CLOUDS)
@pytest.mark.parametrize("block_size,stride", [(1.0, 0.5), (1.0, 1.0), (1.5, 0.4)])
def test_tiling_covers_every_point(rng, name, block_size, stride):
    xyz = CLOUDS[name](rng)
    tiling = tile_blocks(xyz, block_size, stride)
    seen = np.zeros(len(xyz), dtype=int)
    blocks = 0
    for center, idx in tiling:
        blocks += 1
        assert len(idx) > 0
        span = np.ceil(block_size / stride - 1e-9) * stride
        assert (np.abs(xyz[idx, :2] - center) <= span / 2 + 1e-6).all()
        seen[idx] += 1
    assert blocks == len(tiling)
    assert (seen > 0).all()


def test_tiling_skips_invalid_points_and_rejects_gaps(rng):
    xyz = rng.uniform(0, 3, (100, 3))
    valid = np.arange(100) % 2 == 0
    covered = np.concatenate([idx for _, idx in tile_blocks(xyz, valid=valid)])
    assert set(covered.tolist()) == set(np.flatnonzero(valid).tolist())
    with pytest.raises(ValueError, match="stride"):
        tile_blocks(xyz, 1.0, 1.5)


def test_chunks_cover_the_block(rng):
    idx = np.arange(10, 1010)
    chunks = chunk_block(idx, 300, rng)
    assert len(chunks) == 4 and all(len(c) == 300 for c in chunks)
    assert set(np.concatenate(chunks).tolist()) == set(idx.tolist())
    assert chunk_block(np.array([7, 7, 7]), 5, rng)[0].tolist() == [7] * 4  # padded by repeats


def test_sparse_blocks_get_small_samples(rng):
    assert [sample_size(n, 4096) for n in (1, 100, 128, 129, 1000, 4095, 4096, 9000)] == \
        [1, 128, 128, 256, 1024, 4096, 4096, 4096]
    assert sample_size(5, 6) == 6                         # never more than num_points
    chunk = chunk_block(np.array([4, 9, 11]), 4096, rng)
    assert len(chunk) == 1 and len(chunk[0]) == 4 and set(chunk[0].tolist()) == {4, 9, 11}
    assert chunk_block(np.array([7]), 4096, rng)[0].tolist() == [7]


def test_small_samples_change_no_pointnet_prediction(rng, monkeypatch):
    """PointNet max-pools, so padding a block with fewer repeats changes nothing."""
    import torch

    from pcseg import infer
    from pcseg.data import blocks
    from pcseg.models import build

    torch.manual_seed(0)
    model = build("pointnet", 13, 9).eval()
    xyz = np.concatenate([rng.uniform(0, 1, (3000, 3)), rng.uniform(0, 40, (200, 3))]).astype(np.float32)

    def run():
        return infer.predict_probabilities(model, xyz, None, feature_set="xyzrgbn", num_points=1024,
                                           batch_size=8, progress=False)

    small = run()
    monkeypatch.setattr(blocks, "sample_size", lambda n, num_points: num_points)
    np.testing.assert_allclose(small, run(), atol=1e-4)  # float32 rounding of other matmul shapes


def test_sample_block_is_inside_and_sized(rng):
    xyz = rng.uniform(0, 3, (20000, 3))
    center, idx = sample_block(xyz, rng, 1024, block_size=1.0)
    assert len(idx) == 1024 and len(np.unique(idx)) == 1024
    assert (np.abs(xyz[idx, :2] - center) <= 0.5).all()
    sparse = rng.uniform(0, 10, (2000, 3))
    center, idx = sample_block(sparse, rng, 1024, block_size=1.0)
    assert len(idx) == 1024 and len(np.unique(idx)) < 100  # short blocks repeat points
    allowed = np.flatnonzero(xyz[:, 0] > 2.9)
    center, _ = sample_block(xyz, rng, 64, block_size=1.0, min_points=1, centers_from=allowed)
    assert any((xyz[i, :2] == center).all() for i in allowed)


def test_augmentations(rng):
    xyz = rng.uniform(0, 1, (500, 3)).astype(np.float32)
    rgb = rng.uniform(0, 1, (500, 3)).astype(np.float32)
    center = np.array([0.5, 0.5])
    rot = AugmentConfig.none()
    rot.rotate_z = True
    out, out_rgb = augment_block(xyz, rgb, center, rot, rng)
    np.testing.assert_allclose(out[:, 2], xyz[:, 2], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out[:, :2] - center, axis=1),
                               np.linalg.norm(xyz[:, :2] - center, axis=1), atol=1e-5)
    np.testing.assert_array_equal(out_rgb, rgb)
    flip = AugmentConfig.none()
    flip.flip_p = 1.0
    out, _ = augment_block(xyz, rgb, center, flip, rng)
    np.testing.assert_allclose(out[:, :2], 2 * center - xyz[:, :2], atol=1e-6)
    drop = AugmentConfig.none()
    drop.color_drop_p = 1.0
    assert (augment_block(xyz, rgb, center, drop, rng)[1] == MISSING_RGB).all()
    same = augment_block(xyz, rgb, center, AugmentConfig.none(), rng)
    np.testing.assert_array_equal(same[0], xyz)


def test_colour_gains_are_one_lighting_and_one_white_balance_per_block(rng):
    xyz = rng.uniform(0, 1, (400, 3)).astype(np.float32)
    rgb = rng.uniform(0.05, 0.3, (400, 3)).astype(np.float32)     # dark enough that no gain clips
    center = np.array([0.5, 0.5])
    light = AugmentConfig.none()
    light.brightness = 0.3
    _, lit = augment_block(xyz, rgb, center, light, np.random.default_rng(3))
    gain = lit / rgb
    np.testing.assert_allclose(gain, gain[0, 0], rtol=1e-5)           # one gain, every channel
    assert abs(np.log(gain[0, 0])) > 1e-3
    balance = AugmentConfig.none()
    balance.white_balance = 0.2
    _, balanced = augment_block(xyz, rgb, center, balance, np.random.default_rng(4))
    gains = balanced / rgb
    np.testing.assert_allclose(gains, np.broadcast_to(gains[0], gains.shape), rtol=1e-5)  # per channel
    assert np.ptp(gains[0]) > 1e-3
    # off, they draw nothing: the jitter that follows is what it was without them
    noise_only = AugmentConfig.none()
    noise_only.color_jitter = 0.05
    _, noisy = augment_block(xyz, rgb, center, noise_only, np.random.default_rng(5))
    noise = np.random.default_rng(5).normal(0, 0.05, rgb.shape).astype(np.float32)
    np.testing.assert_array_equal(noisy, np.clip(rgb + noise, 0, 1))


def test_class_weights():
    w = class_weights([1000, 100, 0, 10])
    assert w[2] == 0 and w[3] > w[1] > w[0]
    assert np.isclose(w[[0, 1, 3]].mean(), 1.0)


@pytest.fixture
def cache(tmp_path, rng):
    entries = []
    for k in range(2):
        xyz = rng.uniform(0, 4, (6000, 3))
        labels = (xyz[:, 0] > 2).astype(np.uint8) + 2 * (xyz[:, 2] > 3)
        entries.append(write_room(tmp_path, "Area_1", f"room_{k}", xyz, rng.integers(0, 256, (6000, 3)), labels, 13))
    write_index(tmp_path, [str(i) for i in range(13)], entries)
    return tmp_path


@pytest.mark.parametrize("sampling", ["random", "fps"])
def test_training_set_is_deterministic(cache, sampling):
    entries = load_index(cache)["rooms"]
    ds = BlockTrainingDataset(cache, entries, num_points=512, sampling=sampling, seed=3)
    x, y = ds[5]
    assert x.shape == (512, 9) and y.shape == (512,) and y.dtype == torch.int64
    again = BlockTrainingDataset(cache, entries, num_points=512, sampling=sampling, seed=3)
    torch.testing.assert_close(again[5][0], x)
    ds.set_epoch(1)
    assert not torch.equal(ds[5][0], x)
    assert len(ds) == 12000 // 512



def test_training_set_without_colours_gives_every_point_missing_rgb(cache):
    entries = load_index(cache)["rooms"]
    coloured = BlockTrainingDataset(cache, entries, num_points=512, seed=3)[5][0]
    grey = BlockTrainingDataset(cache, entries, num_points=512, seed=3, colours=False)[5][0]
    assert (coloured[:, 3:6] != MISSING_RGB).any()
    assert (grey[:, 3:6] == MISSING_RGB).all()
    torch.testing.assert_close(grey[:, [0, 1, 2, 6, 7, 8]], coloured[:, [0, 1, 2, 6, 7, 8]])

def test_balanced_classes_centre_rare_classes_often(tmp_path, rng):
    xyz = rng.uniform(0, 4, (20000, 3))
    labels = (xyz[:, 0] > 2).astype(np.uint8) + 2 * (xyz[:, 2] > 3)
    labels[(xyz[:, 0] < 0.2) & (xyz[:, 1] < 0.2)] = 5  # a 0.25 % corner "column"
    labels[(xyz[:, 0] > 3.8) & (xyz[:, 1] > 3.8)] = UNLABELLED
    entries = [write_room(tmp_path, "Area_1", "room", xyz, rng.integers(0, 256, xyz.shape), labels, 13),
               write_room(tmp_path, "Area_1", "plain", xyz, rng.integers(0, 256, xyz.shape), labels % 4, 13)]
    write_index(tmp_path, [str(i) for i in range(13)], entries)

    def share_with_column(balance):
        ds = BlockTrainingDataset(tmp_path, entries, num_points=256, block_size=0.5, seed=1,
                                  samples_per_epoch=500, balance_classes=balance)
        return np.mean([(ds[i][1] == 5).any().item() for i in range(len(ds))]), ds

    plain, _ = share_with_column(False)
    balanced, ds = share_with_column(True)
    mixed, _ = share_with_column(0.3)
    assert ds.balanced_classes == [0, 1, 2, 3, 5]  # never centred on unlabelled points
    assert plain < 0.05 and balanced > 0.15  # a fifth of the blocks are centred on the column
    assert plain < mixed < balanced  # 30 % balanced blocks: about 0.3 x 20 % + 0.7 x 4 %
    with pytest.raises(ValueError, match="share in"):
        share_with_column(1.5)


class ByX(torch.nn.Module):
    """Class 1 where the block-centred x plus the block's room-normalised x says x > 2 m."""

    def forward(self, x):
        room_x = x[..., 3] * 4.0
        logits = torch.stack([(2 - room_x) * 10, (room_x - 2) * 10], dim=-1)
        return logits, torch.zeros(())


def test_voting_labels_every_point(rng):
    xyz = rng.uniform(0, 4, (20000, 3)).astype(np.float32)
    xyz[0] = [0, 0, 0]
    xyz[1] = [4, 4, 4]
    valid = np.ones(len(xyz), bool)
    valid[10:20] = False
    probs = predict_probabilities(ByX(), xyz, None, feature_set="xyzn", num_points=256, block_size=1.0,
                                  stride=0.5, batch_size=7, valid=valid, progress=False)
    assert probs.shape == (20000, 2)
    ok = valid & (np.abs(xyz[:, 0] - 2) > 0.01)
    np.testing.assert_array_equal(probs[ok].argmax(1), (xyz[ok, 0] > 2).astype(int))
    np.testing.assert_allclose(probs[valid].sum(1), 1, atol=1e-5)
    assert (probs[~valid] == 0).all()



class ByRed(torch.nn.Module):
    """Class 1 where the red channel (channel 3) is above 0.6."""

    def forward(self, x):
        return torch.stack([torch.zeros_like(x[..., 3]), 50 * (x[..., 3] - 0.6)], dim=-1), torch.zeros(())


def test_a_model_without_colours_never_reads_the_clouds(rng):
    xyz = rng.uniform(0, 2, (3000, 3)).astype(np.float32)
    red = np.zeros((3000, 3), np.uint8)
    red[:, 0] = 255
    options = dict(feature_set="xyzrgb", num_points=256, block_size=1.0, stride=0.5, progress=False)
    assert (predict_probabilities(ByRed(), xyz, red, **options).argmax(1) == 1).all()
    ignored = predict_probabilities(ByRed(), xyz, red, colours=False, **options)
    assert (ignored.argmax(1) == 0).all()  # MISSING_RGB's red is 0.5
    np.testing.assert_array_equal(ignored, predict_probabilities(ByRed(), xyz, None, **options))

class ByLocalX(torch.nn.Module):
    """Per point, class 1 by a logistic of the block-centred x (channel 0)."""

    def forward(self, x):
        return torch.stack([torch.zeros_like(x[..., 0]), 20 * x[..., 0]], dim=-1), torch.zeros(())


def test_votes_turn_each_block_about_its_centre(rng):
    """One block, one sample of all its points: half-turn (or quarter-turn) votes cancel ByLocalX's
    answer to exactly 1/2 for every point, which a turn about any other centre would not."""
    xyz = rng.uniform(0, 0.99, (512, 3)).astype(np.float32)
    options = dict(feature_set="xyz", num_points=512, block_size=1.0, stride=1.0, progress=False)
    single = predict_probabilities(ByLocalX(), xyz, None, **options)
    assert np.abs(single[:, 1] - 0.5).max() > 0.4
    for votes in (2, 4):
        voted = predict_probabilities(ByLocalX(), xyz, None, votes=votes, **options)
        np.testing.assert_allclose(voted[:, 1], 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="votes"):
        predict_probabilities(ByLocalX(), xyz, None, votes=0, **options)


def _voxels_by_hand(xyz, size, valid):
    """{voxel grid cell: sorted point indices} with a Python dict, for the valid points."""
    lo = xyz[valid].min(axis=0)
    cells = {}
    for i in np.flatnonzero(valid):
        cells.setdefault(tuple(np.floor((xyz[i] - lo) / size).astype(int)), []).append(i)
    return cells


@pytest.mark.parametrize("case", ["random", "duplicates", "offset_1e5", "on_voxel_faces"])
def test_voxel_subsample_matches_a_dict(rng, case):
    xyz = rng.uniform(0, 2, (3000, 3))
    if case == "duplicates":
        xyz = np.repeat(xyz[:300], 10, axis=0)
    elif case == "offset_1e5":
        xyz += 1e5
    elif case == "on_voxel_faces":
        xyz = rng.integers(0, 20, (3000, 3)) * 0.1
    valid = rng.random(len(xyz)) > 0.1
    representatives, voxel_of = voxel_subsample(xyz, 0.1, valid)
    expected = _voxels_by_hand(xyz, 0.1, valid)
    assert len(representatives) == len(expected)
    assert (voxel_of[~valid] == -1).all()
    groups = {tuple(np.flatnonzero(voxel_of == v)) for v in range(len(representatives))}
    assert groups == {tuple(members) for members in expected.values()}
    assert all(representatives[v] == np.flatnonzero(voxel_of == v)[0] for v in range(len(representatives)))


def test_voxel_subsample_edge_cases():
    representatives, voxel_of = voxel_subsample(np.zeros((4, 3)), 0.02, np.zeros(4, bool))
    assert len(representatives) == 0 and (voxel_of == -1).all()
    with pytest.raises(PcsegError, match="--voxel-size"):
        voxel_subsample(np.array([[0.0, 0, 0], [1e7, 1e7, 1e7]]), 1e-4)
    with pytest.raises(ValueError):
        voxel_subsample(np.zeros((4, 3)), 0.0)


def test_voxel_voting_shares_a_voxels_probabilities(rng):
    """With voxel_size, each point gets exactly the probabilities its voxel's representative gets."""
    xyz = rng.uniform(0, 3, (20000, 3)).astype(np.float32)
    valid = np.ones(len(xyz), bool)
    valid[::50] = False
    options = dict(feature_set="xyzn", num_points=256, block_size=1.0, stride=0.5, batch_size=5, progress=False)
    probs = predict_probabilities(ByX(), xyz, None, valid=valid, voxel_size=0.3, **options)
    representatives, voxel_of = voxel_subsample(xyz, 0.3, valid)
    direct = predict_probabilities(ByX(), xyz[representatives], None, frame=Frame.of(xyz, valid), **options)
    np.testing.assert_array_equal(probs[valid], direct[voxel_of[valid]])
    assert (probs[~valid] == 0).all() and len(representatives) < valid.sum() / 10
