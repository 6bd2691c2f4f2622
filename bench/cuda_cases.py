"""The GPU cases of bench/bench_ops.py (``--device cuda``): pcseg's CUDA kernels against the
best GPU peers importable here and plain-torch GPU baselines, in one process.

Peers, each only when importable: torch-cluster (``fps``, ``knn``), pytorch3d
(``sample_farthest_points``, ``knn_points``). Always: plain torch on the GPU, written the
usual way: an FPS loop (min-update of every distance, arg-max; no host sync), kNN as
chunked ``cdist`` + ``topk``, ring kNN as chunked ``cdist``, annulus mask, ``topk``. The
baselines are not exact (``cdist`` uses a matrix product) and have no fill rules; the notes
give how many neighbours agree with pcseg's. Brute-force peers on 1M points are timed on
the first 65,536 queries and scaled to all queries, and say so.
"""

from __future__ import annotations

import time

import numpy as np
import torch

#: Brute-force peers on larger clouds are timed on this many queries and scaled.
SUBSET_QUERIES = 65_536
#: Largest distance block one cdist chunk may hold, in elements.
CHUNK_ELEMENTS = 1 << 31


def cuda_timed(fn, repeats: int) -> float:
    """Median wall time of fn() in milliseconds, GPU work included, after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        runs.append(time.perf_counter() - start)
    return sorted(runs)[len(runs) // 2] * 1e3


def torch_loop_fps(x: torch.Tensor, m: int) -> torch.Tensor:
    """Plain-torch FPS of every cloud of x (B, N, 3) at once, on x's device: (B, m) int64."""
    batch = torch.arange(x.shape[0], device=x.device)
    out = torch.zeros(x.shape[0], m, dtype=torch.int64, device=x.device)
    dist = torch.full(x.shape[:2], float("inf"), device=x.device, dtype=x.dtype)
    last = out[:, 0]
    for s in range(1, m):
        dist = torch.minimum(dist, ((x - x[batch, last][:, None]) ** 2).sum(-1))
        last = dist.argmax(dim=1)
        out[:, s] = last
    return out


def _chunks(query: torch.Tensor, ref: torch.Tensor):
    """(start, stop) slices of the queries such that one (B, chunk, N) distance block fits."""
    step = max(1, CHUNK_ELEMENTS // (ref.shape[0] * ref.shape[1]))
    return [(s, min(s + step, query.shape[1])) for s in range(0, query.shape[1], step)]


def torch_cdist_knn(query: torch.Tensor, ref: torch.Tensor, k: int):
    """Plain-torch kNN: (dist2, idx), each (B, M, k), by chunked cdist + topk."""
    parts = [torch.cdist(query[:, a:b], ref).square().topk(k, dim=-1, largest=False) for a, b in _chunks(query, ref)]
    return torch.cat([p.values for p in parts], 1), torch.cat([p.indices for p in parts], 1)


def torch_ring_knn(query: torch.Tensor, ref: torch.Tensor, k: int, r_inner: float, r_outer: float) -> torch.Tensor:
    """Plain-torch annulus kNN: idx (B, M, k) of the k nearest with r_inner <= d < r_outer (no fill rule)."""
    out = []
    for a, b in _chunks(query, ref):
        d = torch.cdist(query[:, a:b], ref)
        d.masked_fill_((d < r_inner) | (d >= r_outer), float("inf"))
        out.append(d.topk(k, dim=-1, largest=False).indices)
    return torch.cat(out, 1)


def _batch_vector(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, N, 3) as torch-cluster's flat points and batch vector."""
    return x.reshape(-1, 3), torch.arange(x.shape[0], device=x.device).repeat_interleave(x.shape[1])


def fps_peers(x: torch.Tensor, m: int) -> list[tuple[str, object, str]]:
    """(name, callable, note) of the FPS peers importable here, plain torch last."""
    peers = []
    try:
        import torch_cluster

        flat, batch = _batch_vector(x)
        peers.append(("torch-cluster fps", lambda: torch_cluster.fps(flat, batch, ratio=m / x.shape[1],
                                                                    random_start=False), ""))
    except ImportError:
        peers.append(("torch-cluster fps", None, "not installed"))
    try:
        from pytorch3d.ops import sample_farthest_points

        peers.append(("pytorch3d sample_farthest_points",
                      lambda: sample_farthest_points(x, K=m, random_start_point=False), ""))
    except ImportError:
        peers.append(("pytorch3d sample_farthest_points", None, "not installed"))
    peers.append(("plain torch FPS loop", lambda: torch_loop_fps(x, m), ""))
    return peers


def knn_peers(x: torch.Tensor, k: int, ours_idx: torch.Tensor) -> list[tuple[str, object, str]]:
    """(name, callable, note) of the kNN peers for all points of x as queries; brute-force
    peers on large clouds run on the first SUBSET_QUERIES queries (scaled by the caller)."""
    subset = x.shape[1] > SUBSET_QUERIES
    q = x[:, :SUBSET_QUERIES] if subset else x
    scale_note = f"timed on {q.shape[1]:,} queries per cloud, scaled" if subset else ""
    peers = []
    try:
        import torch_cluster

        flat, batch = _batch_vector(x)
        qflat, qbatch = _batch_vector(q)
        peers.append(("torch-cluster knn", lambda: torch_cluster.knn(flat, qflat, k, batch, qbatch), scale_note))
    except ImportError:
        peers.append(("torch-cluster knn", None, "not installed"))
    try:
        from pytorch3d.ops import knn_points

        peers.append(("pytorch3d knn_points", lambda: knn_points(q, x, K=k, return_sorted=True), scale_note))
    except ImportError:
        peers.append(("pytorch3d knn_points", None, "not installed"))
    agree = (torch_cdist_knn(q, x, k)[1] == ours_idx[:, :q.shape[1]]).float().mean().item() * 100
    note = f"same neighbours as pcseg: {agree:.2f}%" + (f"; {scale_note}" if subset else "")
    peers.append(("plain torch cdist + topk", lambda: torch_cdist_knn(q, x, k), note))
    return peers


def run_cuda_cases(quick: bool, room_cloud) -> list[dict]:
    """Every GPU case, float32; rows {case, impl, ms, note} (ms NaN: peer not available).

    room_cloud(n, seed) makes the synthetic room clouds bench_ops.py uses on the CPU.
    """
    from pcseg import ops

    dev = torch.device("cuda")
    rows = []

    def add(case, impl, ms, note=""):
        rows.append({"case": case, "impl": impl, "ms": ms, "note": note})
        print(f"  {case:<36} {impl:<36} {ms:>10.2f} ms  {note}", flush=True)

    def peer_rows(case, peers, repeats, scale=1.0):
        for name, fn, note in peers:
            if fn is None:
                add(case, name, float("nan"), note)
            else:
                add(case, name, cuda_timed(fn, repeats) * (scale if "scaled" in note else 1.0), note)

    blocks = torch.from_numpy(np.stack([room_cloud(4096, seed=s) for s in range(16)])).to(dev)
    big = {n: torch.from_numpy(room_cloud(n))[None].to(dev) for n in ([100_000] if quick else [100_000, 1_000_000])}

    case = "FPS 16 x 4096 -> 1024"
    add(case, "pcseg", cuda_timed(lambda: ops.fps(blocks, 1024), 20))
    peer_rows(case, fps_peers(blocks, 1024), 5)
    if 1_000_000 in big:
        case = "FPS 1M -> 4096"
        add(case, "pcseg", cuda_timed(lambda: ops.fps(big[1_000_000], 4096), 3))
        peer_rows(case, fps_peers(big[1_000_000], 4096), 1)

    for name, x in [("16 x 4096", blocks)] + [(f"{n // 1000}k" if n < 10**6 else "1M", c) for n, c in big.items()]:
        case = f"kNN k=16 {name}, all queries"
        ours = ops.knn(x, x, 16)[1]
        add(case, "pcseg", cuda_timed(lambda: ops.knn(x, x, 16), 5 if x.shape[1] < 10**6 else 3))
        scale = x.shape[1] / min(x.shape[1], SUBSET_QUERIES)
        peer_rows(case, knn_peers(x, 16, ours), 3, scale)

    for name, x, m in [("16 x 4096", blocks, 1024)] + ([("1M", big[1_000_000], 4096)] if 1_000_000 in big else []):
        case = f"ring kNN k=16 {name}, {m} centres"
        centres = torch.gather(x, 1, ops.fps(x, m)[..., None].expand(-1, -1, 3)).contiguous()
        ours, count = ops.ring_knn(centres, x, 16, 0.1, 0.2)
        add(case, "pcseg", cuda_timed(lambda: ops.ring_knn(centres, x, 16, 0.1, 0.2), 5))
        real = torch.arange(16, device=dev) < count[..., None]   # pcseg's members, not its fill
        agree = (torch_ring_knn(centres, x, 16, 0.1, 0.2) == ours)[real].float().mean().item() * 100
        add(case, "plain torch cdist + mask + topk",
            cuda_timed(lambda: torch_ring_knn(centres, x, 16, 0.1, 0.2), 5),
            f"same members as pcseg: {agree:.2f}% (no fill rule)")
    return rows
