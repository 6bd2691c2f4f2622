"""Compiled point-cloud ops: farthest point sampling, kNN and ring (annulus) kNN.

Each op is a ``torch.ops.pcseg.*`` operator with a CPU (C++/OpenMP) and a CUDA
kernel behind one schema; the functions here validate their arguments, fill in
defaults and document the semantics (see also ``docs/OPS.md``). Fake kernels
are registered so ``torch.compile(fullgraph=True)`` can trace callers.

Conventions shared by all ops:

* clouds are batched and padded: ``(B, N, 3)`` float32 or float64, in metres;
  optional ``lengths (B,)`` (int64) say how many leading rows of each cloud are
  real, the rest is padding and is never read or returned;
* every distance is the squared Euclidean distance computed in the input dtype
  as ``(dx*dx + dy*dy) + dz*dz`` (no fused multiply-add), identically on CPU
  and CUDA;
* ties always go to the lowest index; returned indices are int64 positions in
  the (padded) cloud, ``-1`` marks an empty slot.
"""

from __future__ import annotations

import math

import torch

from . import _C  # noqa: F401  (loading the extension registers torch.ops.pcseg.*)

__all__ = ["fps", "knn", "ring_knn", "build_info"]

_FLOAT_DTYPES = (torch.float32, torch.float64)


def build_info() -> dict:
    """What the extension was compiled with: ``openmp``, ``omp_threads``, ``cuda``, ``cuda_archs``."""
    return dict(_C.build_info())


# --------------------------------------------------------------------------- validation

def _check_cloud(name: str, xyz) -> None:
    if not isinstance(xyz, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(xyz).__name__}")
    if xyz.dim() != 3 or xyz.shape[2] != 3:
        raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(xyz.shape)}")
    if xyz.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {xyz.dtype}")
    if xyz.shape[0] == 0 or xyz.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(xyz.shape)}")


def _lengths(name: str, lengths, xyz: torch.Tensor, minimum: int) -> torch.Tensor:
    """Validated int64 lengths on xyz's device (all N when None)."""
    batch, n = xyz.shape[0], xyz.shape[1]
    if lengths is None:
        return torch.full((batch,), n, dtype=torch.int64, device=xyz.device)
    if not isinstance(lengths, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or None, got {type(lengths).__name__}")
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.dtype != torch.int64:
        raise ValueError(f"{name} must be int64, got {lengths.dtype}")
    if lengths.device != xyz.device:
        raise ValueError(f"{name} is on {lengths.device} but the cloud is on {xyz.device}")
    if not _is_fake(lengths):
        low, high = int(lengths.min()), int(lengths.max())
        if low < minimum or high > n:
            raise ValueError(f"{name} must lie in [{minimum}, {n}], got values in [{low}, {high}]")
    return lengths.contiguous()


def _is_fake(t: torch.Tensor) -> bool:
    """True while tracing (fake/meta tensors carry no values to check)."""
    return t.device.type == "meta" or type(t).__name__ == "FakeTensor" or torch.compiler.is_compiling()


def _check_finite(name: str, xyz: torch.Tensor, lengths: torch.Tensor) -> None:
    if _is_fake(xyz):
        return
    bad = ~torch.isfinite(xyz).all(dim=2)
    rows = torch.arange(xyz.shape[1], device=xyz.device)
    bad &= rows[None, :] < lengths[:, None]
    if bool(bad.any()):
        b, i = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{name} has a non-finite coordinate (first at batch {b}, point {i})")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_pair(query, ref, query_lengths, ref_lengths, k):
    _check_cloud("query", query)
    _check_cloud("ref", ref)
    if query.shape[0] != ref.shape[0]:
        raise ValueError(f"query and ref batch sizes differ: {query.shape[0]} vs {ref.shape[0]}")
    if query.dtype != ref.dtype:
        raise ValueError(f"query and ref dtypes differ: {query.dtype} vs {ref.dtype}")
    if query.device != ref.device:
        raise ValueError(f"query is on {query.device} but ref is on {ref.device}")
    _check_int("k", k, 1)
    qlen = _lengths("query_lengths", query_lengths, query, 0)
    rlen = _lengths("ref_lengths", ref_lengths, ref, 1)
    query, ref = query.contiguous(), ref.contiguous()
    _check_finite("query", query, qlen)
    _check_finite("ref", ref, rlen)
    return query, ref, qlen, rlen


# --------------------------------------------------------------------------- ops

def fps(xyz: torch.Tensor, num_samples: int, lengths: torch.Tensor | None = None,
        start_idx: int = 0) -> torch.Tensor:
    """Exact farthest point sampling.

    Args:
        xyz: (B, N, 3) float32/float64 points.
        num_samples: M >= 1 points to pick per cloud; must not exceed any cloud's length.
        lengths: optional (B,) int64 number of real points per cloud (default N).
        start_idx: index of the first sample in every cloud (< every length).

    Returns:
        (B, M) int64 indices. Sample 0 is ``start_idx``; sample s is the point
        farthest (largest squared distance) from samples 0..s-1, ties to the
        lowest index. Identical on CPU and CUDA.
    """
    _check_cloud("xyz", xyz)
    _check_int("num_samples", num_samples, 1)
    _check_int("start_idx", start_idx, 0)
    lengths = _lengths("lengths", lengths, xyz, 1)
    shortest = xyz.shape[1] if _is_fake(lengths) else int(lengths.min())
    if num_samples > shortest:
        raise ValueError(f"num_samples={num_samples} exceeds the number of points ({shortest})")
    if start_idx >= shortest:
        raise ValueError(f"start_idx={start_idx} is not a point of every cloud (shortest has {shortest})")
    xyz = xyz.contiguous()
    _check_finite("xyz", xyz, lengths)
    return torch.ops.pcseg.fps(xyz, num_samples, lengths, start_idx)


def knn(query: torch.Tensor, ref: torch.Tensor, k: int, query_lengths: torch.Tensor | None = None,
        ref_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of every query point among the reference points.

    Args:
        query: (B, M, 3) float32/float64 query points.
        ref: (B, N, 3) reference points, same dtype and device.
        k: neighbours per query, any k >= 1.
        query_lengths / ref_lengths: optional (B,) int64 real lengths (ref >= 1).

    Returns:
        ``(dist2, idx)``, each (B, M, k): squared distances (input dtype) and
        int64 indices into ref, sorted ascending, ties by lowest index. Slots
        beyond the cloud's number of reference points, and every slot of a
        padding query row, hold ``idx = -1`` and ``dist2 = +inf``.
    """
    query, ref, qlen, rlen = _check_pair(query, ref, query_lengths, ref_lengths, k)
    return torch.ops.pcseg.knn(query, ref, k, qlen, rlen)


def ring_knn(query: torch.Tensor, ref: torch.Tensor, k: int, r_inner: float, r_outer: float,
             query_lengths: torch.Tensor | None = None,
             ref_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A-CNN's annular neighbourhood: the k nearest ref points with ``r_inner <= d < r_outer``.

    Membership is tested on squared distances, ``r_inner**2 <= dist2 < r_outer**2``,
    with the radii converted to the input dtype before squaring.

    Args:
        query: (B, M, 3) float32/float64 centres.
        ref: (B, N, 3) reference points, same dtype and device.
        k: ring size, k >= 1.
        r_inner, r_outer: radii in metres, ``0 <= r_inner < r_outer``, finite.
        query_lengths / ref_lengths: optional (B,) int64 real lengths (ref >= 1).

    Returns:
        ``(idx, count)``: idx (B, M, k) int64 ring members sorted by distance
        (ties by lowest index); count (B, M) int64 number of real members.
        When fewer than k members exist the remaining slots repeat the first
        member; an empty ring (count 0) is filled with the nearest ref point of
        the whole cloud, which is the centre itself when the query point belongs
        to the cloud. Padding query rows hold ``-1`` and count 0.
    """
    for name, value in (("r_inner", r_inner), ("r_outer", r_outer)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not 0 <= r_inner < r_outer:
        raise ValueError(f"need 0 <= r_inner < r_outer, got r_inner={r_inner}, r_outer={r_outer}")
    query, ref, qlen, rlen = _check_pair(query, ref, query_lengths, ref_lengths, k)
    return torch.ops.pcseg.ring_knn(query, ref, k, float(r_inner), float(r_outer), qlen, rlen)


# --------------------------------------------------------------------------- fake kernels

@torch.library.register_fake("pcseg::fps")
def _fps_fake(xyz, num_samples, lengths, start_idx):
    return xyz.new_empty((xyz.shape[0], num_samples), dtype=torch.int64)


@torch.library.register_fake("pcseg::knn")
def _knn_fake(query, ref, k, query_lengths, ref_lengths):
    shape = (query.shape[0], query.shape[1], k)
    return query.new_empty(shape), query.new_empty(shape, dtype=torch.int64)


@torch.library.register_fake("pcseg::ring_knn")
def _ring_knn_fake(query, ref, k, r_inner, r_outer, query_lengths, ref_lengths):
    return (query.new_empty((query.shape[0], query.shape[1], k), dtype=torch.int64),
            query.new_empty((query.shape[0], query.shape[1]), dtype=torch.int64))
