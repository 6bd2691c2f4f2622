"""One run per output: a run claims every path it will write before it does any work.

The claim on ``DIR/NAME`` (an output file, or a training run's folder) is the file
``DIR/.NAME.pcseg-run``, locked (``flock``) for as long as the run lives and holding its pid,
host and the scratch folders it makes for that path. A second run on the path fails in one
line. The kernel drops the lock when a process dies, however it dies, so a claim file found
unlocked is a dead run's: what that run left for the path (its temporary outputs, the scratch
folders its claim lists) is removed and said in one line. Making the claim file is also the
check that the output folder is writable, done before any work.

A claim is released at every exit the interpreter sees (success, error, Ctrl-C, SIGTERM: see
:mod:`pcseg.cli`): the claim file is removed, and so are the folders made for it if they are
still empty. ``kill -9`` leaves the claim file, which the next run on the path cleans up.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import PcsegError
from .fileutil import disk_errors

CLAIM_SUFFIX = ".pcseg-run"

#: The claims this process holds, by absolute path claimed.
_held: dict[Path, "Claim"] = {}


def claim_file(path: os.PathLike) -> Path:
    """The claim file of ``path``: ``.NAME.pcseg-run`` beside it."""
    path = Path(os.path.abspath(path))
    return path.parent / f".{path.name}{CLAIM_SUFFIX}"


def output_leftovers(path: Path) -> list[Path]:
    """The temporary files :func:`pcseg.fileutil.atomic_path` makes for the output file ``path``."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def folder_leftovers(path: Path) -> list[Path]:
    """The temporary files :func:`pcseg.fileutil.atomic_path` makes inside the folder ``path``."""
    return sorted(path.rglob(".*.tmp")) if path.is_dir() else []


class Claim:
    """A held claim on ``path`` (see the module docstring); ``leftovers(path)`` lists the temporary
    files written for it."""

    def __init__(self, path: Path, fd: int, made: list[Path], leftovers: Callable[[Path], list[Path]]):
        self.path, self._fd, self._made, self._leftovers = path, fd, made, leftovers
        self.scratch: list[Path] = []

    def add_scratch(self, folder: Path) -> None:
        """Record ``folder`` (a scratch folder about to be made for the path) in the claim file, so
        that a run finding this claim dead removes it."""
        self.scratch.append(Path(os.path.abspath(folder)))
        os.write(self._fd, f"scratch {self.scratch[-1]}\n".encode())
        os.fsync(self._fd)

    def release(self) -> None:
        """Remove the temporary files still there for the path (the run's other processes', when it
        failed), the claim file (its lock goes with the descriptor) and the folders made for it that
        stayed empty."""
        _held.pop(self.path, None)
        for file in self._leftovers(self.path):
            file.unlink(missing_ok=True)
        claim_file(self.path).unlink(missing_ok=True)
        os.close(self._fd)
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def claim(path: os.PathLike, leftovers: Callable[[Path], list[Path]] = output_leftovers) -> Claim:
    """Claim ``path`` for this process, making its missing parent folders.

    Raises :class:`PcsegError` (one line) when another live run holds it or its folder cannot be
    written. A dead run's claim: its leftovers (``leftovers(path)`` and the scratch folders it
    lists) are removed and reported on stderr.
    """
    path = Path(os.path.abspath(path))
    if path in _held:
        raise PcsegError(f"{path}: this run writes it twice")
    made = _make_folders(path.parent)
    try:
        fd, record = _lock(claim_file(path))
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    held = _held[path] = Claim(path, fd, made, leftovers)
    _remove_leftovers(path, record, leftovers(path))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"pid {os.getpid()}\nhost {socket.gethostname()}\n".encode())
    return held


def held(path: os.PathLike) -> Claim | None:
    """This process's claim on ``path``, or None."""
    return _held.get(Path(os.path.abspath(path)))


@contextlib.contextmanager
def claimed(paths: Iterable[os.PathLike], leftovers: Callable[[Path], list[Path]] = output_leftovers
            ) -> Iterator[list[Claim]]:
    """Claim every path of ``paths`` this process does not hold yet, release those at the end."""
    mine: list[Claim] = []
    try:
        for path in paths:
            if held(path) is None:
                mine.append(claim(path, leftovers))
        yield [held(path) for path in paths]
    finally:
        for one in reversed(mine):
            one.release()


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the folders made, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    with disk_errors(missing[-1] if missing else folder):
        for made in reversed(missing):
            made.mkdir()
    return missing[::-1]


def _lock(file: Path) -> tuple[int, dict]:
    """(descriptor of ``file`` locked by this process, the record a previous run left in it)."""
    while True:
        with disk_errors(file.parent):
            fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        record = _read_record(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = f"pid {record.get('pid', '?')} on {record.get('host', '?')}"
            target = file.parent / file.name[1:-len(CLAIM_SUFFIX)]
            raise PcsegError(f"{target}: another pcseg run ({holder}) is writing it; "
                             f"wait for it to end or choose another output") from None
        try:
            same = os.stat(file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else its owner removed it between our open and our lock: try again
            return fd, _read_record(fd)
        os.close(fd)


def _read_record(fd: int) -> dict:
    """The claim record of ``fd``: ``pid`` and ``host`` (str), ``scratch`` (list of folders)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = b""
    while chunk := os.read(fd, 65536):
        text += chunk
    record: dict = {"scratch": []}
    for line in text.decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "scratch":
            record["scratch"].append(Path(value))
        elif key in ("pid", "host"):
            record[key] = value
    return record


def _remove_leftovers(path: Path, record: dict, temporary: list[Path]) -> None:
    """Remove a dead run's ``temporary`` files and the scratch folders its ``record`` lists; one
    line on stderr when there was anything."""
    scratch = [folder for folder in record["scratch"] if folder.exists()]
    if not scratch and not temporary:
        return
    size = sum(p.stat().st_size for p in temporary if p.is_file())
    for folder in scratch:
        size += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder, ignore_errors=True)
    for file in temporary:
        file.unlink(missing_ok=True)
    who = f" (pid {record['pid']})" if "pid" in record else ""
    parts = [f"{len(temporary)} temporary file{'s' * (len(temporary) != 1)}"] if temporary else []
    parts += [f"{len(scratch)} scratch folder{'s' * (len(scratch) != 1)}"] if scratch else []
    print(f"pcseg: removed what an interrupted run{who} left for {path}: {' and '.join(parts)}, "
          f"{size / 1e6:.1f} MB", file=sys.stderr)
