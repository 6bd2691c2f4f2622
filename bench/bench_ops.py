"""Benchmark of pcseg.ops against peer libraries, at fixed thread counts or on a GPU.

    .venv/bin/python bench/bench_ops.py              # 1 and 2 threads, full table
    .venv/bin/python bench/bench_ops.py --quick      # skip the 1M-point cases
    python3 bench/bench_ops.py --device cuda         # the CUDA kernels (bench/cuda_cases.py)
    ... --json rows.json                             # the rows as JSON too

On the CPU:

Every thread count runs in its own subprocess pinned to that many CPUs
(sched_setaffinity), with OMP_NUM_THREADS set (and torch.set_num_threads,
cKDTree workers=), so each library sees the same limit: Open3D's TBB pool
ignores OMP_NUM_THREADS and would otherwise use every core in the 1-thread
rows. The table's "cpu/wall" column shows the threads each row really used.
Peers: fpsample (best of its kd-line bucket FPS over tree heights 5/7/9),
Open3D (farthest_point_down_sample, core.nns knn_search), scipy cKDTree,
torch-cluster when importable. torch-cluster has no wheel for this torch; it
builds from source against the installed one in about 15 minutes:

    .venv/bin/python -m pip install --no-build-isolation --no-deps torch-cluster==1.6.3

Without it, its row says so and the row "torch loop (torch-cluster's CPU
algorithm)" stands in: a torch-only re-implementation of the O(N*M) loop of
its CPU fps, labelled so.
Times are medians of a few runs, in milliseconds; "x" columns are peer / pcseg.
With ``--device cuda`` the GPU cases of bench/cuda_cases.py run instead, in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np

from cuda_cases import run_cuda_cases, torch_loop_fps


def room_cloud(n: int, seed: int = 0) -> np.ndarray:
    """A room-like cloud in metres: floor, ceiling, four walls and a few boxes, with scan noise."""
    rng = np.random.default_rng(seed)
    size = np.array([8.0, 6.0, 3.0])
    parts = []
    shares = rng.dirichlet(np.ones(10)) * n
    counts = np.maximum(shares.astype(int), 1)
    counts[0] += n - counts.sum()
    for c, face in zip(counts[:6], range(6)):
        axis, side = face // 2, face % 2
        p = rng.random((c, 3)) * size
        p[:, axis] = side * size[axis]
        parts.append(p)
    for c in counts[6:]:  # boxes standing on the floor: their five visible faces
        lo = rng.random(3) * size * [0.8, 0.8, 0]
        ext = rng.uniform(0.3, 1.5, 3)
        p = lo + rng.random((c, 3)) * ext
        axis = rng.integers(0, 3, c)
        side = rng.integers(0, 2, c)
        p[np.arange(c), axis] = lo[axis] + side * ext[axis]
        parts.append(p)
    cloud = np.concatenate(parts) + rng.normal(scale=0.003, size=(n, 3))
    return cloud[rng.permutation(n)].astype(np.float32)


class Timing(NamedTuple):
    ms: float            # median wall time, milliseconds
    cpu_per_wall: float  # process CPU time per wall time in that run: the threads really used


def timed(fn, repeats: int) -> Timing:
    """Median wall time of fn() over ``repeats`` runs, with that run's CPU/wall ratio."""
    runs = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        runs.append((wall, (time.process_time() - c0) / wall))
    wall, ratio = sorted(runs)[len(runs) // 2]
    return Timing(wall * 1e3, ratio)


def run_cases(threads: int, quick: bool) -> list[dict]:
    import torch

    torch.set_num_threads(threads)
    from pcseg import ops

    rows = []
    clouds = {n: room_cloud(n) for n in ([100_000] if quick else [100_000, 1_000_000])}

    def add(case, name, timing, note=""):
        ms, cpu = timing if isinstance(timing, Timing) else (timing, float("nan"))
        rows.append({"threads": threads, "case": case, "impl": name, "ms": ms, "cpu": cpu, "note": note})

    # ---- FPS on a whole cloud
    fps_cases = [(100_000, 4096), (100_000, 25_000)] + ([] if quick else [(1_000_000, 4096)])
    for n, m in fps_cases:
        case = f"FPS {n // 1000}k -> {m}"
        pts = clouds[n]
        x = torch.from_numpy(pts)[None]
        reps = 3 if n <= 100_000 else 2
        ours = ops.fps(x, m)[0].numpy()
        add(case, "pcseg", timed(lambda: ops.fps(x, m), reps))
        try:
            import fpsample

            best, agree = None, ""
            for h in (5, 7, 9):
                t = timed(lambda: fpsample.bucket_fps_kdline_sampling(pts, m, h=h, start_idx=0), reps)
                if best is None or t < best[0]:
                    best = (t, h)
            theirs = fpsample.bucket_fps_kdline_sampling(pts, m, h=best[1], start_idx=0)
            agree = f"h={best[1]}, shared samples: {len(np.intersect1d(theirs, ours)) / m * 100:.1f}%"
            add(case, "fpsample kd-line", best[0], agree)
        except ImportError:
            add(case, "fpsample kd-line", float("nan"), "not installed")
        if n <= 100_000 and m <= 4096:
            import open3d as o3d

            pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
            add(case, "open3d farthest_point_down_sample",
                timed(lambda: pcd.farthest_point_down_sample(m), 1))

    # ---- batched FPS on model-sized blocks
    blocks = torch.from_numpy(np.stack([room_cloud(4096, seed=s) for s in range(16)]))
    case = "FPS 16 x 4096 -> 1024"
    add(case, "pcseg", timed(lambda: ops.fps(blocks, 1024), 5))
    try:
        import torch_cluster  # noqa: F401

        flat = blocks.reshape(-1, 3)
        batch = torch.arange(16).repeat_interleave(4096)
        add(case, "torch-cluster fps", timed(lambda: torch_cluster.fps(flat, batch, ratio=0.25), 3))
    except ImportError:
        add(case, "torch-cluster fps", float("nan"), "not installed (see the module docstring)")
        add(case, "torch loop (torch-cluster's CPU algorithm)", timed(lambda: torch_loop_fps(blocks, 1024), 1),
            "re-implementation, not the library")

    # ---- kNN, all points as queries
    from scipy.spatial import cKDTree

    for n, pts in clouds.items():
        case = f"kNN k=16 {n // 1000}k, all queries"
        x = torch.from_numpy(pts)[None]
        reps = 3 if n <= 100_000 else 1
        _, ours = ops.knn(x, x, 16)
        add(case, "pcseg", timed(lambda: ops.knn(x, x, 16), reps))

        def ckd():
            return cKDTree(pts).query(pts, 16, workers=threads)

        add(case, "scipy cKDTree (build + query)", timed(ckd, reps),
            f"same neighbours: {np.mean(ckd()[1] == ours[0].numpy()) * 100:.2f}%")
        import open3d as o3d

        def o3d_knn():
            t = o3d.core.Tensor(pts)
            nns = o3d.core.nns.NearestNeighborSearch(t)
            nns.knn_index()
            return nns.knn_search(t, 16)

        add(case, "open3d core.nns (index + search)", timed(o3d_knn, reps))
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'threads':>7}  {'case':<36} {'implementation':<44} {'ms':>9} {'x':>7} {'cpu/wall':>8}  note")
    ours = {(r["threads"], r["case"]): r["ms"] for r in rows if r["impl"] == "pcseg"}
    for r in rows:
        base = ours[(r["threads"], r["case"])]
        ratio = "" if r["impl"] == "pcseg" or np.isnan(r["ms"]) else f"{r['ms'] / base:.2f}"
        ms = "-" if np.isnan(r["ms"]) else f"{r['ms']:.1f}"
        cpu = "-" if np.isnan(r["cpu"]) else f"{r['cpu']:.2f}"
        print(f"{r['threads']:>7}  {r['case']:<36} {r['impl']:<44} {ms:>9} {ratio:>7} {cpu:>8}  {r['note']}")


def cuda_rows(quick: bool) -> list[dict]:
    """The GPU cases as table rows; SystemExit (one line, status 2) without a usable CUDA build."""
    import torch

    if not torch.cuda.is_available():
        print("bench_ops: error: --device cuda needs a CUDA device (torch.cuda.is_available() is False)",
              file=sys.stderr)
        raise SystemExit(2)
    from pcseg import ops

    if not ops.build_info()["cuda"]:
        print("bench_ops: error: pcseg._C was built without CUDA kernels (see scripts/gpu_check.sh)", file=sys.stderr)
        raise SystemExit(2)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, float32", flush=True)
    return [dict(r, threads="cuda", cpu=float("nan")) for r in run_cuda_cases(quick, room_cloud)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="CPU thread counts")
    parser.add_argument("--quick", action="store_true", help="skip the 1M-point cases")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < args.threads[0]:
            raise SystemExit(f"{args.threads[0]} threads asked for, {len(cpus)} CPUs available")
        os.sched_setaffinity(0, cpus[: args.threads[0]])
        print(json.dumps(run_cases(args.threads[0], args.quick)))
        return
    if args.device == "cuda":
        rows = cuda_rows(args.quick)
    else:
        rows = []
        for t in args.threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
            cmd = [sys.executable, __file__, "--worker", "--threads", str(t)] + (["--quick"] if args.quick else [])
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            rows += json.loads(out.strip().splitlines()[-1])
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
