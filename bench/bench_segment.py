"""`pcseg segment` on a generated 1M-point room with each model; the bundled A-CNN on a sparse
airborne tile against the sample room; peak memory of a generated scan of up to 100M points
segmented in tiles under ``--max-memory``; one rank against two ranks on a four-scan job.

Each run is a separate process (`pcseg segment` as a user runs it: read, infer, write), so
its peak resident memory (``VmHWM``, which starts afresh at exec, unlike ``ru_maxrss``, which
keeps the forking parent's) is its own. Reported per model: wall time,
points/s, peak memory, the model's FLOPs per model point (``torch.utils.flop_counter``:
matmuls and convolutions; the compiled FPS/kNN ops are not counted), the model points
run per cloud point (one point per 2 cm voxel, block overlap, padding of samples), and the time
those FLOPs take at the machine's measured fp32 matmul rate (the arithmetic bound).
Models are untrained (the time does not depend on the weights) and use the block settings
of ``pcseg/configs/<model>_s3dis_area5.yaml``.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_segment.py [--models pointnet acnn]
        [--points 1000000] [--big 100000000 ...] [--max-memory 4G] [--big-stride S]
        [--sparse ../shared/real/laspy_autzen_trim.laz] [--rank-scans 4] [--rank-points 250000]
        [--threads 2] [--work /tmp/pcseg_bench]

Each part can be skipped: ``--models`` with nothing, ``--big 0``, ``--sparse ''``, ``--rank-scans 0``.
The sparse comparison runs both clouds in one run with the bundled default model; the big
scans are copies of the room side by side in one PLY, segmented with the first model of
``--models`` (stride ``--big-stride`` when given: a larger one only saves time); the rank
comparison runs ``--rank-scans`` rooms of ``--rank-points`` points with 1 thread per rank
and checks that both runs write the same labels.

Goals: 1M points in < 60 s with PointNet and < 120 s with A-CNN; the sparse tile's time per
point within 2x the sample room's; peak memory < 6 GB at 100M points; two ranks >= 1.6x one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GOAL_SECONDS = {"pointnet": 60.0, "acnn": 120.0}
GOAL_BIG_BYTES = 6 * 2**30
GOAL_SPARSE_RATIO = 2.0
GOAL_RANK_SPEEDUP = 1.6
ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROOM = ROOT / "datasets" / "samples" / "room.ply"


def room_cloud(points: int, work: Path, seed: int = 0) -> Path:
    """A generated conference room of exactly ``points`` points as a PLY (cached in ``work``)."""
    from pcseg.data.synthetic import generate_room
    from pcseg.io import write_ply

    path = work / f"room_{points}{f'_seed{seed}' if seed else ''}.ply"
    if not path.exists():
        print(f"generating a {points:,}-point room ...", flush=True)
        density = 12000.0 * points / 1.1e6
        room = generate_room(seed, kind="conferenceRoom", density=density)
        while len(room.xyz) < points:
            density *= 1.3 * points / len(room.xyz)
            room = generate_room(seed, kind="conferenceRoom", density=density)
        keep = np.sort(np.random.default_rng(seed).choice(len(room.xyz), points, replace=False))
        write_ply(path, room.xyz[keep], room.rgb[keep])
    return path


def floor_of_rooms(room: Path, copies: int, work: Path) -> Path:
    """``copies`` copies of ``room`` side by side in a grid (a floor of a building) as one PLY,
    written one copy at a time (so a 100M-point floor never sits in memory)."""
    from pcseg.io import read_cloud
    from pcseg.io.ply import ply_header

    cloud = read_cloud(room)
    path = work / f"floor_{copies * len(cloud)}.ply"
    if not path.exists():
        print(f"writing a {copies * len(cloud):,}-point floor ...", flush=True)
        xyz = cloud.absolute_xyz()
        step = np.ptp(xyz, axis=0)[:2] + 0.5
        columns = int(np.ceil(np.sqrt(copies)))
        rows = np.empty(len(cloud), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                           ("red", "u1"), ("green", "u1"), ("blue", "u1")])
        for i, channel in enumerate(("red", "green", "blue")):
            rows[channel] = cloud.rgb[:, i]
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as out:
            out.write(ply_header(rows.dtype, copies * len(cloud)))
            for i in range(copies):
                shifted = xyz + np.array([i % columns * step[0], i // columns * step[1], 0.0])
                for axis, name in enumerate("xyz"):
                    rows[name] = shifted[:, axis]
                out.write(rows.tobytes())
        partial.rename(path)
    return path


def model_checkpoint(name: str, work: Path) -> tuple[Path, dict]:
    """An untrained checkpoint of ``name`` with the S3DIS config's data settings; (path, data settings)."""
    import torch

    from pcseg.checkpoint import save_checkpoint
    from pcseg.classes import S3DIS_CLASSES
    from pcseg.config import load_config
    from pcseg.data.features import FEATURE_SETS
    from pcseg.models import build

    config = load_config(f"{name}_s3dis_area5")
    data = {k: config["data"][k] for k in ("feature_set", "num_points", "block_size", "stride")}
    torch.manual_seed(0)
    model = build(name, len(S3DIS_CLASSES), FEATURE_SETS[data["feature_set"]], **config["model"].get("options", {}))
    path = work / f"{name}.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config, "data": data,
                           "class_names": list(S3DIS_CLASSES)})
    return path, data


def flops_per_model_point(checkpoint: Path) -> float:
    """FLOPs of one forward pass per input point, counted on one sample of ``num_points``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pcseg.checkpoint import load_model

    model, meta = load_model(checkpoint)
    n = meta["data"]["num_points"]
    x = torch.rand(1, n, model.config["in_channels"])
    x[..., :3] -= 0.5
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops() / n


def model_points(cloud_path: Path, data: dict, stride: float | None = None) -> int:
    """Points the model runs on for the whole cloud, as ``pcseg segment`` runs it: one point per
    voxel of the default size, every block's samples padded to ``sample_size``."""
    from pcseg.data.blocks import sample_size, tile_blocks
    from pcseg.data.voxels import voxel_subsample
    from pcseg.io import read_cloud
    from pcseg.segment import DEFAULT_VOXEL_SIZE

    cloud = read_cloud(cloud_path)
    representatives, _ = voxel_subsample(cloud.xyz, DEFAULT_VOXEL_SIZE, cloud.valid)
    tiling = tile_blocks(cloud.xyz[representatives], data["block_size"], stride or data["stride"])
    n = data["num_points"]
    total = 0
    for _, indices in tiling:
        size = sample_size(len(indices), n)
        total += -(-len(indices) // size) * size
    return total


def matmul_rate(threads: int) -> float:
    """Measured fp32 matmul FLOP/s on ``threads`` threads (best of 5, 1024 x 1024)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 1024**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_segment(cloud: Path, checkpoint: Path | str, work: Path, threads: int, extra: list[str]) -> dict:
    """Run ``pcseg segment`` in a child process; its wall time and peak resident memory.
    ``checkpoint`` is a checkpoint path or a bundled model name."""
    out = work / f"{cloud.stem}_{Path(checkpoint).stem}_labelled.ply"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    argv = [sys.executable, __file__, "--child", str(threads), "segment", str(cloud), "-o", str(out),
            "--model", str(checkpoint), "--device", "cpu", "--overwrite", *extra]
    result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True)
    print(result.stdout, end="")
    if result.returncode != 0:
        raise SystemExit(f"pcseg segment failed with status {result.returncode}")
    out.unlink()
    return json.loads(result.stdout.strip().splitlines()[-1].removeprefix("BENCH "))


def peak_resident_bytes() -> int:
    """This process's peak resident memory since its exec (Linux ``VmHWM``), bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(threads: int, argv: list[str]) -> None:
    """Run the pcseg command line in this process; print its wall time and peak memory as JSON."""
    import torch

    from pcseg.cli import main

    torch.set_num_threads(threads)
    start = time.perf_counter()
    status = main(argv)
    seconds = time.perf_counter() - start
    peak = peak_resident_bytes()
    if status:
        sys.exit(status)
    print("BENCH " + json.dumps({"seconds": seconds, "peak_bytes": peak}))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(int(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["pointnet", "acnn"], choices=["pointnet", "acnn"])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, nargs="+", default=[100_000_000],
                        help="points of the memory checks (0: skip)")
    parser.add_argument("--max-memory", default="4G", help="pcseg segment --max-memory of the memory checks")
    parser.add_argument("--sparse", default=str(ROOT.parent / "shared" / "real" / "laspy_autzen_trim.laz"),
                        help="the sparse tile ('' skips)")
    parser.add_argument("--rank-scans", type=int, default=4, help="scans of the rank comparison (0: skip)")
    parser.add_argument("--rank-points", type=int, default=250_000, help="points per scan of the rank comparison")
    parser.add_argument("--big-stride", type=float, default=None,
                        help="stride of the memory check (default: the model's; a larger one only saves time)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/pcseg_bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    room = room_cloud(args.points, args.work) if args.models or any(args.big) else None
    rows = []
    if args.models:
        rate = matmul_rate(args.threads)
        print(f"machine: {rate / 1e9:.1f} GFLOP/s fp32 matmul on {args.threads} threads")
    for name in args.models:
        checkpoint, data = model_checkpoint(name, args.work)
        flops = flops_per_model_point(checkpoint)
        run_points = model_points(room, data)
        result = run_segment(room, checkpoint, args.work, args.threads, [])
        bound = flops * run_points / rate
        rows.append((name, result["seconds"], args.points / result["seconds"], result["peak_bytes"] / 2**30,
                     flops / 1e6, run_points / args.points, bound, GOAL_SECONDS[name]))
    if rows:
        print(f"\n{args.points:,}-point room, {args.threads} threads, blocks/stride/points per sample from the configs")
        print(f"{'model':<9} {'wall s':>7} {'points/s':>9} {'peak GB':>8} {'MFLOP/pt':>9} {'model pts/pt':>12} "
              f"{'FLOP-bound s':>12} {'goal s':>7}")
    for name, seconds, speed, peak, mflop, ratio, bound, goal in rows:
        verdict = "met" if seconds < goal else "MISSED"
        print(f"{name:<9} {seconds:>7.1f} {speed:>9,.0f} {peak:>8.2f} {mflop:>9.2f} {ratio:>12.2f} "
              f"{bound:>12.1f} {goal:>6.0f} {verdict}")
    for points in [p for p in args.big if p]:
        huge_scan(room, points, args)
    if args.sparse:
        sparse_against_room(Path(args.sparse), args)
    if args.rank_scans:
        ranks_against_one(args)


def huge_scan(room: Path, points: int, args) -> None:
    """Peak memory and time of a generated scan of about ``points`` points under ``--max-memory``."""
    copies = -(-points // args.points)
    floor = floor_of_rooms(room, copies, args.work)
    checkpoint, _ = model_checkpoint(args.models[0] if args.models else "pointnet", args.work)
    extra = ["--max-memory", args.max_memory] + (["--stride", str(args.big_stride)] if args.big_stride else [])
    result = run_segment(floor, checkpoint, args.work, args.threads, extra)
    peak = result["peak_bytes"]
    print(f"\n{copies * args.points:,} points, --max-memory {args.max_memory}, {checkpoint.stem}"
          f"{f' (stride {args.big_stride} m)' if args.big_stride else ''}, {args.threads} threads: "
          f"{result['seconds']:.0f} s, peak {peak / 2**30:.2f} GB (goal < {GOAL_BIG_BYTES / 2**30:.0f} GB: "
          f"{'met' if peak < GOAL_BIG_BYTES else 'MISSED'})")


def sparse_against_room(tile: Path, args) -> None:
    """Time per point of the bundled default model on a sparse tile and on the sample room, one run."""
    from pcseg.bundled import DEFAULT_MODEL  # acnn_synthetic when the README's figures were measured

    rows = []
    for cloud in (SAMPLE_ROOM, tile):
        from pcseg.io import read_cloud

        points = len(read_cloud(cloud))
        result = run_segment(cloud, DEFAULT_MODEL, args.work, args.threads, [])
        rows.append((cloud.name, points, result["seconds"], 1e3 * result["seconds"] / points))
    print(f"\n{DEFAULT_MODEL}, {args.threads} threads:")
    for name, points, seconds, per_point in rows:
        print(f"  {name:<28} {points:>9,} points {seconds:>7.1f} s {per_point:.4f} ms/point")
    ratio = rows[1][3] / rows[0][3]
    print(f"  sparse / room time per point: {ratio:.2f} (goal <= {GOAL_SPARSE_RATIO:g}: "
          f"{'met' if ratio <= GOAL_SPARSE_RATIO else 'MISSED'})")


def ranks_against_one(args) -> None:
    """``--rank-scans`` rooms segmented by one process, then by two torchrun ranks (1 thread each)."""
    import plyfile

    scans = [room_cloud(args.rank_points, args.work, seed=seed) for seed in range(args.rank_scans)]
    checkpoint, _ = model_checkpoint(args.models[0] if args.models else "pointnet", args.work)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    common = ["segment", *map(str, scans), "--model", str(checkpoint), "--device", "cpu", "--overwrite"]
    seconds = {}
    for ranks in (1, 2):
        out = args.work / f"ranks_{ranks}"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                    "--master_port", "29561"] if ranks > 1 else [sys.executable]
        start = time.perf_counter()
        subprocess.run([*launcher, "-m", "pcseg", *common, "-o", str(out)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds[ranks] = time.perf_counter() - start
    same = all(np.array_equal(plyfile.PlyData.read(str(args.work / "ranks_1" / f"{s.stem}_labelled.ply"))["vertex"]["label"],
                              plyfile.PlyData.read(str(args.work / "ranks_2" / f"{s.stem}_labelled.ply"))["vertex"]["label"])
               for s in scans)
    speedup = seconds[1] / seconds[2]
    print(f"\n{args.rank_scans} scans of {args.rank_points:,} points, {checkpoint.stem}: 1 rank {seconds[1]:.1f} s, "
          f"2 ranks {seconds[2]:.1f} s, speed-up {speedup:.2f} (goal >= {GOAL_RANK_SPEEDUP:g}: "
          f"{'met' if speedup >= GOAL_RANK_SPEEDUP else 'MISSED'}); outputs {'identical' if same else 'DIFFER'}")

if __name__ == "__main__":
    main()
