"""scripts/gpu_train.sh and the packed rooms it carries: the pack round trip, and the dry run
(unpack, one tiny CPU epoch, the report), so the one-shot GPU training cannot rot between GPU runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pcseg.classes import S3DIS_CLASSES as CLASS_NAMES
from pcseg.config import load_config
from pcseg.data.compact import STEP, pack_caches, unpack_caches
from pcseg.data.rooms import load_index, load_room, write_index, write_room
from pcseg.data.sources import source_specs
from pcseg.errors import PcsegError

ROOT = Path(__file__).resolve().parents[1]


def _cache(root: Path, rooms: dict[str, int], seed: int) -> Path:
    """A cache of random labelled rooms ({"Area/room": points}), 4 x 3 x 2.5 m, at an offset."""
    rng = np.random.default_rng(seed)
    entries = []
    for rel, n in rooms.items():
        area, name = rel.split("/")
        xyz = rng.uniform(0, 1, (n, 3)) * [4, 3, 2.5] + [100.25, -7.5, 0.125]
        entries.append(write_room(root, area, name, xyz, rng.integers(0, 256, (n, 3)),
                                  rng.integers(0, len(CLASS_NAMES), n), len(CLASS_NAMES), source="test"))
    write_index(root, CLASS_NAMES, entries)
    return root


def test_pack_round_trip_keeps_rooms_to_half_a_millimetre(tmp_path):
    a = _cache(tmp_path / "a", {"Area_1/r1": 500, "Area_2/r2": 300}, 0)
    path = pack_caches({"a": a}, tmp_path / "pack.npz")
    roots = unpack_caches(path, tmp_path / "out")
    index, unpacked = load_index(a), load_index(roots["a"])
    assert [e["path"] for e in unpacked["rooms"]] == [e["path"] for e in index["rooms"]]
    for before, after in zip(index["rooms"], unpacked["rooms"]):
        assert after["class_counts"] == before["class_counts"] and after["source"] == "test"
        assert np.allclose(after["origin"], before["origin"])
        old, new = load_room(a, before), load_room(roots["a"], after)
        assert np.abs(np.asarray(old.xyz) - np.asarray(new.xyz)).max() <= STEP / 2 + 1e-5
        assert np.array_equal(old.rgb, new.rgb) and np.array_equal(old.labels, new.labels)


def test_pack_refuses_rooms_too_large_and_unpack_foreign_files(tmp_path):
    big = tmp_path / "big"
    write_index(big, CLASS_NAMES, [write_room(big, "A", "r", np.array([[0, 0, 0], [70.0, 0, 0]]),
                                              np.zeros((2, 3)), np.zeros(2), len(CLASS_NAMES))])
    with pytest.raises(PcsegError, match="too large to pack"):
        pack_caches({"big": big}, tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()
    (tmp_path / "bad.npz").write_bytes(b"not a pack")
    with pytest.raises(PcsegError, match="not a pack"):
        unpack_caches(tmp_path / "bad.npz", tmp_path / "out")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_dry_run_trains_one_tiny_epoch_and_reports(tmp_path):
    # one small random room for every room or area the default recipe names
    specs = source_specs(load_config("acnn_real_stage1")["data"])
    caches = {spec["name"]: _cache(tmp_path / spec["name"],
                                   {name if "/" in name else f"{name}/room": 200
                                    for name in spec["areas_train"] + spec["areas_val"]}, seed)
              for seed, spec in enumerate(specs)}
    pack = pack_caches(caches, tmp_path / "pack.npz")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out), OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "scripts/gpu_train.sh", "--dry-run", "--pack", str(pack)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu_train.json").read_text())
    assert report["ok"] and report["dry_run"] and report["config"] == "acnn_real_stage1"
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["unpack"]["rooms"] == {spec["name"]: len(spec["areas_train"]) + len(spec["areas_val"]) for spec in specs}
    assert steps["train"]["exit_code"] == 0 and not steps["train"]["stopped_by_budget"]
    assert report["checkpoints"] == ["best.pt", "last.pt"]
    assert "gpu_train: ok" in (out / "gpu_train.log").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_training_refuses_in_the_report(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path))
    proc = subprocess.run(["bash", "scripts/gpu_train.sh", "--pack", str(tmp_path / "absent.npz")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "no CUDA device" in json.loads((tmp_path / "gpu_train.json").read_text())["error"]


def test_a_staged_config_is_refused_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/gpu_train.py", "--pack-only", "--config", "acnn_real",
                           "--pack", str(tmp_path / "p.npz")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("gpu_train: error: acnn_real: a staged config")
    assert not (tmp_path / "p.npz").exists()
