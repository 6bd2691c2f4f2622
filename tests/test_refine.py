"""Flat-patch voting (pcseg.refine): flat, connected surfaces share their mean probabilities,
everything else keeps its own, and a tile with the voting's reach (or whole cells with their halo)
gets the whole cloud's result."""

import numpy as np
import pytest

from pcseg import refine
from pcseg.data.synthetic import generate_room

FLOOR, WALL, CHAIR, CLUTTER = 1, 2, 8, 12
K = 13


def _one_hot(labels, strength=0.6):
    """(N, K) probabilities: ``strength`` on each point's label, the rest spread evenly."""
    probs = np.full((len(labels), K), (1 - strength) / (K - 1), dtype=np.float32)
    probs[np.arange(len(labels)), labels] = strength
    return probs


def _corner_and_ball(rng):
    """A 2.5 m square floor (z = 0) meeting a 2 m high wall (x = 0) on a 1 cm grid with 2 mm noise,
    and a ball of radius 0.12 m (a lamp shade, a pot) standing on the floor. Returns (xyz (N, 3) float32, part (N,):
    0 floor, 1 wall, 2 ball)."""
    g = np.arange(0.005, 2.5, 0.01)
    u, v = np.meshgrid(g, g, indexing="ij")
    floor = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], 1)
    h = np.arange(0.005, 2.0, 0.01)
    v2, w2 = np.meshgrid(g, h, indexing="ij")
    wall = np.stack([np.zeros(v2.size), v2.ravel(), w2.ravel()], 1)
    d = rng.normal(size=(3000, 3))
    ball = 0.12 * d / np.linalg.norm(d, axis=1, keepdims=True) + [1.5, 1.5, 0.12]
    xyz = np.concatenate([floor, wall, ball]) + rng.normal(0, 0.002, (len(floor) + len(wall) + len(ball), 3))
    part = np.repeat([0, 1, 2], [len(floor), len(wall), len(ball)])
    return xyz.astype(np.float32) + np.float32(10.0), part


def test_flat_surfaces_take_their_majority_and_the_rest_keeps_its_own():
    rng = np.random.default_rng(0)
    xyz, part = _corner_and_ball(rng)
    truth = np.array([FLOOR, WALL, CHAIR])[part]
    noisy = np.where(rng.random(len(xyz)) < 0.3, CLUTTER, truth)  # 30 % of every surface mislabelled
    probs = _one_hot(noisy)
    out = refine.refine_probabilities(xyz, probs.copy())
    labels = out.argmax(1)
    assert out.dtype == np.float32 and out.shape == probs.shape
    same = probs.copy()
    assert refine.refine_probabilities(xyz, same) is same and np.array_equal(same, out)  # written in place
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-5)
    for p, name in ((0, "floor"), (1, "wall")):
        right_before = (noisy[part == p] == truth[part == p]).mean()
        right_after = (labels[part == p] == truth[part == p]).mean()
        assert right_before < 0.72 and right_after > 0.95, (name, right_before, right_after)
    # the floor and the wall meet at a right angle: never one patch, so neither takes the other's label
    assert not (labels[part == 0] == WALL).any() and not (labels[part == 1] == FLOOR).any()
    # the ball is not flat: its points keep their own probabilities exactly
    np.testing.assert_array_equal(out[part == 2], probs[part == 2])


def test_a_rounded_corner_does_not_join_a_floor_to_its_wall():
    """A floor curving up into a wall through a quarter cylinder of 0.3 m radius: every step round
    the cove is a small turn, so the joins alone would make floor and wall one patch."""
    rng = np.random.default_rng(5)
    g = np.arange(0.005, 2.5, 0.01)
    radius = 0.3
    u, v = np.meshgrid(np.arange(radius, 2.5, 0.01), g, indexing="ij")
    floor = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], 1)
    h, v2 = np.meshgrid(np.arange(radius, 2.0, 0.01), g, indexing="ij")
    wall = np.stack([np.zeros(h.size), v2.ravel(), h.ravel()], 1)
    angle, v3 = np.meshgrid(np.arange(0, np.pi / 2, 0.01 / radius), g, indexing="ij")
    cove = np.stack([radius * (1 - np.sin(angle.ravel())), v3.ravel(), radius * (1 - np.cos(angle.ravel()))], 1)
    xyz = np.concatenate([floor, wall, cove]) + rng.normal(0, 0.002, (len(floor) + len(wall) + len(cove), 3))
    part = np.repeat([0, 1, 2], [len(floor), len(wall), len(cove)])
    truth = np.array([FLOOR, WALL, WALL])[part]
    out = refine.refine_probabilities(xyz.astype(np.float32), _one_hot(np.where(rng.random(len(xyz)) < 0.3, CLUTTER, truth)))
    labels = out.argmax(1)
    assert (labels[part == 0] == FLOOR).mean() > 0.95 and (labels[part == 1] == WALL).mean() > 0.95


def test_small_patches_invalid_points_and_empty_clouds_are_left_alone():
    rng = np.random.default_rng(1)
    g = np.arange(0.005, 0.1, 0.01)  # a 10 cm square: fewer voxels than MIN_VOXELS
    u, v = np.meshgrid(g, g)
    xyz = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], 1).astype(np.float32)
    probs = _one_hot(rng.integers(0, K, len(xyz)))
    np.testing.assert_array_equal(refine.refine_probabilities(xyz, probs.copy()), probs)

    big, part = _corner_and_ball(rng)
    probs = _one_hot(np.where(rng.random(len(big)) < 0.3, CLUTTER, FLOOR))
    valid = np.ones(len(big), bool)
    valid[::50] = False
    big = big.copy()
    big[~valid] = np.nan
    out = refine.refine_probabilities(big, probs.copy(), valid)
    np.testing.assert_array_equal(out[~valid], probs[~valid])
    assert (out[valid & (part == 0)].argmax(1) == FLOOR).mean() > 0.95

    none = np.zeros(len(xyz), bool)
    np.testing.assert_array_equal(refine.refine_probabilities(xyz, probs[:len(xyz)].copy(), none), probs[:len(xyz)])


def test_float64_coordinates_far_from_the_origin():
    """Georeferenced clouds: the voting works about the grid origin, not in raw coordinates."""
    rng = np.random.default_rng(2)
    xyz, part = _corner_and_ball(rng)
    far = xyz.astype(np.float64) + [512_000.0, 5_400_000.0, 300.0]
    probs = _one_hot(np.where(rng.random(len(xyz)) < 0.3, CLUTTER, np.array([FLOOR, WALL, CHAIR])[part]))
    near = refine.refine_probabilities(xyz.astype(np.float64), probs.copy())
    np.testing.assert_array_equal(refine.refine_probabilities(far, probs.copy()).argmax(1), near.argmax(1))


@pytest.fixture(scope="module")
def voted_room():
    """An 8 m generated office with 40 % of its labels random: (xyz (N, 3) float32, probs (N, K),
    origin (3,) float64, the whole room's voted probabilities)."""
    room = generate_room(5, kind="office", density=400)
    xyz = room.xyz.astype(np.float32)
    rng = np.random.default_rng(3)
    probs = _one_hot(np.where(rng.random(len(xyz)) < 0.4, rng.integers(0, K, len(xyz)), room.labels))
    origin = xyz.min(axis=0).astype(np.float64)
    return xyz, probs, origin, refine.refine_probabilities(xyz, probs.copy(), origin=origin)


def test_a_tile_with_the_reach_of_the_voting_gets_the_whole_result(voted_room):
    """Bit for bit, whatever the tile's other points."""
    xyz, probs, origin, whole = voted_room
    assert (whole != probs).any(axis=1).mean() > 0.3  # the voting changed much of the room
    x = xyz[:, 0]
    for owned in (x < x.min() + 1.0, x > x.max() - 1.0):  # a metre-wide strip at either end of the 8 m room
        tile = (x >= x[owned].min() - refine.REACH) & (x <= x[owned].max() + refine.REACH)
        assert tile.sum() < 0.9 * len(xyz)  # a real tile, not the whole room
        part = refine.refine_probabilities(xyz[tile], probs[tile], origin=origin)  # a copy: boolean index
        np.testing.assert_array_equal(part[owned[tile]], whole[owned])


def test_whole_cells_with_the_cell_halo_get_the_whole_result(voted_room):
    """Bit for bit: the points of one cell (as cell_of counts them), read with every point within
    CELL_HALO of it; with a quarter of that halo many of them change."""
    xyz, probs, origin, whole = voted_room
    cell = refine.cell_of(xyz[:, :2], origin[:2])
    owned = (cell == [1, 0]).all(axis=1)
    low = origin[:2] + np.array([1, 0]) * refine.CELL

    def voted_in_tile(halo):
        tile = ((xyz[:, :2] >= low - halo) & (xyz[:, :2] < low + refine.CELL + halo)).all(axis=1)
        assert tile.sum() < 0.6 * len(xyz)
        return refine.refine_probabilities(xyz[tile], probs[tile], origin=origin)[owned[tile]]

    np.testing.assert_array_equal(voted_in_tile(refine.CELL_HALO), whole[owned])
    assert (voted_in_tile(refine.CELL_HALO / 4) != whole[owned]).any(axis=1).mean() > 0.1


@pytest.mark.parametrize("shape", [(0, 3), (5, 3)])
def test_tiny_clouds(shape):
    xyz = np.random.default_rng(4).random(shape).astype(np.float32)
    probs = _one_hot(np.zeros(shape[0], int))
    np.testing.assert_array_equal(refine.refine_probabilities(xyz, probs.copy()), probs)
