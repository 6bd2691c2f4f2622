"""pcseg prepare ply: a folder of the user's labelled clouds -> the room cache."""

import json

import numpy as np
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
