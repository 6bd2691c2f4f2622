"""Processes started by ``torchrun``: who they are, how work is shared, and what they tell each other.

``torchrun --nproc_per_node P [--nnodes M ...] -m pcseg segment INPUTS -o DIR`` starts P x M
processes (ranks) with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; ``pcseg train`` and
``pcseg segment`` read them through :func:`start`. Without torchrun there is one rank and
nothing here communicates.

``pcseg segment`` gives each rank a share of the inputs (:meth:`Ranks.share`, balanced by
file size) and the tiles of every input too large for memory (:func:`pcseg.tiled.segment_tiled`),
each rank writes its own outputs, and rank 0 prints every input's report in
input order (:meth:`Ranks.report`, :meth:`Ranks.print_reports`). Errors found by any rank before anything is
written stop every rank (:meth:`Ranks.all_or_none`).
"""

from __future__ import annotations

import atexit
import io
import os
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import PcsegError

T = TypeVar("T")


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
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world > 1:
            dist.barrier()

    @contextmanager
    def all_or_none(self):
        """Run a block on every rank; a :class:`PcsegError` in it on any rank is raised on every
        rank (the lowest rank's message), so no rank goes on to write when another failed."""
        error = None
        try:
            yield
        except PcsegError as exc:
            if self.world == 1:
                raise
            error = str(exc)
        if self.world > 1:
            errors = [None] * self.world
            dist.all_gather_object(errors, error)
            first = next((e for e in errors if e is not None), None)
            if first is not None:
                raise PcsegError(first)

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
        dist.gather_object(reports, gathered, dst=0)
        if self.is_first:
            merged = {i: text for part in gathered for i, text in part.items()}
            print("".join(merged[i] for i in sorted(merged)) + footer)
