"""Time of each labelled-output writer on a cloud of random points with colours.

A PLY input is written to every output format; the LAZ output is then written again to LAS
and LAZ, the record-by-record copy a LAS input takes. Each time is the best of ``--repeats``
runs and includes the atomic write's fsync.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_writers.py [--points 1000000] [--repeats 3]
        [--work /tmp/pcseg_bench_writers]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_prepare import best_of  # the script's folder is on sys.path


def main() -> None:
    from pcseg.io import read_cloud, write_labelled, write_ply
    from pcseg.io.writers import OUTPUT_FORMATS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/pcseg_bench_writers"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.points
    source = write_ply(args.work / "input.ply", rng.uniform(0, 20, (n, 3)),
                       rng.integers(0, 256, (n, 3)).astype(np.uint8), overwrite=True)
    cloud = read_cloud(source)
    labels, confidence = rng.integers(0, 13, n), rng.uniform(0, 1, n).astype(np.float32)
    print(f"{n:,} points, best of {args.repeats}")
    for fmt in OUTPUT_FORMATS:
        seconds = best_of(lambda: write_labelled(args.work / f"out.{fmt}", cloud, labels, confidence,
                                                   overwrite=True), args.repeats)
        print(f"PLY input -> .{fmt}: {seconds:.2f} s")
    las = read_cloud(args.work / "out.laz")
    for fmt in ("las", "laz"):
        seconds = best_of(lambda: write_labelled(args.work / f"again.{fmt}", las, labels, confidence,
                                                   overwrite=True), args.repeats)
        print(f"LAZ input -> .{fmt} (record copy): {seconds:.2f} s")


if __name__ == "__main__":
    main()
