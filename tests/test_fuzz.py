"""Seeded byte mutations of small LAS, LAZ and PLY files through both readers (whole-file and chunked).

Every case runs in a worker process (tests/fuzz_reader.py) with an address-space limit and a per-case
alarm; a case that kills its worker is an abort (or a hang, when the alarm fired) and the next worker
goes on after it. Passing means: no abort, no hang, no exception but PcsegError (one line), and no read
returning fewer points than the header declares without a warning.
"""

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import laspy
from laspy.vlrs.vlrlist import VLRList
import numpy as np
import pytest

from pcseg.io import write_ply

WORKER = Path(__file__).with_name("fuzz_reader.py")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Limits of each case: seconds of wall time, megabytes of address space.
CASE_SECONDS, CASE_MEGABYTES = 20, 4096
#: Interesting values written over header fields (counts, offsets, sizes).
EDGE_VALUES = [0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1]


def _las(path: Path, version: str, point_format: int, n: int, rng) -> Path:
    header = laspy.LasHeader(version=version, point_format=point_format)
    header.scales = [0.001] * 3
    header.add_extra_dims([laspy.ExtraBytesParams("reflectance", "f4"), laspy.ExtraBytesParams("ids", "3i2")])
    las = laspy.LasData(header)
    las.x, las.y, las.z = rng.uniform(0, 5, (3, n))
    las.intensity = rng.integers(0, 1000, n)
    if version == "1.4":
        las.evlrs = VLRList([laspy.VLR("pcseg_fuzz", 1, "an evlr", b"after the points")])
    las.write(str(path))
    return path


def base_files(folder: Path, fmt: str) -> list[Path]:
    """The small files mutated for ``fmt`` (las, laz, ply)."""
    rng = np.random.default_rng(0)
    if fmt == "las":
        return [_las(folder / "a12.las", "1.2", 3, 200, rng), _las(folder / "a14.las", "1.4", 7, 200, rng)]
    if fmt == "laz":
        return [_las(folder / "a12.laz", "1.2", 1, 600, rng), _las(folder / "a14.laz", "1.4", 8, 600, rng)]
    xyz, rgb = rng.uniform(0, 5, (200, 3)), rng.integers(0, 256, (200, 3)).astype(np.uint8)
    write_ply(folder / "a.ply", xyz, rgb, rng.integers(0, 13, 200))
    ascii_ply = folder / "t.ply"
    rows = "".join(f"{x:.3f} {y:.3f} {z:.3f} {c}\n" for (x, y, z), c in zip(xyz[:100], rng.integers(0, 13, 100)))
    ascii_ply.write_text("ply\nformat ascii 1.0\nelement vertex 100\nproperty float x\nproperty float y\n"
                         "property float z\nproperty int label\nend_header\n" + rows)
    return [folder / "a.ply", ascii_ply]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` with 1-4 seeded mutations: random bytes anywhere or in the first 400, an edge value over
    a header field, a cut, or a slice deleted or repeated."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 6))
        if op == 0 and out:
            out[int(rng.integers(0, len(out)))] = int(rng.integers(0, 256))
        elif op == 1 and out:
            out[int(rng.integers(0, min(len(out), 400)))] = int(rng.integers(0, 256))
        elif op == 2 and len(out) > 16:
            width = int(rng.choice([1, 2, 4, 8]))
            at = int(rng.integers(0, min(len(out), 400) - width))
            value = int(rng.choice(EDGE_VALUES)) & ((1 << (8 * width)) - 1)
            out[at:at + width] = value.to_bytes(width, "little")
        elif op == 3:
            del out[int(rng.integers(0, len(out) + 1)):]
        elif op == 4 and out:
            start = int(rng.integers(0, len(out)))
            del out[start:start + int(rng.integers(1, 64))]
        elif out:
            start = int(rng.integers(0, len(out)))
            out[start:start] = out[start:start + int(rng.integers(1, 64))]
    return bytes(out)


def make_cases(folder: Path, fmt: str, count: int, seed: int) -> list[Path]:
    """``count`` mutated files of the base files of ``fmt``, in turn, from ``seed``."""
    rng = np.random.default_rng(seed)
    bases = [path.read_bytes() for path in base_files(folder, fmt)]
    cases = []
    for i in range(count):
        source = bases[i % len(bases)]
        case = folder / f"case{i:05d}.{fmt}"
        case.write_bytes(mutate(source, rng))
        cases.append(case)
    return cases


def run_cases(kind: str, cases: list[Path]) -> Counter:
    """Outcome counts of reading ``cases`` with the ``kind`` reader (whole or chunked), plus one entry
    per failure: ``('abort'|'hang'|'foreign'|'silent short read'|'multi-line error', case, detail)``."""
    outcomes, remaining = Counter(), list(cases)
    env = {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    while remaining:
        proc = subprocess.run([sys.executable, str(WORKER), kind, str(CASE_SECONDS), str(CASE_MEGABYTES)],
                              input="".join(f"{p}\n" for p in remaining), capture_output=True, text=True,
                              env=env, timeout=CASE_SECONDS * len(remaining) + 120)
        current, finished = None, 0
        for line in proc.stdout.splitlines():
            word, _, rest = line.partition(" ")
            if word == "start":
                current = rest
            elif word == "done":
                outcome, _, detail = rest.partition(" ")
                if outcome == "ok":
                    count, declared, warned = map(int, detail.split())
                    if count < declared and not warned:
                        outcomes[("silent short read", current, detail)] += 1
                elif outcome == "pcseg" and detail.startswith("1"):
                    outcomes[("multi-line error", current, detail)] += 1
                elif outcome == "foreign":
                    outcomes[("foreign", current, detail)] += 1
                outcomes[outcome] += 1
                current, finished = None, finished + 1
        if current is None:  # every case given to this worker was read
            assert proc.returncode == 0 and finished == len(remaining), proc.stderr[-2000:]
            break
        killed = "hang" if proc.returncode in (-signal.SIGALRM, -signal.SIGXCPU) else "abort"
        outcomes[killed] += 1
        outcomes[(killed, current, f"exit {proc.returncode}: {proc.stderr[-300:]!r}")] += 1
        remaining = remaining[finished + 1:]
    return outcomes


def fuzz(tmp_path: Path, fmt: str, count: int, seed: int) -> dict:
    """Outcomes of ``count`` mutations of ``fmt`` files through both readers, by reader; asserts the pass
    criteria (see the module)."""
    cases = make_cases(tmp_path, fmt, count, seed)
    results = {kind: run_cases(kind, cases) for kind in ("whole", "chunked")}
    for kind, outcomes in results.items():
        failures = [key for key in outcomes if isinstance(key, tuple)]
        assert not failures, f"{kind} reader, {fmt}: {failures[:10]}"
        assert outcomes["ok"] + outcomes["pcseg"] == count
        assert outcomes["ok"] > 0 and outcomes["pcseg"] > 0  # the mutations reach both outcomes
    summary = {kind: {k: v for k, v in outcomes.items() if not isinstance(k, tuple)} for kind, outcomes in results.items()}
    print(f"fuzz {fmt} x{count} (seed {seed}): {summary}")
    return results


@pytest.mark.parametrize("fmt", ["las", "laz", "ply"])
def test_fuzzed_files_fail_cleanly(tmp_path, fmt):
    fuzz(tmp_path, fmt, 200, seed=34)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["las", "laz", "ply"])
def test_fuzzed_files_fail_cleanly_2000(tmp_path, fmt):
    fuzz(tmp_path, fmt, 2000, seed=2000)
