"""Runs that end early leave nothing behind: Ctrl-C and SIGTERM unwind (scratch folder, temporary
output and claim removed), and after kill -9 the next run on the output removes what is left, says
so in one line, and writes what an uninterrupted run writes."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import plyfile
import pytest

from conftest import untrained_checkpoint
from pcseg import tiled
from pcseg.claims import claim_file
from pcseg.cli import main
from pcseg.data.synthetic import generate_room
from pcseg.io import write_ply

#: A budget of about 1,500 points a tile: a dozen model tiles for the room below.
BUDGET = str(tiled.BASE_BYTES + 1500 * tiled.TILE_BYTES_PER_POINT)


#: The job, made once a session for every module that imports the fixture.
_JOB = {}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """(room PLY of about 7,000 points, untrained PointNet checkpoint, the uninterrupted tiled run's rows)."""
    if not _JOB:
        _JOB["job"] = _make_job(tmp_path_factory.mktemp("job"))
    return _JOB["job"]


def _make_job(folder):
    """The job of :func:`job`, its files in ``folder``."""
    cloud = generate_room(3, kind="office", density=60)
    room = folder / "room.ply"
    write_ply(room, cloud.xyz, cloud.rgb)
    checkpoint = untrained_checkpoint(folder / "model.pt")
    reference = folder / "reference.ply"
    assert main(["segment", str(room), "-o", str(reference), *options(checkpoint)]) == 0
    return room, checkpoint, _rows(reference)


def options(checkpoint):
    return ["--model", str(checkpoint), "--device", "cpu", "--max-memory", BUDGET]


def _rows(path):
    return plyfile.PlyData.read(str(path))["vertex"].data


def start(args, **popen):
    """A ``pcseg segment`` process."""
    return subprocess.Popen([sys.executable, "-m", "pcseg", "segment", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)


def scratch_of(output):
    """The scratch folders of runs on ``output`` (in its folder)."""
    return list(output.parent.glob(f".pcseg_tiles_{output.name}.*"))


def holds_claim(path) -> bool:
    """The claim on ``path`` is locked and written (its pid line): the claim file alone exists from
    the moment it is opened, before its lock is taken, and a second run that locks it first wins."""
    with contextlib.suppress(FileNotFoundError):
        return "pid " in claim_file(path).read_text()
    return False


#: Points of a tiled run, each a test of the files beside the output ``out``.
POINTS = {
    "claimed": holds_claim,
    "scratch made": lambda out: bool(scratch_of(out)),
    "tiles split": lambda out: any(any(s.glob("grid1_tile*.bin")) for s in scratch_of(out)),
    "model tiles run": lambda out: any((s / "grid1_tile0.bin").exists() and not (s / "grid0_tile0.bin").exists()
                                       for s in scratch_of(out)),
    "output being written": lambda out: bool(list(out.parent.glob(f".{out.name}.*.tmp"))),
}


def wait_for(process, point, out, timeout=600):
    """Wait until ``POINTS[point]`` holds for ``out`` while ``process`` runs; False when it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if POINTS[point](out):
            return True
        time.sleep(0.002)
    return False


def descendants(pid):
    """The pids of every process below ``pid``."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def nothing_left(folder, *keep):
    """Every file of ``folder`` is one of ``keep``: no scratch, temporary output or claim."""
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


def kill_then_rerun(job, tmp_path, capsys, point):
    """kill -9 at ``point``, then a rerun: the uninterrupted run's rows, and nothing else left."""
    room, checkpoint, reference = job
    out = tmp_path / "out.ply"
    for _ in range(5):  # a point passed between two looks, or between the look and the kill, is tried again
        process = start([str(room), "-o", str(out), *options(checkpoint)])
        reached = wait_for(process, point, out)
        process.kill()
        process.wait()
        reached = reached and not out.exists()  # the output was renamed in place before the kill landed
        if reached:
            break
        out.unlink(missing_ok=True)
    assert reached, f"the run ended five times before it was killed at {point}"
    assert claim_file(out).exists() and not out.exists()     # what kill -9 leaves
    left_scratch = bool(scratch_of(out))
    capsys.readouterr()
    assert main(["segment", str(room), "-o", str(out), *options(checkpoint)]) == 0
    err = capsys.readouterr().err
    if left_scratch:
        assert f"pcseg: removed what an interrupted run (pid {process.pid}) left for {out}: " in err
    rows = _rows(out)
    assert rows.dtype == reference.dtype
    for name in reference.dtype.names:
        np.testing.assert_allclose(rows[name], reference[name], rtol=0, atol=1e-5 if name == "confidence" else 0)
    assert nothing_left(tmp_path, "out.ply")


def test_kill_9_then_a_rerun_cleans_up_and_writes_the_whole_output(job, tmp_path, capsys):
    kill_then_rerun(job, tmp_path, capsys, "tiles split")


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_kill_9_at_each_point_of_a_tiled_run(job, tmp_path, capsys, point):
    kill_then_rerun(job, tmp_path, capsys, point)


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_and_ctrl_c_remove_scratch_temporary_output_and_claim(job, tmp_path, signum):
    room, checkpoint, _ = job
    out = tmp_path / "out.ply"
    process = start([str(room), "-o", str(out), *options(checkpoint)])
    assert wait_for(process, "tiles split", out), process.communicate()[1]
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == (143 if signum == signal.SIGTERM else 130)
    assert err.splitlines()[-1] == ("pcseg: terminated" if signum == signal.SIGTERM else "pcseg: interrupted")
    assert "Traceback" not in err
    assert nothing_left(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["tiles split", "model tiles run"])
def test_kill_9_of_a_two_rank_job_then_a_rerun(job, tmp_path, capsys, point):
    """The whole torchrun job killed (-9, every process): the rerun cleans up and writes the whole output."""
    room, checkpoint, reference = job
    out = tmp_path / "out.ply"
    process = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                "--master_port", "29561", "-m", "pcseg", "segment", str(room), "-o", str(out),
                                *options(checkpoint)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reached = wait_for(process, point, out)
    for pid in [process.pid, *descendants(process.pid)]:  # torchrun and its ranks, as a job killed
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # the ranks' ends reach the kernel
    assert reached, f"the job ended before {point}"
    assert scratch_of(out)
    capsys.readouterr()
    assert main(["segment", str(room), "-o", str(out), *options(checkpoint)]) == 0
    assert f"pcseg: removed what an interrupted run (pid " in capsys.readouterr().err
    np.testing.assert_array_equal(_rows(out)["label"], reference["label"])
    assert nothing_left(tmp_path, "out.ply")
