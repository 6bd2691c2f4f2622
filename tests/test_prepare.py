"""pcseg prepare s3dis: raw layout -> room cache, corrupt bytes, wrong folders, resume."""

import re

import numpy as np
import pytest

from pcseg.classes import S3DIS_CLASSES
from pcseg.cli import main
from pcseg.data.rooms import load_index, load_room
from pcseg.data.s3dis import prepare_s3dis
from pcseg.data.synthetic import write_s3dis_layout
from pcseg.data.text_points import parse_points
from pcseg.errors import PcsegError


def _rows(rng, n, z):
    xyz = np.column_stack([rng.uniform(0, 4, n), rng.uniform(0, 3, n), np.full(n, z)])
    rgb = rng.integers(0, 256, (n, 3))
    return "".join(f"{x:.6f} {y:.6f} {zz:.6f} {r} {g} {b}\n" for (x, y, zz), (r, g, b) in zip(xyz, rgb))


def _make_layout(root, rng, rooms=(("Area_1", "office_1"), ("Area_3", "hallway_2"))):
    for area, room in rooms:
        ann = root / area / room / "Annotations"
        ann.mkdir(parents=True)
        (ann / "floor_1.txt").write_text(_rows(rng, 50, 0.0))
        (ann / "ceiling_1.txt").write_text(_rows(rng, 40, 3.0))
        (ann / "chair_2.txt").write_text(_rows(rng, 30, 0.5))
    return root


def test_parse_repairs_the_known_s3dis_corruptions(tmp_path):
    path = tmp_path / "ceiling_1.txt"
    path.write_bytes(b"1.0 2.0 3.0 10 20 30\n"
                     b"4.0 5.0 103.0\x100000 1 2 3\n"      # Area_5/office_19 kind
                     b"7.0 8.0 9.0 4\x00 5 6\n"             # NUL byte, Area_5/hallway_6 kind
                     b"-9.1\x160 1.0 2.0 7 8 9\n"           # Area_3 kind
                     b"1.0 2.0 3.0 4 5\n"                   # a column missing: skipped
                     b"1.5 2.5 3.5 11 12 13\n")
    parsed = parse_points(path)
    np.testing.assert_allclose(parsed.xyz, [[1, 2, 3], [4, 5, 103], [7, 8, 9], [-9.1, 1, 2], [1.5, 2.5, 3.5]])
    np.testing.assert_array_equal(parsed.rgb[2], [4, 5, 6])
    assert [r.split(":")[1] for r in parsed.repaired] == ["2", "3", "4"]
    assert "\\x10" in parsed.repaired[0]
    assert len(parsed.skipped) == 1 and f"{path}:5:" in parsed.skipped[0]


def test_parse_skips_what_cannot_be_repaired(tmp_path):
    path = tmp_path / "wall_1.txt"
    path.write_bytes(b"1 2 3 4 5 6\r\n"
                     b"\r\n"                                 # blank (CRLF) lines are ignored
                     b"1 2 3 4 5 6 7\n"                       # 7 fields
                     b"1.0.0 2 3 4 5 6\n"                     # not a number
                     b"1 2 nan 4 5 6\n"                       # letters
                     b"1 2\x003 4 5 6\n"                      # stray byte joins two fields: 5 left
                     b"1 2 3 300 -4 7.6\n")                   # colours clipped and rounded
    parsed = parse_points(path)
    np.testing.assert_array_equal(parsed.xyz, [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(parsed.rgb, [[4, 5, 6], [255, 0, 8]])
    assert parsed.repaired == []  # a line whose repair fails is reported once, as skipped
    assert [r.split(":")[1] for r in parsed.skipped] == ["3", "4", "5", "6"]
    assert "found 7" in parsed.skipped[0] and "1.0.0" in parsed.skipped[1]


def test_parse_empty_and_blank_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"")
    (tmp_path / "b.txt").write_bytes(b"\n \n")
    for name in ("a.txt", "b.txt"):
        parsed = parse_points(tmp_path / name)
        assert parsed.xyz.shape == (0, 3) and parsed.rgb.shape == (0, 3) and not parsed.skipped


def test_prepare_writes_the_cache(tmp_path, rng):
    src = _make_layout(tmp_path / "S3DIS", rng)
    ann = src / "Area_1" / "office_1" / "Annotations"
    (ann / "stairs_1.txt").write_text(_rows(rng, 10, 1.0))
    text = (ann / "floor_1.txt").read_bytes()
    (ann / "floor_1.txt").write_bytes(text.replace(b".", b".\x10", 1))
    reports = prepare_s3dis(src, tmp_path / "cache", workers=1, progress=False)
    index = load_index(tmp_path / "cache")
    assert index["classes"] == list(S3DIS_CLASSES)
    assert [r["path"] for r in index["rooms"]] == ["Area_1/office_1", "Area_3/hallway_2"]
    office = index["rooms"][0]
    assert office["num_points"] == 130
    counts = office["class_counts"]
    assert counts[S3DIS_CLASSES.index("floor")] == 50
    assert counts[S3DIS_CLASSES.index("clutter")] == 10  # stairs -> clutter
    assert reports[0].unknown_classes == ["stairs"] and len(reports[0].repaired) == 1
    room = load_room(tmp_path / "cache", office)
    assert room.xyz.dtype == np.float32 and room.rgb.dtype == np.uint8 and room.labels.dtype == np.uint8
    assert np.allclose(room.xyz.min(axis=0), 0)
    assert np.allclose(room.xyz[:, 2].max(), 3.0, atol=1e-6)


def test_prepare_resumes_and_runs_in_parallel(tmp_path, rng):
    src = _make_layout(tmp_path / "S3DIS", rng)
    first = prepare_s3dis(src, tmp_path / "cache", workers=2, progress=False)
    assert not any(r.resumed for r in first)
    second = prepare_s3dis(src, tmp_path / "cache", workers=1, progress=False)
    assert all(r.resumed for r in second)
    assert [r.entry for r in first] == [r.entry for r in second]


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "not an S3DIS root"),
    (lambda p: (p / "Area_1" / "office_1").mkdir(parents=True), "no room has an Annotations"),
    (lambda p: (p / "Stanford3dDataset_v1.2_Aligned_Version" / "Area_1").mkdir(parents=True),
     "did you mean"),
])
def test_wrong_folders_fail_clearly(tmp_path, capsys, make, message):
    src = tmp_path / "src"
    make(src)
    assert main(["prepare", "s3dis", str(src), str(tmp_path / "cache"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "cache" / "index.json").exists()


def test_non_aligned_release_is_refused(tmp_path, rng):
    src = tmp_path / "Stanford3dDataset_v1.2"
    (src / "Area_1" / "office_1" / "Annotations").mkdir(parents=True)
    with pytest.raises(PcsegError, match="non-aligned"):
        prepare_s3dis(src, tmp_path / "cache", progress=False)
    renamed = _make_layout(tmp_path / "renamed", rng)  # recognised by its alignment-angle files
    (renamed / "Area_1" / "Area_1_alignmentAngle.txt").write_text("office_1 180\n")
    with pytest.raises(PcsegError, match="non-aligned"):
        prepare_s3dis(renamed, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_an_area_or_a_room_given_as_root_gets_a_hint(tmp_path, rng):
    src = _make_layout(tmp_path / "S3DIS", rng)
    with pytest.raises(PcsegError, match="give its parent"):
        prepare_s3dis(src / "Area_1", tmp_path / "cache", progress=False)
    with pytest.raises(PcsegError, match="this is one room"):
        prepare_s3dis(src / "Area_1" / "office_1", tmp_path / "cache", progress=False)


def _corrupt_line(path, line, make_bad):
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = make_bad(lines[line - 1])
    path.write_bytes(b"\n".join(lines))
    return lines[line - 1]


def test_generated_layout_with_the_known_corruptions(tmp_path, capsys):
    rooms = write_s3dis_layout(tmp_path / "raw", {"Area_3": 1, "Area_5": 1}, seed=1, density=200)
    files = [sorted((room / "Annotations").glob(f"{c}_*.txt"))[0] for room, c in
             zip(rooms * 2, ["ceiling", "floor", "wall", "wall"])]
    bad = [
        _corrupt_line(files[0], 5, lambda b: b.replace(b".", b".\x10", 1)),     # 103.0\x100000 kind
        _corrupt_line(files[1], 9, lambda b: b[:3] + b"\x00" + b[3:]),          # a NUL inside a number
        _corrupt_line(files[2], 2, lambda b: b.replace(b".", b".\x16", 1)),     # -9.1\x160 kind
        _corrupt_line(files[3], 3, lambda b: b.split(b" ", 1)[1]),                # a field missing
    ]
    raw_total = sum(len(f.read_bytes().strip().split(b"\n")) for r in rooms
                    for f in (r / "Annotations").glob("*.txt"))
    assert main(["prepare", "s3dis", str(tmp_path / "raw"), str(tmp_path / "cache"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for file, line, text in zip(files, [5, 9, 2, 3], bad):
        assert f"{file}:{line}: " in out and repr(text) in out
    assert re.search(r"lines repaired +3\n", out) and re.search(r"lines skipped +1\n", out)
    index = load_index(tmp_path / "cache")
    assert sum(r["num_points"] for r in index["rooms"]) == raw_total - 1
    assert sum(r["repaired_lines"] for r in index["rooms"]) == 3
    assert sum(r["skipped_lines"] for r in index["rooms"]) == 1
    assert main(["prepare", "s3dis", str(tmp_path / "raw"), str(tmp_path / "cache"), "--workers", "1"]) == 0
    again = capsys.readouterr().out  # a resumed run keeps the counts of the first
    assert "2 (2 already done)" in again and re.search(r"lines repaired +3\n", again)




def test_a_failing_room_stops_the_run_without_an_index(tmp_path, rng, capsys):
    src = _make_layout(tmp_path / "S3DIS", rng)
    for ann in (src / "Area_3" / "hallway_2" / "Annotations").iterdir():
        ann.write_text("")
    assert main(["prepare", "s3dis", str(src), str(tmp_path / "cache"), "--workers", "2"]) == 2
    assert "hallway_2: Annotations holds no points" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "index.json").exists()


def test_cli_summary(tmp_path, rng, capsys):
    src = _make_layout(tmp_path / "S3DIS", rng)
    assert main(["prepare", "s3dis", str(src), str(tmp_path / "cache"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "rooms" in out and "240" in out


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(PcsegError, match="pcseg prepare"):
        load_index(tmp_path)


def test_workers_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "s3dis", str(tmp_path), str(tmp_path / "cache"), "--workers", "0"])
    assert exit_info.value.code == 2 and "--workers" in capsys.readouterr().err
