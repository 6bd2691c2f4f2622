"""How often ``--up auto`` and ``--units auto`` get real scans right, and at what cost.

Every real labelled room in ``../shared/realrooms`` (z up, metres) is turned to each of the six
up axes and scaled to centimetres and millimetres; each real scan of ``../shared/real`` is
placed as it is (``pcl_office1`` is a camera frame whose up axis is -y). For each case the
script prints what :func:`pcseg.placement.place` decided, as ``pcseg segment`` does (with the
default model's judge where the shape is unclear, :mod:`pcseg.up_judge`; ``--shape-only`` without
it), then the counts and the time per cloud. ``--generated N`` also turns the rooms of seeds
0..N-1 of :func:`pcseg.data.synthetic.generate_room` (lidar and RGB-D) six ways.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_placement.py [--shared ../shared] [--generated 12] [--shape-only]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np


def real_rooms(shared: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: ((n, 3) float64 metres z up, (n, 3) uint8 colours or None)} of every real labelled room."""
    from pcseg.io import read_cloud

    rooms = {}
    for path in sorted((shared / "realrooms" / "s3dis").glob("*/*.ply")):
        cloud = read_cloud(path)
        rgb = None if cloud.rgb is None else cloud.rgb[cloud.valid]
        rooms[f"s3dis/{path.parent.name}/{path.stem}"] = cloud.absolute_xyz()[cloud.valid], rgb
    for path in sorted((shared / "realrooms" / "scannet").glob("*_vert.npy")):
        array = np.load(path)
        rooms[f"scannet/{path.stem[:-5]}"] = array[:, :3].astype(np.float64), array[:, 3:6].astype(np.uint8)
    return rooms


def generated_rooms(seeds: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: ((n, 3) float64 metres z up, (n, 3) uint8 colours)} of the generated rooms of seeds
    0..seeds-1, both sensors."""
    from pcseg.data.synthetic import SENSORS, generate_room

    rooms = {}
    for seed in range(seeds):
        for sensor in SENSORS:
            room = generate_room(seed, sensor=sensor)
            rooms[f"generated/{sensor}/{seed}/{room.name}"] = room.xyz, room.rgb
    return rooms


def turned_six_ways(rooms: dict[str, tuple[np.ndarray, np.ndarray]], judge) -> tuple[dict[str, dict[str, str]], list[float]]:
    """({room: {true up axis: decided up axis}} over the six turns, seconds per placement), placed with
    ``judge`` (:data:`pcseg.up_judge.Judge` or None)."""
    from pcseg.io import Cloud
    from pcseg.placement import place
    from pcseg.up_axis import ROTATIONS

    decided, seconds = {}, []
    for name, (xyz, rgb) in rooms.items():
        decided[name] = {}
        for up, rotation in ROTATIONS.items():
            start = time.perf_counter()
            decided[name][up] = place(Cloud.from_arrays(xyz @ rotation, rgb=rgb), units="m", judge=judge).up
            seconds.append(time.perf_counter() - start)
    return decided, seconds


def marked(pairs: dict[str, str]) -> str:
    """``true:decided`` per case, a ``!`` after each miss."""
    return " ".join(f"{true}:{found}" + ("" if found == true else "!") for true, found in pairs.items())


def right_count(decided: dict[str, dict[str, str]]) -> int:
    """How many turns got their up axis."""
    return sum(found == up for row in decided.values() for up, found in row.items())


def main() -> None:
    from pcseg.io import Cloud, read_cloud
    from pcseg.placement import place
    from pcseg.segment import Segmenter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--generated", type=int, default=0, metavar="N",
                        help="also turn the generated rooms of seeds 0..N-1 (lidar and RGB-D) six ways")
    parser.add_argument("--shape-only", action="store_true", help="place by the cloud's shape alone, without the model")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    judge = None if args.shape_only else Segmenter.load(device="cpu").judge
    rooms = real_rooms(args.shared)
    decided, seconds = turned_six_ways(rooms, judge)
    units_right = 0
    for name, (xyz, _) in rooms.items():
        units = {unit: place(Cloud.from_arrays(xyz * factor), up="z").units
                 for factor, unit in ((1.0, "m"), (100.0, "cm"), (1000.0, "mm"))}
        units_right += sum(found == unit for unit, found in units.items())
        print(f"{name:28s} {marked(decided[name])} {marked(units)}")
    for path in sorted((args.shared / "real").glob("*")):
        if path.suffix in (".ply", ".las", ".laz"):
            placement = place(read_cloud(path), name=path.name, judge=judge)
            print(f"{path.name:40s} up {placement.up}, units {placement.units}, "
                  f"{placement.warning or 'looks indoor'}")
    kept = sum(row["z"] == "z" for row in decided.values())
    print(f"up axis right in {right_count(decided)} of {6 * len(rooms)} turned rooms; z-up rooms left z: {kept} of {len(rooms)}; "
          f"units right in {units_right} of {3 * len(rooms)}; "
          f"{1000 * np.median(seconds):.0f} ms per cloud (median, {np.median([len(xyz) for xyz, _ in rooms.values()]):,.0f} points; "
          f"the slowest {max(seconds):.1f} s)")
    if args.generated:
        generated, _ = turned_six_ways(generated_rooms(args.generated), judge)
        for name, row in generated.items():
            print(f"{name:28s} {marked(row)}")
        print(f"generated rooms: up axis right in {right_count(generated)} of {6 * len(generated)} turned rooms")


if __name__ == "__main__":
    main()
