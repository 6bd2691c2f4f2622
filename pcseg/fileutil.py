"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, a killed process leaves the previous
version intact, and an input file is never overwritten.
"""

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Iterable

from .errors import PcsegError


def check_output_path(output: os.PathLike, *, inputs: Iterable[os.PathLike] = (),
                      overwrite: bool = False) -> Path:
    """Validate an output path before any work is done.

    Raises :class:`PcsegError` if ``output`` is one of ``inputs`` (never
    overwrite an input), if it exists and ``overwrite`` is false, or if it is a
    directory. Returns the path as a :class:`Path`.
    """
    out = Path(output)
    for inp in inputs:
        inp = Path(inp)
        if out.exists() and inp.exists() and out.resolve() == inp.resolve():
            raise PcsegError(f"refusing to overwrite the input file {inp}")
    if out.is_dir():
        raise PcsegError(f"output {out} is a directory, expected a file path")
    if out.exists() and not overwrite:
        raise PcsegError(f"output {out} exists (use --overwrite to replace it)")
    return out


@contextlib.contextmanager
def atomic_path(target: os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is untouched.
    The parent folder is created if missing.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
