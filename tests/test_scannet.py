"""pcseg prepare scannet: both layouts, the NYU40 -> S3DIS table, rooms as areas, bad scans."""

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from pcseg.classes import S3DIS_CLASSES, UNLABELLED
from pcseg.cli import main
from pcseg.data.rooms import load_index, load_room
from pcseg.data.scannet import DEFAULT_MAPPING, prepare_scannet, read_mapping
from pcseg.errors import PcsegError

NYU = {"wall": 1, "floor": 2, "chair": 5, "desk": 14, "whiteboard": 30, "ceiling": 22, "otherprop": 40}


def _scan(rng, n=300):
    xyz = rng.uniform(0, 4, (n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3))
    ids = rng.choice([0, *NYU.values()], n).astype(np.uint32)
    return xyz, rgb, ids


def _write_npy(folder, name, xyz, rgb, ids):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}_vert.npy", np.column_stack([xyz, rgb]).astype(np.float32))
    np.save(folder / f"{name}_sem_label.npy", ids)


def _write_ply(folder, name, xyz, rgb, ids):
    folder.mkdir(parents=True, exist_ok=True)
    vertex = np.empty(len(xyz), [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                 ("blue", "u1"), ("alpha", "u1")])
    for i, key in enumerate("xyz"):
        vertex[key] = xyz[:, i]
    for i, key in enumerate(("red", "green", "blue")):
        vertex[key] = rgb[:, i]
    vertex["alpha"] = 255
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(folder / f"{name}_vh_clean_2.ply"))
    labelled = np.empty(len(xyz), [("x", "f4"), ("y", "f4"), ("z", "f4"), ("label", "u2")])
    for i, key in enumerate("xyz"):
        labelled[key] = xyz[:, i]
    labelled["label"] = ids
    PlyData([PlyElement.describe(labelled, "vertex")]).write(str(folder / f"{name}_vh_clean_2.labels.ply"))


def test_the_shipped_table_maps_the_usual_classes():
    lut = read_mapping(DEFAULT_MAPPING)
    expected = {0: UNLABELLED, 1: "wall", 2: "floor", 20: "floor", 22: "ceiling", 9: "window", 8: "door",
                5: "chair", 6: "sofa", 7: "table", 14: "table", 10: "bookcase", 15: "bookcase",
                30: "board", 3: "clutter", 40: "clutter"}
    for nyu, s3dis in expected.items():
        assert lut[nyu] == (s3dis if s3dis == UNLABELLED else S3DIS_CLASSES.index(s3dis)), nyu
    assert (lut[:41] >= 0).all() and (lut[41:] == -1).all()
    assert not {S3DIS_CLASSES.index("beam"), S3DIS_CLASSES.index("column")} & set(lut[:41].tolist())


def test_both_layouts_prepare_into_rooms_by_scene(tmp_path, rng):
    src = tmp_path / "scannet"
    scans = {name: _scan(rng) for name in ("scene0101_00", "scene0101_01", "scene0102_00")}
    _write_npy(src, "scene0101_00", *scans["scene0101_00"])
    _write_ply(src / "scene0101_01", "scene0101_01", *scans["scene0101_01"])  # one folder per scan
    _write_npy(src, "scene0102_00", *scans["scene0102_00"])
    reports = prepare_scannet(src, tmp_path / "cache", workers=1, progress=False)
    assert [r.path for r in reports] == ["scene0101/scene0101_00", "scene0101/scene0101_01",
                                         "scene0102/scene0102_00"]
    index = load_index(tmp_path / "cache")
    assert index["classes"] == list(S3DIS_CLASSES)
    lut = read_mapping()
    for entry in index["rooms"]:
        xyz, rgb, ids = scans[entry["name"]]
        room = load_room(tmp_path / "cache", entry)
        np.testing.assert_array_equal(room.labels, lut[ids])
        np.testing.assert_array_equal(room.rgb, rgb)
        np.testing.assert_allclose(np.asarray(room.xyz) + np.array(entry["origin"]), xyz, atol=1e-6)
    assert all(r.resumed for r in prepare_scannet(src, tmp_path / "cache", workers=1, progress=False))


@pytest.mark.parametrize("breakage, message", [
    ("missing labels", "labels file scene0201_00_sem_label.npy is missing"),
    ("count mismatch", "299 labels for 300 vertices"),
    ("unknown ids", "NYU40 ids not in the class table: 41, 57"),
    ("float labels", "one integer label per vertex"),
])
def test_bad_scans_are_one_line_errors_and_nothing_is_written(tmp_path, rng, capsys, breakage, message):
    src = tmp_path / "scannet"
    _write_npy(src, "scene0200_00", *_scan(rng))          # a good scan, checked before the bad one
    xyz, rgb, ids = _scan(rng)
    _write_npy(src, "scene0201_00", xyz, rgb, ids)
    labels = src / "scene0201_00_sem_label.npy"
    if breakage == "missing labels":
        labels.unlink()
    elif breakage == "count mismatch":
        np.save(labels, ids[:-1])
    elif breakage == "unknown ids":
        np.save(labels, np.concatenate([ids[:-2], [41, 57]]).astype(np.uint32))
    else:
        np.save(labels, ids.astype(np.float32))
    assert main(["prepare", "scannet", str(src), str(tmp_path / "cache"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists()


def test_bad_folders_and_tables(tmp_path, rng, capsys):
    with pytest.raises(PcsegError, match="no such folder"):
        prepare_scannet(tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PcsegError, match="no ScanNet scans found"):
        prepare_scannet(tmp_path / "empty", tmp_path / "cache")
    table = tmp_path / "table.tsv"
    table.write_text("1\twall\twall\n2\tfloor\tpavement\n")
    with pytest.raises(PcsegError, match=r"table.tsv:2: unknown S3DIS class 'pavement'"):
        read_mapping(table)
    table.write_text("# comment\n1 wall wall\n")
    with pytest.raises(PcsegError, match=r"table.tsv:2: expected"):
        read_mapping(table)
    src = tmp_path / "src"
    _write_npy(src, "scene0300_00", *_scan(rng))
    table.write_text("0\tunannotated\tignore\n")         # a custom table that knows only id 0
    assert main(["prepare", "scannet", str(src), str(tmp_path / "c2"), "--mapping", str(table)]) == 2
    assert "NYU40 ids not in the class table" in capsys.readouterr().err
