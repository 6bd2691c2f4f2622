"""datasets/real/rebuild.py: manifest checks, deny list, checksums, resume, and the real rebuild."""

import hashlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pcseg.errors import PcsegError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT_ROOT / "datasets" / "real" / "rebuild.py"
MIRROR = Path("/work/.mirror")
SHARED = PROJECT_ROOT.parent / "shared"


def _load_script():
    spec = importlib.util.spec_from_file_location("real_rebuild", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rebuild = _load_script()


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


def _fake_snapshot(tmp_path, repository: str, files: dict[str, bytes]):
    """A fetched snapshot (mirror layout) of a repository committing ``files``; (mirror, commit)."""
    work = tmp_path / "work"
    for path, data in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "data", cwd=work)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True,
                            text=True).stdout.strip()
    mirror = tmp_path / "mirror"
    (mirror / repository.replace("/", "+")).mkdir(parents=True)
    (work / ".git").rename(mirror / repository.replace("/", "+") / "repo")
    return mirror, commit


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture
def fake_source(tmp_path):
    """A fetched snapshot of a fake repository holding two ScanNet-like scans of one room."""
    data = {}
    for scan in ("scene0101_00", "scene0101_01"):
        data[f"export/{scan}_vert.npy"] = _npy_bytes(np.arange(12, dtype=np.float32).reshape(2, 6))
        data[f"export/{scan}_sem_label.npy"] = _npy_bytes(np.array([1, 2], dtype=np.uint32))
    mirror, commit = _fake_snapshot(tmp_path, "someone/scans", data)
    return mirror, commit, {path: hashlib.sha256(b).hexdigest() for path, b in data.items()}


def _manifest(tmp_path, commit, files, *, repository="someone/scans", room="scene0101", shared=None):
    source = {"repository": repository, "commit": commit, "licence": "test", "kind": "rgbd"}
    if shared:
        source["shared"] = shared
    entry = {"room": room, "source": "fake", "split": "train",
             "files": [{"path": p, "out": f"scannet/{Path(p).name}", "sha256": h} for p, h in files.items()]}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": {"fake": source}, "rooms": [entry]}))
    return path


def test_rebuild_copies_verified_files_and_writes_split_and_status(tmp_path, fake_source):
    mirror, commit, files = fake_source
    rooms = rebuild.load_manifest(_manifest(tmp_path, commit, files))
    out = tmp_path / "out"
    report = rebuild.rebuild(rooms, out, mirror, tmp_path / "no_shared", progress=False)
    assert sorted(report.written) == sorted(f"scannet/{Path(p).name}" for p in files)
    for p, digest in files.items():
        assert hashlib.sha256((out / "scannet" / Path(p).name).read_bytes()).hexdigest() == digest
    assert yaml.safe_load((out / "split.yaml").read_text())["scannet"] == {"train": ["scene0101"], "val": []}
    assert "| scannet/ | rgbd | train | 1 | 2 | 4 |" in (out / "STATUS.md").read_text()


def test_rebuild_resumes_and_rewrites_a_damaged_file(tmp_path, fake_source):
    mirror, commit, files = fake_source
    rooms = rebuild.load_manifest(_manifest(tmp_path, commit, files))
    out = tmp_path / "out"
    rebuild.rebuild(rooms, out, mirror, tmp_path, progress=False)
    damaged = out / "scannet" / "scene0101_00_vert.npy"
    damaged.write_bytes(b"truncated")
    report = rebuild.rebuild(rooms, out, mirror, tmp_path, progress=False)
    assert report.written == ["scannet/scene0101_00_vert.npy"]
    assert len(report.present) == 3
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() == files["export/scene0101_00_vert.npy"]


def test_checksum_mismatch_is_refused_and_not_written(tmp_path, fake_source):
    mirror, commit, files = fake_source
    files = dict(files, **{"export/scene0101_01_vert.npy": "0" * 64})
    rooms = rebuild.load_manifest(_manifest(tmp_path, commit, files))
    out = tmp_path / "out"
    report = rebuild.rebuild(rooms, out, mirror, tmp_path, progress=False)
    assert list(report.refused) == ["scannet/scene0101_01_vert.npy"]
    assert not (out / "scannet" / "scene0101_01_vert.npy").exists()
    # a room missing a file is in neither side of the split
    assert yaml.safe_load((out / "split.yaml").read_text())["scannet"] == {"train": [], "val": []}
    code = rebuild.main(["--manifest", str(tmp_path / "sources.yaml"), "--out", str(out),
                         "--mirror", str(mirror), "--no-progress"])
    assert code == 1


def test_absent_source_is_skipped_with_its_reason_and_shared_copy_is_used(tmp_path, fake_source):
    mirror, commit, files = fake_source
    rooms = rebuild.load_manifest(_manifest(tmp_path, commit, files, shared="copies"))
    report = rebuild.rebuild(rooms, tmp_path / "out", tmp_path / "empty_mirror", tmp_path / "shared",
                             progress=False)
    assert not report.written and len(report.skipped) == 4
    assert all("no snapshot of someone/scans" in why for why in report.skipped.values())
    copies = tmp_path / "shared" / "copies"
    copies.mkdir(parents=True)
    for p in files:
        data = subprocess.run(["git", f"--git-dir={mirror / 'someone+scans' / 'repo'}", "cat-file", "blob",
                               f"{commit}:{p}"], check=True, capture_output=True).stdout
        (copies / Path(p).name).write_bytes(data)
    report = rebuild.rebuild(rooms, tmp_path / "out", tmp_path / "empty_mirror", tmp_path / "shared",
                             progress=False)
    assert len(report.written) == 4 and not report.skipped


@pytest.mark.parametrize("repository, room", [
    ("open-mmlab/mmdetection3d", "scene0101"),
    ("Siddharth277/DBSCAN", "scene0101"),
    ("WinerDeCoder/S3DIS-STRUCTURAL-RECONSTRUCTION", "scene0101"),
    ("someone/scans", "scene0000"),
    ("someone/scans", "scene0009"),
    ("someone/scans", "scene0010"),
])
def test_deny_listed_repository_or_room_is_refused_before_anything_is_written(
        tmp_path, fake_source, repository, room):
    mirror, commit, files = fake_source
    manifest = _manifest(tmp_path, commit, files, repository=repository, room=room)
    with pytest.raises(PcsegError, match="kept for independent evaluation"):
        rebuild.load_manifest(manifest)
    out = tmp_path / "out"
    assert rebuild.main(["--manifest", str(manifest), "--out", str(out), "--mirror", str(mirror)]) == 2
    assert not out.exists()


def test_files_sharing_an_output_are_merged_without_repeated_points(tmp_path):
    pieces = {"Area_2/office_3/Annotations/wall_0.txt": b"1.0 2.0 0.5 10 10 10\n1.0 2.1 0.5 10 10 10\n",
              "Area_2/office_3/Annotations/wall_1.txt": b"1.0 2.1 0.5 10 10 10\n1.0 2.2 0.5 10 10 10\n"}
    mirror, commit = _fake_snapshot(tmp_path, "someone/rooms", pieces)
    merged = b"1.0 2.0 0.5 10 10 10\n1.0 2.1 0.5 10 10 10\n1.0 2.2 0.5 10 10 10\n"
    out = "s3dis/Area_2/office_3/Annotations/wall_1.txt"
    files = [{"path": path, "out": out, "sha256": hashlib.sha256(data).hexdigest()}
             for path, data in pieces.items()]
    manifest = {"sources": {"fake": {"repository": "someone/rooms", "commit": commit, "licence": "test",
                                     "kind": "lidar"}},
                "rooms": [{"room": "Area_2/office_3", "source": "fake", "split": "val", "files": files,
                           "merged": {out: hashlib.sha256(merged).hexdigest()}}]}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(manifest))
    report = rebuild.rebuild(rebuild.load_manifest(path), tmp_path / "out", mirror, tmp_path, progress=False)
    assert report.written == [out]
    assert (tmp_path / "out" / out).read_bytes() == merged
    assert yaml.safe_load((tmp_path / "out" / "split.yaml").read_text())["s3dis"]["val"] == ["Area_2/office_3"]
    manifest["rooms"][0]["merged"][out] = "1" * 64
    path.write_text(yaml.safe_dump(manifest))
    report = rebuild.rebuild(rebuild.load_manifest(path), tmp_path / "out2", mirror, tmp_path, progress=False)
    assert "merged sha256" in report.refused[out] and not (tmp_path / "out2" / out).exists()


def test_deny_list_catches_names_inside_paths():
    assert rebuild.denied("a/b", "scannet/scene0009_02_vert.npy")
    assert rebuild.denied("a/b", "Stanford/Area_1/conferenceRoom_1/Annotations/chair_1.txt")
    assert rebuild.denied("a/b", "stanford_indoor3d/Area_1_conferenceRoom_1.npy")
    assert rebuild.denied("a/b", "s3dis/Area_1/conferenceRoom_2/Annotations/chair_1.txt") is None
    assert rebuild.denied("a/b", "scannet/scene0011_00_vert.npy")
    assert rebuild.denied("a/b", "scannet/scene0012_00_vert.npy") is None
    for room in ("office_1", "office_10", "office_11", "office_15", "office_21", "office_26", "office_31",
                 "office_35", "pantry_1", "hallway_4"):
        assert rebuild.denied("a/b", f"sem_seg/log6/dump/Area_6_{room}_pred.txt")
        assert rebuild.denied("a/b", f"ply/Area_6/{room}.ply")
    assert rebuild.denied("a/b", "Area_5/storage_3/Annotations/wall_1.txt")
    assert rebuild.denied("a/b", "ply/Area_6/office_12.ply") is None  # not office_1
    assert rebuild.denied("OrangeSodahub/Small-3D-Semantic-Segmentation-model")
    assert rebuild.denied("Wangningsen/FDU-PRML-2024-final-PJ")


def test_converted_copies_are_read_from_shared_and_checked(tmp_path):
    copy = tmp_path / "shared" / "rooms" / "Area_2" / "office_3.ply"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"ply converted bytes")
    entry = {"path": "dump/Area_2_office_3_pred.txt", "copy": "rooms/Area_2/office_3.ply",
             "out": "ply/Area_2/office_3.ply", "sha256": hashlib.sha256(copy.read_bytes()).hexdigest()}
    manifest = {"sources": {"dump": {"repository": "someone/dump", "commit": "a" * 40, "licence": "x",
                                     "kind": "lidar"}},
                "rooms": [{"room": "Area_2/office_3", "source": "dump", "split": "train", "files": [entry]}]}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(manifest))
    rooms = rebuild.load_manifest(path)
    report = rebuild.rebuild(rooms, tmp_path / "out", tmp_path / "no_mirror", tmp_path / "shared", progress=False)
    assert report.written == ["ply/Area_2/office_3.ply"]
    assert (tmp_path / "out" / "ply" / "Area_2" / "office_3.ply").read_bytes() == b"ply converted bytes"
    assert yaml.safe_load((tmp_path / "out" / "split.yaml").read_text())["ply"]["train"] == ["Area_2/office_3"]
    report = rebuild.rebuild(rooms, tmp_path / "out2", tmp_path / "no_mirror", tmp_path / "elsewhere",
                             progress=False)
    assert "no copy" in report.skipped["ply/Area_2/office_3.ply"]
    copy.write_bytes(b"changed")
    report = rebuild.rebuild(rooms, tmp_path / "out3", tmp_path / "no_mirror", tmp_path / "shared", progress=False)
    assert "sha256" in report.refused["ply/Area_2/office_3.ply"]
    assert not (tmp_path / "out3" / "ply").exists()


def test_output_inside_the_repository_is_refused(tmp_path, fake_source, capsys):
    mirror, commit, files = fake_source
    manifest = _manifest(tmp_path, commit, files)
    assert rebuild.main(["--manifest", str(manifest), "--out", str(PROJECT_ROOT / "data_here"),
                         "--mirror", str(mirror)]) == 2
    assert "outside the repository" in capsys.readouterr().err
    assert not (PROJECT_ROOT / "data_here").exists()


@pytest.mark.parametrize("change, message", [
    (lambda m: m["rooms"][0].update(split="test"), "split must be train or val"),
    (lambda m: m["sources"]["fake"].update(commit="abc"), "full 40-hex-digit hash"),
    (lambda m: m["rooms"][0]["files"][0].update(out="../escape.npy"), "relative path under"),
    (lambda m: m["rooms"][0].update(source="nope"), "unknown source"),
    (lambda m: m["rooms"][0].update(room="scene0102"), "does not belong to room scene0102"),
    (lambda m: m["rooms"].append(dict(m["rooms"][0], files=[])), "no files"),
    (lambda m: m["rooms"][0]["files"].append(m["rooms"][0]["files"][0]), "merged must give the sha256"),
    (lambda m: m["rooms"].append(dict(m["rooms"][0], files=[
        {"path": "x", "out": "scannet/scene0101_02_vert.npy", "sha256": "0" * 64}])), "listed twice"),
])
def test_bad_manifest_is_a_one_line_error(tmp_path, fake_source, change, message):
    mirror, commit, files = fake_source
    path = _manifest(tmp_path, commit, files)
    manifest = yaml.safe_load(path.read_text())
    change(manifest)
    path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(PcsegError, match=message):
        rebuild.load_manifest(path)


def test_shipped_manifest_is_valid_and_keeps_the_decided_scannet_split():
    rooms = {r.room: r for r in rebuild.load_manifest(rebuild.MANIFEST)}
    val = {"scene0002", "scene0005", "scene0008"}
    train = {"scene0001", "scene0003", "scene0004", "scene0006", "scene0007"}
    assert {n for n, r in rooms.items() if r.layout == "scannet" and r.split == "val"} >= val
    assert {n for n, r in rooms.items() if r.layout == "scannet" and r.split == "train"} >= train


def test_shipped_manifest_keeps_the_decided_lidar_split():
    rooms = {r.room: r for r in rebuild.load_manifest(rebuild.MANIFEST) if r.layout == "ply"}
    val = {"Area_6/office_4", "Area_6/office_13", "Area_6/office_24", "Area_6/office_29", "Area_6/office_34",
           "Area_6/copyRoom_1", "Area_3/hallway_3"}
    assert {n for n, r in rooms.items() if r.split == "val"} == val
    train = {n for n, r in rooms.items() if r.split == "train"}
    assert len(train) == 25 and "Area_4/hallway_5_crop" in train and "Area_6/office_7" in train


def test_shared_lidar_rooms_match_the_manifest():
    folder = SHARED / "realrooms" / "s3dis"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (the real S3DIS rooms are not in this checkout's shared folder)")
    entries = [f for r in rebuild.load_manifest(rebuild.MANIFEST) if r.layout == "ply" for f in r.files]
    assert len(entries) == len(list(folder.glob("*/*.ply")))
    for f in entries:
        assert rebuild.file_sha256(SHARED / f.copy) == f.sha256, f.copy


@pytest.mark.slow
def test_real_rebuild_from_the_fetched_snapshots_and_shared_copies(tmp_path):
    rooms = rebuild.load_manifest(rebuild.MANIFEST)
    reachable = [r for r in rooms if rebuild.mirror_git_dir(MIRROR, r.source.repository)
                 or (r.source.shared and (SHARED / r.source.shared).is_dir())
                 or all(f.copy and (SHARED / f.copy).is_file() for f in r.files)]
    if not reachable:
        pytest.skip(f"no source of the manifest under {MIRROR} or {SHARED}")
    report = rebuild.rebuild(reachable, tmp_path / "out", MIRROR, SHARED, progress=False)
    assert not report.refused
    on_disk = [r for r in reachable if all((tmp_path / "out" / f.out).is_file() for f in r.files)]
    assert on_disk, f"nothing rebuilt: {report.skipped}"
    for room in on_disk:
        for name in room.outputs():
            if name.endswith(".txt"):  # S3DIS annotations: x y z r g b, metres, z up
                points = np.loadtxt(tmp_path / "out" / name, ndmin=2)
                assert points.shape[1] == 6 and -1 < points[:, 2].min() and points[:, 2].max() < 6
        for f in room.files:
            if f.out.endswith("_vert.npy"):
                vert = np.load(tmp_path / "out" / f.out)
                labels = np.load(tmp_path / "out" / f.out.replace("_vert.npy", "_sem_label.npy"))
                assert vert.shape[1] >= 6 and len(vert) == len(labels)
                assert labels.max() <= 40
