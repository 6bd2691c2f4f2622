"""Synthetic rooms: deterministic, plausible geometry, every class, raw layout that prepares."""

import numpy as np
import pytest

from pcseg.classes import S3DIS_CLASSES
from pcseg.cli import main
from pcseg.data.rooms import load_index
from pcseg.data.s3dis import prepare_s3dis
from pcseg.data.synthetic import ROOM_KINDS, generate_room, write_s3dis_layout
from pcseg.io import read_cloud

CLS = {name: i for i, name in enumerate(S3DIS_CLASSES)}


@pytest.fixture(scope="module")
def rooms():
    return [generate_room(seed, density=600) for seed in range(8)]


def test_deterministic_given_seed():
    a, b = generate_room(11, density=400), generate_room(11, density=400)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.xyz[:100], generate_room(12, density=400).xyz[:100])


def test_every_class_appears_across_rooms(rooms):
    present = set(np.concatenate([np.unique(r.labels) for r in rooms]).tolist())
    assert present == set(range(len(S3DIS_CLASSES)))


def test_geometry_is_plausible(rooms):
    for room in rooms:
        z = room.xyz[:, 2]
        floor = z[room.labels == CLS["floor"]]
        ceiling = z[room.labels == CLS["ceiling"]]
        assert abs(np.median(floor) - z.min()) < 0.05
        assert abs(np.median(ceiling) - z.max()) < 0.05
        assert 2.5 < np.median(ceiling) - np.median(floor) < 3.6
        walls = room.xyz[room.labels == CLS["wall"], :2]
        lo, hi = walls.min(0), walls.max(0)
        at_side = (np.abs(walls - lo) < 0.05).any(1) | (np.abs(walls - hi) < 0.05).any(1)
        assert at_side.mean() > 0.95
        chairs = z[room.labels == CLS["chair"]]
        if len(chairs):
            assert chairs.max() < 1.3


def test_proportions_like_s3dis(rooms):
    counts = np.bincount(np.concatenate([r.labels for r in rooms]), minlength=13)
    share = counts / counts.sum()
    structure = share[[CLS["ceiling"], CLS["floor"], CLS["wall"]]].sum()
    assert 0.4 < structure < 0.85
    assert share[CLS["wall"]] > share[CLS["chair"]]


def test_every_kind_generates(tmp_path):
    for kind in ROOM_KINDS:
        room = generate_room(5, kind=kind, density=300)
        assert room.name.startswith(kind) and len(room.xyz) > 1000
        assert room.rgb.dtype == np.uint8 and room.labels.dtype == np.uint8


def test_raw_layout_round_trips_through_prepare(tmp_path):
    folders = write_s3dis_layout(tmp_path / "raw", {"Area_1": 2, "Area_2": 1}, seed=3, density=300)
    assert [f.parent.name for f in folders] == ["Area_1", "Area_1", "Area_2"]
    for folder in folders:
        assert (folder / f"{folder.name}.txt").is_file()
        names = [p.stem.rsplit("_", 1)[0] for p in (folder / "Annotations").glob("*.txt")]
        assert set(names) <= set(S3DIS_CLASSES) and {"floor", "ceiling", "wall"} <= set(names)
    reports = prepare_s3dis(tmp_path / "raw", tmp_path / "cache", workers=1, progress=False)
    assert not any(r.repaired or r.skipped for r in reports)
    index = load_index(tmp_path / "cache")
    total = sum(len(np.loadtxt(f / f"{f.name}.txt", ndmin=2)) for f in folders)
    assert sum(r["num_points"] for r in index["rooms"]) == total


def test_layout_keeps_existing_rooms_and_adds_new_ones(tmp_path):
    """A second call with more areas writes only the new rooms; the first ones are untouched
    and are the rooms a single call with all the areas would write."""
    first = write_s3dis_layout(tmp_path / "raw", 1, seed=4, rooms_per_area=2, density=150)
    stamps = {f: (f / f"{f.name}.txt").stat().st_mtime_ns for f in first}
    both = write_s3dis_layout(tmp_path / "raw", 2, seed=4, rooms_per_area=2, density=150)
    assert both[:2] == first and [f.parent.name for f in both] == ["Area_1"] * 2 + ["Area_2"] * 2
    assert all((f / f"{f.name}.txt").stat().st_mtime_ns == stamps[f] for f in first)
    at_once = write_s3dis_layout(tmp_path / "once", 2, seed=4, rooms_per_area=2, density=150)
    for a, b in zip(both, at_once):
        assert (a / f"{a.name}.txt").read_bytes() == (b / f"{b.name}.txt").read_bytes()
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["Area_1", "Area_2"]  # no staging left


def test_generate_command_writes_a_labelled_ply(tmp_path):
    out = tmp_path / "room.ply"
    assert main(["generate", str(out), "--ply", "--seed", "2", "--density", "300"]) == 0
    cloud = read_cloud(out)
    assert cloud.rgb is not None and cloud.labels is not None and len(cloud) > 1000
    assert main(["generate", str(out), "--ply"]) == 2


def _room_with_a_window(rng, per_m2=150):
    """Points (m, 3), instance (m,), classes of a 4 x 3 x 2.5 m room sampled evenly (``per_m2``):
    floor, ceiling, the y = 0 wall with a window opening at x 1-2 m, z 1-2 m, whose glass is set
    8 cm outside and its sill inside."""
    def rect(origin, u, v):
        n = int(per_m2 * np.linalg.norm(np.cross(u, v)))
        a, b = rng.random((2, n, 1))
        return np.asarray(origin) + a * np.asarray(u) + b * np.asarray(v)
    wall = rect((0, 0, 0), (4, 0, 0), (0, 0, 2.5))
    wall = wall[~((wall[:, 0] > 1) & (wall[:, 0] < 2) & (wall[:, 2] > 1) & (wall[:, 2] < 2))]
    parts = [rect((0, 0, 0), (4, 0, 0), (0, 3, 0)), rect((0, 0, 2.5), (4, 0, 0), (0, 3, 0)), wall,
             np.concatenate([rect((1, -0.08, 1), (1, 0, 0), (0, 0, 1)), rect((1, 0.0, 1), (1, 0, 0), (0, 0.15, 0))])]
    instance = np.repeat(np.arange(4), [len(p) for p in parts])
    return np.concatenate(parts), instance, ["floor", "ceiling", "wall", "window"]


def test_rgbd_capture_caps_points_drops_ceilings_and_glass_per_room():
    from pcseg.data.synthetic.scanner import rgbd_capture

    rng = np.random.default_rng(0)
    points, instance, classes = _room_with_a_window(rng)
    glass = (instance == 3) & (points[:, 1] < -0.07)
    sill = (instance == 3) & ~glass
    ceilings, glasses, sills = [], [], []
    for seed in range(12):
        kept = rgbd_capture(np.random.default_rng(seed), points, instance, classes, 4.0, 3.0, vertices=2000)
        assert len(kept) == 2000 and np.all(np.diff(kept) > 0)
        ceilings.append(int((instance[kept] == 1).sum()))
        glasses.append(int(glass[kept].sum()))
        sills.append(int(sill[kept].sum()))
    assert 0 in ceilings and max(ceilings) > 300  # the ceiling is lost in some rooms, not all
    assert 0 in glasses and max(glasses) > 30  # the glass too
    assert any(g == 0 and f > 0 for g, f in zip(glasses, sills))  # its frame stays when the glass goes
    assert len(rgbd_capture(np.random.default_rng(0), points, instance, classes, 4.0, 3.0, vertices=10**6)) < len(points)


def test_rgbd_rooms_hold_at_most_a_scans_vertices(tmp_path):
    room = generate_room(0, kind="office", density=1200, sensor="rgbd")
    assert len(room.xyz) == 50_000 and len(room.labels) == len(room.rgb) == 50_000
    with pytest.raises(ValueError, match="sensor"):
        generate_room(0, sensor="sonar")
    assert main(["generate", str(tmp_path / "room.ply"), "--ply", "--sensor", "sonar"]) == 2
    assert not (tmp_path / "room.ply").exists()
