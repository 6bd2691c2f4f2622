"""Output folders that cannot take the output: read-only or forbidden folders and disks without the
space for what will be written fail in one line naming the path, before the model runs; a disk that
fills up while writing fails in one line too; nothing is left behind."""

import errno
import os

import pytest

from pcseg import claims, fileutil, infer, segment
from pcseg.cli import main
from test_interrupted import BUDGET, job  # noqa: F401  (job: a fixture)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the model runs."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model ran")
    monkeypatch.setattr(segment.Segmenter, "probabilities", refuse)
    monkeypatch.setattr(infer, "predict_probabilities", refuse)  # the tiled path's


def segment_args(job, out, *extra):
    room, checkpoint, _ = job
    return ["segment", str(room), "-o", str(out), "--model", str(checkpoint), "--device", "cpu", "--up", "z", *extra]


def one_error_line(capsys) -> str:
    """The one line the run printed on stderr besides its progress bars."""
    lines = [line for line in capsys.readouterr().err.split("\n") if line and "\r" not in line]
    assert len(lines) == 1 and lines[0].startswith("pcseg: error: "), lines
    return lines[0]


@pytest.mark.parametrize("how", ["permissions", "read-only file system"])
def test_an_output_folder_that_cannot_be_written(job, tmp_path, capsys, monkeypatch, no_model, how):
    folder = tmp_path / "locked"
    folder.mkdir()
    if how == "permissions":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder.chmod(0o555)
    else:  # as a read-only mount answers (no mount here)
        real_open = os.open

        def read_only(path, flags, *args):
            if str(path).startswith(str(folder)) and flags & os.O_CREAT:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(claims.os, "open", read_only)
    assert main(segment_args(job, folder / "out.ply")) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"pcseg: error: {folder}: cannot write (")
    folder.chmod(0o755)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("tiled", [False, True])
def test_too_little_free_space_fails_before_the_model(job, tmp_path, capsys, monkeypatch, no_model, tiled):
    monkeypatch.setattr(fileutil, "free_bytes", lambda folder: 50_000)
    out = tmp_path / "out.ply"
    extra = ["--max-memory", BUDGET] if tiled else []
    assert main(segment_args(job, out, *extra)) == 2
    line = one_error_line(capsys)
    # the tiled run's scratch folder (in the output's folder) is named first; it is removed
    assert line.startswith(f"pcseg: error: {tmp_path / '.pcseg_tiles_out.ply.' if tiled else tmp_path}")
    assert "will be written there, only 50.0 kB free on its disk" in line
    assert list(tmp_path.iterdir()) == []


def test_scratch_space_is_counted_where_the_scratch_goes(job, tmp_path, capsys, monkeypatch):
    scratch, out = tmp_path / "scratch", tmp_path / "out" / "out.ply"
    scratch.mkdir()
    assert main(segment_args(job, out, "--max-memory", BUDGET, "--scratch", str(tmp_path / "missing"))) == 2
    assert one_error_line(capsys) == f"pcseg: error: {tmp_path / 'missing'}: the scratch folder does not exist"
    asked = []
    monkeypatch.setattr(fileutil, "free_bytes", lambda folder: asked.append(folder) or 10**12)
    assert main(segment_args(job, out, "--max-memory", BUDGET, "--scratch", str(scratch))) == 0
    assert asked and all(str(f).startswith((str(scratch), str(tmp_path / "out"))) for f in asked)
    assert list(scratch.iterdir()) == [] and sorted(p.name for p in out.parent.iterdir()) == ["out.ply"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_disk_that_fills_up_while_writing(job, tmp_path, capsys, monkeypatch, code):
    """The free-space estimate passed but the write fails (a disk filled meanwhile, a folder made
    read-only): one line, no output, no temporary file, no claim."""
    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fileutil.os, "fsync", full)
    out = tmp_path / "out.ply"
    assert main(segment_args(job, out, "--no-refine")) == 2
    assert one_error_line(capsys) == f"pcseg: error: {out}: cannot write ({os.strerror(code)})"
    assert list(tmp_path.iterdir()) == []
