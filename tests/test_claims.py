"""One run per output: two runs racing for one output or one training run folder (one succeeds, the
other fails in one line before writing, nothing mixed); a dead run's claim is taken over; the final
rename never replaces a file another program wrote; a training run that cannot start leaves no folder."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import plyfile
import pytest
import yaml

from pcseg import claims
from pcseg.checkpoint import load_checkpoint
from pcseg.config import DATA_DEFAULTS
from pcseg.cli import main
from pcseg.errors import PcsegError
from pcseg.fileutil import atomic_path, deferred_renames
from test_interrupted import holds_claim, job, options, start, wait_for  # noqa: F401  (job: a fixture)
from test_train import cache, tiny_config  # noqa: F401  (cache: a fixture)

#: The S3DIS class table as `pcseg prepare ply --classes` reads it.
CLASSES = Path(__file__).resolve().parents[1] / "datasets" / "s3dis" / "classes.txt"


def hold_claim(path):
    """A process holding the claim on ``path`` until it is killed."""
    code = ("import sys, time; from pcseg.claims import claim; claim(sys.argv[1]); print('held', flush=True); "
            "time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    return process


def test_a_claimed_output_is_refused_in_one_line_and_a_dead_claim_is_taken_over(tmp_path, capsys):
    target = tmp_path / "new" / "out.ply"
    holder = hold_claim(target)
    with pytest.raises(PcsegError, match=rf"^{target}: another pcseg run \(pid {holder.pid} on .+\) is writing it; "):
        claims.claim(target)
    holder.kill()
    holder.wait()
    (tmp_path / "new" / ".out.ply.abc123.tmp").write_bytes(b"half")  # what an atomic write killed midway leaves
    held = claims.claim(target)
    assert f"pcseg: removed what an interrupted run (pid {holder.pid}) left for {target}: 1 temporary file, " \
           in capsys.readouterr().err
    assert claims.claim_file(target).read_text().startswith(f"pid {os.getpid()}\n")
    held.release()
    assert list((tmp_path / "new").iterdir()) == []
    claims.claim(tmp_path / "newer" / "deeper" / "out.ply").release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]  # folders made for a claim go with it


def test_two_segment_runs_on_one_output(job, tmp_path, capsys):
    """A tiled run holds its output from its start: a second run fails in one line and writes nothing;
    the first one's output is whole and its own."""
    room, checkpoint, reference = job
    out = tmp_path / "out.ply"
    first = start([str(room), "-o", str(out), *options(checkpoint)])
    assert wait_for(first, "claimed", out), first.communicate()[1]
    assert main(["segment", str(room), "-o", str(out), "--model", str(checkpoint), "--device", "cpu",
                 "--no-refine"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pcseg: error: {out}: another pcseg run (pid {first.pid} on ")
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    rows = plyfile.PlyData.read(str(out))["vertex"].data
    np.testing.assert_array_equal(rows["label"], reference["label"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ply"]


def test_two_training_runs_in_one_folder(cache, tmp_path, capsys):
    """The second `pcseg train` into a folder a run holds fails in one line before writing; the folder
    holds the first run's config and checkpoints only. Then the folder of a run that died (its claim
    left behind) resumes."""
    run = tmp_path / "run"
    first_config, second_config = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first_config.write_text(yaml.safe_dump(tiny_config(cache)))
    second_config.write_text(yaml.safe_dump(tiny_config(cache, seed=7, lr=0.01)))
    log = tmp_path / "first.log"
    first = subprocess.Popen([sys.executable, "-m", "pcseg", "train", "--config", str(first_config), "--out", str(run)],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                             stderr=log.open("w"))
    deadline = time.time() + 300
    while not holds_claim(run) and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, log.read_text()
    assert main(["train", "--config", str(second_config), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pcseg: error: {run}: another pcseg run (pid {first.pid} on ")
    assert first.wait(timeout=600) == 0, log.read_text()
    expected = yaml.safe_load(first_config.read_text())
    spelt_out = {**expected, "data": {**DATA_DEFAULTS, **expected["data"]}}  # every data setting, defaults too
    assert yaml.safe_load((run / "config.yaml").read_text()) == spelt_out
    assert load_checkpoint(run / "last.pt")["config"] == expected
    holder = hold_claim(run)  # a run that died holding the folder
    holder.kill()
    holder.wait()
    assert main(["train", "--config", "unused", "--out", str(run), "--resume"]) == 0
    assert not claims.claim_file(run).exists()


@pytest.mark.parametrize("command", ["eval", "export", "view", "prepare"])
def test_outputs_of_the_other_commands_are_claimed(job, cache, tmp_path, capsys, command):
    """eval --out, export, view --render and prepare's cache folder: an output another run holds is
    refused in one line, and nothing is written to it."""
    room, checkpoint, _ = job
    out = tmp_path / {"eval": "metrics.json", "export": "small.pt", "view": "room.png", "prepare": "cache"}[command]
    args = {"eval": ["eval", "--checkpoint", str(checkpoint), "--data", str(cache), "--out", str(out)],
            "export": ["export", str(checkpoint), str(out)],
            "view": ["view", str(room), "--render", str(out)],
            "prepare": ["prepare", "ply", str(room.parent), str(out), "--classes", str(CLASSES)]}[command]
    holder = hold_claim(out)
    try:
        assert main(args) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pcseg: error: {out}: another pcseg run (pid {holder.pid} on ")
    assert not out.exists()


def test_a_training_run_that_cannot_start_leaves_no_folder(cache, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(cache)))
    run = tmp_path / "runs" / "x"
    assert main(["train", "--config", str(config), "--set", f"data.root={tmp_path / 'missing'}", "--out", str(run)]) == 2
    assert capsys.readouterr().err.startswith("pcseg: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_the_final_rename_never_replaces_a_file_another_program_wrote(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(PcsegError, match="another program wrote it while this run did"):
        with atomic_path(target) as tmp:
            tmp.write_text("mine")
            target.write_text("theirs")
    assert target.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:  # a file there from the start is replaced (--overwrite)
        tmp.write_text("mine")
    assert target.read_text() == "mine"


def test_deferred_renames_publish_all_or_nothing(tmp_path):
    with deferred_renames() as renames:
        for name in ("a", "b"):
            with atomic_path(tmp_path / name) as tmp:
                tmp.write_text(name)
        assert not (tmp_path / "a").exists() and len(list(tmp_path.glob(".*.tmp"))) == 2
        renames.commit()
    assert (tmp_path / "a").read_text() == "a" and (tmp_path / "b").read_text() == "b"
    with deferred_renames():
        with atomic_path(tmp_path / "c") as tmp:
            tmp.write_text("c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
