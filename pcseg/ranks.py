"""Processes started by ``torchrun``: who they are, how work is shared, and what they tell each other.

``torchrun --nproc_per_node P [--nnodes M ...] -m pcseg segment INPUTS -o DIR`` starts P x M
processes (ranks) with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; ``pcseg train`` and
``pcseg segment`` read them through :func:`start`. Without torchrun there is one rank and
nothing here communicates.

``pcseg segment`` gives each rank a share of the inputs (:meth:`Ranks.share`, balanced by
file size) and the tiles of every input too large for memory (:func:`pcseg.tiled.segment_tiled`),
each rank writes its own outputs, and rank 0 prints every input's report in
input order (:meth:`Ranks.report`, :meth:`Ranks.print_reports`). Errors found by any rank before anything is
written stop every rank (:meth:`Ranks.all_or_none`). An error later on any rank (:meth:`Ranks.stopping_together`)
is left in the job's store and the rank exits; torchrun then stops the other ranks (SIGTERM, within a second),
or a rank waiting for it in a collective sees it gone, and rank 0 prints the error as one line: every rank
exits non-zero and none prints a traceback of the process group.
"""

from __future__ import annotations

import atexit
import io
import os
import signal
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass
from typing import Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import PcsegError

T = TypeVar("T")

#: Key of the job's store holding the first error of any rank.
ERROR_KEY = "pcseg/error"


class PeersStopped(RuntimeError):
    """A collective failed because another rank left the job."""


def shared_error(message: str, rank: int) -> PcsegError:
    """A PcsegError known to every rank: printed by rank 0 only (``reported_elsewhere`` on the others)."""
    error = PcsegError(message)
    error.shared = True
    error.reported_elsewhere = rank != 0
    return error


def start(backend: Optional[str] = None) -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun (``WORLD_SIZE`` > 1).

    ``backend`` defaults to NCCL when CUDA is available, else gloo (gloo suffices for
    exchanging Python objects on any machine).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
        atexit.register(_leave)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _leave() -> None:
    """Leaves the process group at exit: left to the interpreter's teardown, gloo's threads can
    abort the process (``terminate called without an active exception``) after its work is done."""
    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Ranks:
    """This process's rank among ``world`` processes (``Ranks(0, 1)``: a plain run)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def start(cls) -> "Ranks":
        """The ranks of this run (joins a gloo group under torchrun)."""
        return cls(*start("gloo"))

    @property
    def is_first(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """``device`` for this rank: with several ranks on a CUDA machine, ``auto`` and ``cuda``
        become ``cuda:LOCAL_RANK`` (modulo the devices), so each process has its own GPU."""
        if self.world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', self.rank)) % torch.cuda.device_count()}"
        return device

    def share(self, items: Sequence[T], sizes: Sequence[float]) -> list[tuple[int, T]]:
        """This rank's (index, item) pairs, in input order: items go, largest ``sizes`` first,
        to the rank with the least work so far (ties: the lowest rank). Every rank computes
        the same split, so every item goes to exactly one rank."""
        load = [0.0] * self.world
        owner = [0] * len(items)
        for i in sorted(range(len(items)), key=lambda i: (-sizes[i], i)):
            owner[i] = min(range(self.world), key=lambda r: (load[r], r))
            load[owner[i]] += sizes[i]
        return [(i, item) for i, item in enumerate(items) if owner[i] == self.rank]

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (a picklable object; other ranks pass anything)."""
        if self.world == 1:
            return value
        box = [value]
        _collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def gather_all(self, value) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        _collective(dist.all_gather_object, values, value)
        return values

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world > 1:
            _collective(dist.barrier)

    @contextmanager
    def all_or_none(self):
        """Run a block on every rank; a :class:`PcsegError` in it on any rank is raised on every
        rank (the lowest rank's message, printed by rank 0), so no rank goes on to write when another failed."""
        error = None
        try:
            yield
        except PcsegError as exc:
            if self.world == 1:
                raise
            error = str(exc)
        first = next((e for e in self.gather_all(error) if e is not None), None)
        if first is not None:
            raise shared_error(first, self.rank)

    @contextmanager
    def stopping_together(self):
        """Run the rest of a job: an error of this rank is left in the job's store for rank 0 to print
        (a PcsegError is printed by rank 0 only; a bug keeps its traceback on its rank); a rank stopped
        by another's error (SIGTERM from torchrun, or a collective the other left) raises that error,
        printed by rank 0 only. From the first error on, SIGTERM is ignored so that the unwinding
        (temporary files, scratch folders, claims) completes."""
        if self.world == 1:
            yield
            return
        try:
            yield
        except BaseException as exc:
            with suppress(ValueError):  # not the main thread
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if getattr(exc, "shared", False):
                raise
            if isinstance(exc, Exception) and not isinstance(exc, PeersStopped):
                message = str(exc) if isinstance(exc, PcsegError) else f"rank {self.rank}: {type(exc).__name__}: {exc}"
                _store_error(message)
                if isinstance(exc, PcsegError):
                    raise shared_error(message, self.rank) from None
                raise
            message = _stored_error()
            if message is None and isinstance(exc, PeersStopped):
                message = "another process of the job stopped without a word (killed?)"
            if message is None:
                raise
            raise shared_error(message, self.rank) from None

    @contextmanager
    def report(self, reports: dict[int, str], index: int):
        """What the block prints: printed as it comes on a plain run; with several ranks kept
        as ``reports[index]`` for :meth:`print_reports`, so the ranks' reports do not interleave."""
        if self.world == 1:
            yield
            return
        with io.StringIO() as buffer, redirect_stdout(buffer):
            yield
            if buffer.getvalue():  # a rank that only helped with an input reports nothing for it
                reports[index] = buffer.getvalue()

    def print_reports(self, reports: dict[int, str], footer: str) -> None:
        """With several ranks: every rank's :meth:`report` texts reach rank 0, which prints them in
        input order, then ``footer``. A plain run has printed its reports already."""
        if self.world == 1:
            return
        gathered = [None] * self.world if self.is_first else None
        _collective(dist.gather_object, reports, gathered, dst=0)
        if self.is_first:
            merged = {i: text for part in gathered for i, text in part.items()}
            print("".join(merged[i] for i in sorted(merged)) + footer)


def _collective(function, *args, **kwargs):
    """``function(*args, **kwargs)``, a collective; :class:`PeersStopped` when another rank left."""
    try:
        return function(*args, **kwargs)
    except RuntimeError as exc:
        raise PeersStopped(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _store():
    """The job's key-value store (torchrun's), or None."""
    from torch.distributed import distributed_c10d

    try:
        return distributed_c10d._get_default_store()
    except (RuntimeError, ValueError):
        return None


def _store_error(message: str) -> None:
    """Leave ``message`` in the job's store unless an earlier error is there."""
    store = _store()
    if store is not None:
        with suppress(RuntimeError):
            store.compare_set(ERROR_KEY, "", message)


def _stored_error() -> Optional[str]:
    """The first error any rank left in the job's store, or None."""
    store = _store()
    if store is None:
        return None
    try:
        return store.get(ERROR_KEY).decode() if store.check([ERROR_KEY]) else None
    except RuntimeError:
        return None
