"""pcseg segment under torchrun: inputs shared between ranks, outputs identical to one rank,
rank 0 alone prints the reports, and an error on any rank stops every rank before writing."""

import os
import subprocess
import sys

import numpy as np
import plyfile
import pytest

from conftest import untrained_checkpoint
from pcseg.cli import main
from pcseg.io import write_ply
from pcseg.ranks import Ranks


def test_share_balances_by_size_and_covers_every_item():
    items, sizes = list("abcd"), [10, 1, 1, 8]
    shares = [Ranks(r, 2).share(items, sizes) for r in range(2)]
    assert shares == [[(0, "a")], [(1, "b"), (2, "c"), (3, "d")]]
    four = [Ranks(r, 3).share(list(range(7)), [1] * 7) for r in range(3)]
    assert sorted(i for share in four for i, _ in share) == list(range(7))
    assert [len(s) for s in four] == [3, 2, 2]
    assert Ranks().share(items, sizes) == list(enumerate(items))


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Four small scans and an untrained PointNet checkpoint."""
    folder = tmp_path_factory.mktemp("job")
    rng = np.random.default_rng(0)
    scans = []
    for i in range(4):
        path = folder / f"scan{i}.ply"
        write_ply(path, rng.uniform(0, 2 + i, (1500 + 500 * i, 3)), rng.integers(0, 255, (1500 + 500 * i, 3), np.uint8))
        scans.append(str(path))
    return scans, str(untrained_checkpoint(folder / "model.pt", stride=1.0))


def torchrun(args, port):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(port), "-m", "pcseg", "segment", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def _labels(path):
    return np.asarray(plyfile.PlyData.read(str(path))["vertex"]["label"])


def test_two_gloo_ranks_write_what_one_rank_writes(job, tmp_path, capsys):
    scans, checkpoint = job
    assert main(["segment", *scans, "-o", str(tmp_path / "one"), "--model", checkpoint, "--device", "cpu"]) == 0
    result = torchrun([*scans, "-o", str(tmp_path / "two"), "--model", checkpoint, "--device", "cpu"], 29541)
    assert result.returncode == 0, result.stderr
    for scan in scans:
        name = f"{os.path.basename(scan)[:-4]}_labelled.ply"
        np.testing.assert_array_equal(_labels(tmp_path / "one" / name), _labels(tmp_path / "two" / name))
    reported = [line.split(" -> ")[0] for line in result.stdout.splitlines() if " -> " in line]
    assert reported == scans                                 # each once, in input order, one rank printing
    assert result.stdout.rstrip().splitlines()[-1].startswith("4 scans segmented by 2 processes in ")


def test_an_error_on_one_rank_stops_both_before_writing(job, tmp_path):
    scans, checkpoint = job
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n")
    out = tmp_path / "out"
    result = torchrun([*scans, str(broken), "-o", str(out), "--model", checkpoint, "--device", "cpu"], 29542)
    assert result.returncode != 0
    assert result.stderr.count("pcseg: error: ") == 1 and "broken.ply" in result.stderr  # rank 0's line
    assert "PcsegError" not in result.stderr                 # a one-line error (torchrun reports the exit)
    assert not out.exists()


#: ``pcseg segment`` with the model of rank FAIL_RANK failing on its first scan, the other rank's
#: taking ten minutes a scan unless stopped.
LATE_FAILURE = """
import os, sys, time
from pcseg import segment
from pcseg.cli import main
from pcseg.errors import PcsegError

def labels(self, cloud, progress=True, placement=None):
    if os.environ["RANK"] == os.environ["FAIL_RANK"]:
        raise PcsegError(f"{cloud.path}: found bad late")
    time.sleep(600)

segment.Segmenter.labels = labels
sys.exit(main())
"""


@pytest.mark.parametrize("failing", [0, 1])
def test_a_late_error_on_one_rank_stops_every_rank_in_one_line(job, tmp_path, failing):
    """The error reaches the user once, from rank 0; the other rank stops within seconds (not after its
    ten-minute scan); no output, temporary file or claim is left; no process group traceback."""
    scans, checkpoint = job
    script = tmp_path / "late.py"
    script.write_text(LATE_FAILURE)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FAIL_RANK": str(failing)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             str(29544 + failing), str(script), "segment", *scans, "-o", str(out), "--model", checkpoint,
                             "--device", "cpu"], env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines()  # random scans: no indoor scan, said per scan
              if line.startswith("pcseg: ") and "does not look like an indoor scan" not in line]
    assert len(errors) == 1 and errors[0].startswith("pcseg: error: ") and errors[0].endswith(": found bad late")
    for noise in ("gloo", "Connection closed", "PcsegError", "DistBackendError"):
        assert noise not in result.stderr
    assert not out.exists()


def test_two_ranks_share_the_tiles_of_one_large_scan(tmp_path):
    """One scan over --max-memory: both ranks segment tiles, rank 0 writes what one process writes."""
    from pcseg.data.synthetic import generate_room
    from pcseg.tiled import BASE_BYTES, TILE_BYTES_PER_POINT

    room = generate_room(3, kind="office", density=60)
    scan = tmp_path / "office.ply"
    write_ply(scan, room.xyz, room.rgb)
    budget = str(BASE_BYTES + 4000 * TILE_BYTES_PER_POINT)
    common = ["--model", "pointnet_synthetic", "--device", "cpu", "--max-memory", budget]
    assert main(["segment", str(scan), "-o", str(tmp_path / "one.ply"), *common]) == 0
    result = torchrun([str(scan), "-o", str(tmp_path / "two.ply"), *common], 29543)
    assert result.returncode == 0, result.stderr
    one, two = _labels(tmp_path / "one.ply"), _labels(tmp_path / "two.ply")
    np.testing.assert_array_equal(one, two)
    assert len(np.unique(one)) > 4
    assert [line.split(" -> ")[0] for line in result.stdout.splitlines() if " -> " in line] == [str(scan)]
    assert not list(tmp_path.glob(".pcseg_tiles_*"))
