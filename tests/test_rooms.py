"""The room cache (write/load, completeness, index) and the S3DIS split definitions."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pcseg.classes import S3DIS_CLASSES
from pcseg.data.rooms import (load_index, load_room, read_room_entry, room_is_complete, write_index,
                              write_room)
from pcseg.data.splits import S3DIS_AREAS, area5_split, select_rooms, six_fold_split
from pcseg.errors import PcsegError

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "s3dis"


def test_write_and_load_a_room(tmp_path, rng):
    xyz = rng.uniform(0, 5, (200, 3)) + [4.5e5, 5.4e6, 120.0]  # georeferenced metres
    rgb = rng.integers(0, 256, (200, 3))
    labels = rng.integers(0, 13, 200)
    labels[:7] = 255
    entry = write_room(tmp_path, "Area_2", "office_3", xyz, rgb, labels, 13, note="x")
    assert entry["path"] == "Area_2/office_3" and entry["num_points"] == 200 and entry["note"] == "x"
    assert entry["class_counts"] == np.bincount(labels[7:], minlength=13).tolist()
    assert sum(entry["class_counts"]) == 193  # unlabelled points are not counted
    room = load_room(tmp_path, entry)
    assert (room.name, room.area) == ("office_3", "Area_2")
    assert room.xyz.dtype == np.float32 and room.rgb.dtype == np.uint8 and room.labels.dtype == np.uint8
    assert isinstance(room.xyz, np.memmap)
    np.testing.assert_array_equal(room.xyz.min(axis=0), 0)
    # origin + float32 offsets restore the source to well under a millimetre
    assert np.abs(room.xyz + np.array(entry["origin"]) - xyz).max() < 1e-4
    np.testing.assert_array_equal(room.labels, labels)
    np.testing.assert_array_equal(room.rgb, rgb)
    assert read_room_entry(tmp_path, "Area_2/office_3") == json.loads(json.dumps(entry))


def test_a_room_without_its_meta_is_incomplete(tmp_path, rng):
    write_room(tmp_path, "Area_1", "a", rng.uniform(0, 1, (10, 3)), np.zeros((10, 3)), np.zeros(10), 13)
    assert room_is_complete(tmp_path, "Area_1/a")
    (tmp_path / "Area_1" / "a" / "meta.json").unlink()
    assert not room_is_complete(tmp_path, "Area_1/a")
    write_room(tmp_path, "Area_1", "b", rng.uniform(0, 1, (10, 3)), np.zeros((10, 3)), np.zeros(10), 13)
    (tmp_path / "Area_1" / "b" / "rgb.npy").unlink()
    assert not room_is_complete(tmp_path, "Area_1/b")
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_index_round_trip_and_errors(tmp_path):
    entries = [{"area": "Area_2", "name": "b", "path": "Area_2/b"},
               {"area": "Area_1", "name": "a", "path": "Area_1/a"}]
    write_index(tmp_path, S3DIS_CLASSES, entries)
    index = load_index(tmp_path)
    assert index["format"] == 1 and index["classes"] == list(S3DIS_CLASSES)
    assert [e["path"] for e in index["rooms"]] == ["Area_1/a", "Area_2/b"]
    (tmp_path / "index.json").write_text(json.dumps({"format": 99, "rooms": []}))
    with pytest.raises(PcsegError, match="unknown cache format"):
        load_index(tmp_path)
    with pytest.raises(PcsegError, match="no index.json"):
        load_index(tmp_path / "missing")


def test_splits():
    train, val = area5_split()
    assert val == ["Area_5"] and "Area_5" not in train and len(train) == 5
    for fold in range(1, 7):
        train, val = six_fold_split(fold)
        assert val == [f"Area_{fold}"] and sorted(train + val) == list(S3DIS_AREAS)
    with pytest.raises(ValueError):
        six_fold_split(7)
    entries = [{"area": a, "name": str(i)} for i, a in enumerate(["Area_1", "Area_5", "Area_1"])]
    assert [e["name"] for e in select_rooms(entries, ["Area_1"])] == ["0", "2"]
    assert [e["name"] for e in select_rooms(entries, ["Area_1/2", "Area_5"])] == ["1", "2"]
    assert select_rooms(entries, ["Area_5/0"]) == []  # a room is named within its own area


def test_dataset_files_match_the_code():
    splits = yaml.safe_load((DATASET / "splits.yaml").read_text())
    assert (splits["area5"]["train"], splits["area5"]["val"]) == area5_split()
    for fold in range(1, 7):
        assert (splits[f"fold{fold}"]["train"], splits[f"fold{fold}"]["val"]) == six_fold_split(fold)
    rows = [line.split() for line in (DATASET / "classes.txt").read_text().splitlines()]
    assert [name for _, name in rows] == list(S3DIS_CLASSES)
    assert [int(i) for i, _ in rows] == list(range(len(S3DIS_CLASSES)))
