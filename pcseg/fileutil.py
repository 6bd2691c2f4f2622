"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, a killed process leaves the previous
version intact, and an input file is never overwritten. A target that did not
exist when writing began is never replaced by the final rename (another program
may have written it meanwhile). A full, read-only or forbidden disk is a one-line
:class:`PcsegError` naming the path. Inside :func:`deferred_renames` finished files
wait for one :meth:`Renames.commit`, so a job of several processes leaves all of its
outputs or none.
"""

import contextlib
import contextvars
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Iterable, Optional

from .errors import PcsegError

#: errno values of a disk that cannot take a write: full, over quota, read-only, forbidden, file too large.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
#: errno values of a file system without hard links (the final rename then checks, then renames).
NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.EACCES})


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
def disk_errors(path: os.PathLike) -> Iterator[None]:
    """Turn an OSError of a full, read-only or forbidden disk (:data:`DISK_ERRNOS`) raised in the
    block into a one-line :class:`PcsegError` naming ``path``; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise PcsegError(f"{path}: cannot write ({exc.strerror})") from None


class Renames:
    """Finished temporary files waiting for their final rename (see :func:`deferred_renames`)."""

    def __init__(self):
        self.pending: list[tuple[Path, Path, bool]] = []

    def commit(self) -> None:
        """Rename every waiting file onto its target."""
        while self.pending:
            tmp, target, replace = self.pending.pop(0)
            _publish(tmp, target, replace)

    def discard(self) -> None:
        """Remove every waiting file."""
        while self.pending:
            self.pending.pop()[0].unlink(missing_ok=True)


_deferred: contextvars.ContextVar[Optional[Renames]] = contextvars.ContextVar("pcseg_deferred_renames", default=None)


@contextlib.contextmanager
def deferred_renames() -> Iterator[Renames]:
    """Inside the block :func:`atomic_path` keeps its finished temporary files instead of renaming
    them; :meth:`Renames.commit` renames them all, and leaving the block removes those not committed."""
    renames = Renames()
    token = _deferred.set(renames)
    try:
        yield renames
    finally:
        _deferred.reset(token)
        renames.discard()


@contextlib.contextmanager
def atomic_path(target: os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is untouched. The parent
    folder is created if missing. A ``target`` absent now is never replaced: if another
    program writes it meanwhile, PcsegError and the temporary file is removed.
    """
    target = Path(target)
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    replace = target.exists()
    deferred = _deferred.get()
    kept = False
    try:
        with disk_errors(target):
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        if deferred is not None:
            deferred.pending.append((tmp_path, target, replace))
            kept = True
        else:
            _publish(tmp_path, target, replace)
    finally:
        if not kept:
            tmp_path.unlink(missing_ok=True)


def _publish(tmp: Path, target: Path, replace: bool) -> None:
    """Rename ``tmp`` onto ``target``; unless ``replace``, never over a file that exists now
    (a hard link fails on one atomically; without hard links, checked then renamed)."""
    appeared = PcsegError(f"{target}: another program wrote it while this run did; it was left as it is")
    with disk_errors(target):
        if replace:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            tmp.unlink()
            raise appeared from None
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            if target.exists():
                tmp.unlink()
                raise appeared from None
            os.replace(tmp, target)
            return
        tmp.unlink()


def free_bytes(folder: os.PathLike) -> int:
    """Bytes free to this user on the disk holding ``folder`` (an existing folder)."""
    return shutil.disk_usage(folder).free


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (where a missing folder will be made)."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists():
        folder = folder.parent
    return folder


def check_free_space(needs: Iterable[tuple[os.PathLike, int]]) -> None:
    """Raise a one-line :class:`PcsegError` when the (folder, bytes to be written there) pairs of
    ``needs`` do not fit the free space of their disks (pairs on one disk add up); the message
    names the first folder of the disk that is short."""
    disks: dict[int, list] = {}
    for folder, size in needs:
        existing = _existing(Path(folder))
        disk = disks.setdefault(os.stat(existing).st_dev, [Path(folder), existing, 0])
        disk[2] += int(size)
    for folder, existing, size in disks.values():
        free = free_bytes(existing)
        if size > free:
            raise PcsegError(f"{folder}: about {_size(size)} will be written there, only {_size(free)} free on its disk")


def _size(nbytes: int) -> str:
    """``nbytes`` for people: 812 kB, 3.4 MB, 1.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"
