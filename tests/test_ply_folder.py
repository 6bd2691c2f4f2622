"""pcseg prepare ply: a folder of the user's labelled clouds -> the room cache."""

import json

import numpy as np
import plyfile
import pytest

from pcseg.cli import main
from pcseg.data.ply_folder import prepare_ply_folder, read_class_table
from pcseg.data.rooms import load_index, load_room
from pcseg.errors import PcsegError
from pcseg.io import write_ply


@pytest.mark.parametrize("name,text", [
    ("t.json", json.dumps(["floor", "wall", "chair"])),
    ("t.json", json.dumps({"0": "floor", "1": "wall", "2": "chair"})),
    ("t.yaml", "- floor\n- wall\n- chair\n"),
    ("t.txt", "floor\nwall\nchair\n"),
    ("t.txt", "0 floor\n1 wall\n2 chair\n"),
])
def test_class_tables(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert read_class_table(tmp_path / name) == ["floor", "wall", "chair"]


def test_gaps_and_bad_tables(tmp_path):
    (tmp_path / "g.json").write_text(json.dumps({"0": "floor", "2": "chair"}))
    assert read_class_table(tmp_path / "g.json") == ["floor", "class_1", "chair"]
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(PcsegError, match="unreadable"):
        read_class_table(tmp_path / "b.json")


def test_prepare_folder(tmp_path, rng):
    src = tmp_path / "scans"
    (src / "site_a").mkdir(parents=True)
    xyz = rng.uniform(0, 3, (500, 3))
    labels = rng.integers(0, 4, 500)  # 3 is outside a 3-class table
    xyz[:5] = np.nan
    write_ply(src / "site_a" / "scan1.ply", xyz, rng.integers(0, 256, (500, 3)).astype(np.uint8), labels)
    write_ply(src / "scan2.ply", rng.uniform(0, 3, (300, 3)), None, np.zeros(300, int))
    (tmp_path / "classes.txt").write_text("floor\nwall\nchair\n")
    assert main(["prepare", "ply", str(src), str(tmp_path / "cache"), "--classes",
                 str(tmp_path / "classes.txt"), "--workers", "1"]) == 0
    index = load_index(tmp_path / "cache")
    assert index["classes"] == ["floor", "wall", "chair"]
    by_path = {e["path"]: e for e in index["rooms"]}
    assert set(by_path) == {"site_a/scan1", "all/scan2"}
    room = load_room(tmp_path / "cache", by_path["site_a/scan1"])
    assert len(room.xyz) == 495
    assert (room.labels == 255).sum() == (labels[5:] == 3).sum()
    grey = load_room(tmp_path / "cache", by_path["all/scan2"])
    assert (grey.rgb == 128).all()
    again = prepare_ply_folder(src, tmp_path / "cache", tmp_path / "classes.txt", workers=1, progress=False)
    assert all(r.resumed for r in again)


def test_unlabelled_file_and_empty_folder(tmp_path, rng, capsys):
    (tmp_path / "classes.txt").write_text("floor\n")
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "ply", str(tmp_path / "empty"), str(tmp_path / "c"), "--classes",
                 str(tmp_path / "classes.txt")]) == 2
    assert "no point cloud files" in capsys.readouterr().err
    (tmp_path / "nolabel").mkdir()
    write_ply(tmp_path / "nolabel" / "a.ply", rng.uniform(0, 1, (10, 3)))
    with pytest.raises(PcsegError, match="no label property"):
        prepare_ply_folder(tmp_path / "nolabel", tmp_path / "c", tmp_path / "classes.txt", workers=1,
                           progress=False)


def _ply_with_float_labels(path, labels):
    vertex = np.zeros(len(labels), [("x", "f4"), ("y", "f4"), ("z", "f4"), ("label", "f4")])
    vertex["x"], vertex["y"], vertex["z"] = np.random.default_rng(0).uniform(0, 3, (3, len(labels)))
    vertex["label"] = labels
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(path))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_bad_file_of_a_folder_is_named_in_one_line(tmp_path, rng, capsys, workers):
    src = tmp_path / "scans"
    src.mkdir()
    (tmp_path / "classes.txt").write_text("floor\nwall\nchair\n")
    write_ply(src / "good.ply", rng.uniform(0, 3, (200, 3)), None, rng.integers(0, 3, 200))
    _ply_with_float_labels(src / "whole_floats.ply", np.array([0.0, 1.0, 2.0] * 50))  # whole numbers: fine
    _ply_with_float_labels(src / "fraction.ply", np.array([0.0, 2.7, 1.0] * 50))
    _ply_with_float_labels(src / "nan.ply", np.array([0.0, np.nan] * 50))
    write_ply(src / "unlabelled.ply", rng.uniform(0, 3, (50, 3)))
    (src / "cut.ply").write_bytes((src / "good.ply").read_bytes()[:400])
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    assert main(["prepare", "ply", str(src), str(tmp_path / "cache"), "--classes", str(tmp_path / "classes.txt"),
                 "--workers", workers]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pcseg")]  # the rest: progress bars
    assert len(err) == 1 and err[0].startswith(f"pcseg: error: {src}: 4 of 6 files cannot be prepared: ")
    assert f"{src / 'cut.ply'}: truncated" in err[0]  # found by the header check, before any file is read
    assert f"{src / 'fraction.ply'}: 50 of 150 labels are not whole numbers" in err[0]
    assert f"{src / 'nan.ply'}: 50 of 100 labels are not whole numbers" in err[0]
    assert f"{src / 'unlabelled.ply'}: no label property" in err[0]
    assert "good.ply" not in err[0] and "whole_floats" not in err[0]
    assert not (tmp_path / "cache" / "index.json").exists()
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    for name in ("cut.ply", "fraction.ply", "nan.ply", "unlabelled.ply"):
        (src / name).unlink()
    assert main(["prepare", "ply", str(src), str(tmp_path / "cache"), "--classes", str(tmp_path / "classes.txt"),
                 "--workers", workers]) == 0
    rooms = {e["path"]: e for e in load_index(tmp_path / "cache")["rooms"]}
    np.testing.assert_array_equal(load_room(tmp_path / "cache", rooms["all/whole_floats"]).labels, [0, 1, 2] * 50)
