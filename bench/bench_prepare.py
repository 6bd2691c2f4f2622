"""Speed of the raw S3DIS text parser against plain parsers, on one synthetic annotation file.

    .venv/bin/python bench/bench_prepare.py                # 1M lines (about 41 MB)
    .venv/bin/python bench/bench_prepare.py --lines 200000

Cases: a clean file; the same with three stray control bytes (the kinds raw S3DIS ships);
the same with a line that holds seven fields. Peers: pandas' C parser alone (no checks, fails
on a bad file) and np.loadtxt. Best of three runs, in seconds; "x" = time / pandas alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pcseg.data.text_points import parse_points


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.uniform(-20, 40, (args.lines, 3)), rng.integers(0, 256, (args.lines, 3))])
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.txt"
        np.savetxt(clean, table, fmt=["%.6f"] * 3 + ["%d"] * 3)
        megabytes = clean.stat().st_size / 1e6
        data = bytearray(clean.read_bytes())
        for fraction, byte in [(0.9, b"\x16"), (0.5, b"\x00"), (0.1, b"\x10")]:
            at = int(len(data) * fraction)
            data[at:at] = byte
        stray = Path(tmp) / "stray.txt"
        stray.write_bytes(bytes(data))
        at = int(len(data) * 0.3)
        data[at:at] = b"7 "
        extra = Path(tmp) / "extra_field.txt"
        extra.write_bytes(bytes(data))
        reference = best_of(lambda: pd.read_csv(clean, sep=r"\s+", header=None, dtype=np.float64))
        rows = [("pandas read_csv alone (clean)", reference),
                ("np.loadtxt (clean)", best_of(lambda: np.loadtxt(clean))),
                ("parse_points clean", best_of(lambda: parse_points(clean))),
                ("parse_points 3 stray bytes", best_of(lambda: parse_points(stray))),
                ("parse_points + a 7-field line", best_of(lambda: parse_points(extra)))]
    print(f"{args.lines:,} lines, {megabytes:.0f} MB")
    for name, seconds in rows:
        print(f"{name:<32} {seconds:6.2f} s  {seconds / reference:5.2f}x")


if __name__ == "__main__":
    main()
