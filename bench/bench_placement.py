"""How often ``--up auto`` and ``--units auto`` get real scans right, and at what cost.

Every real labelled room in ``../shared/realrooms`` (z up, metres) is turned to each of the six
up axes and scaled to centimetres and millimetres; each real scan of ``../shared/real`` is
placed as it is (``pcl_office1`` is a camera frame whose up axis is -y). For each case the
script prints what :func:`pcseg.placement.place` decided, then the counts and the time per cloud.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_placement.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np


def real_rooms(shared: Path) -> dict[str, np.ndarray]:
    """{name: (n, 3) float64 metres, z up} of every real labelled room."""
    from pcseg.io import read_cloud

    rooms = {}
    for path in sorted((shared / "realrooms" / "s3dis").glob("*/*.ply")):
        cloud = read_cloud(path)
        rooms[f"s3dis/{path.parent.name}/{path.stem}"] = cloud.absolute_xyz()[cloud.valid]
    for path in sorted((shared / "realrooms" / "scannet").glob("*_vert.npy")):
        rooms[f"scannet/{path.stem[:-5]}"] = np.load(path)[:, :3].astype(np.float64)
    return rooms


def main() -> None:
    from pcseg.io import Cloud, read_cloud
    from pcseg.placement import place
    from pcseg.up_axis import ROTATIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rooms = real_rooms(args.shared)
    up_right = kept = units_right = 0
    seconds = []
    for name, xyz in rooms.items():
        row = []
        for up, rotation in ROTATIONS.items():
            start = time.perf_counter()
            decided = place(Cloud.from_arrays(xyz @ rotation), units="m").up
            seconds.append(time.perf_counter() - start)
            up_right += decided == up
            kept += up == "z" and decided == "z"
            row.append(f"{up}:{decided}" + ("" if decided == up else "!"))
        for factor, unit in ((1.0, "m"), (100.0, "cm"), (1000.0, "mm")):
            decided = place(Cloud.from_arrays(xyz * factor), up="z").units
            units_right += decided == unit
            row.append(f"{unit}:{decided}" + ("" if decided == unit else "!"))
        print(f"{name:28s} " + " ".join(row))
    for path in sorted((args.shared / "real").glob("*")):
        if path.suffix in (".ply", ".las", ".laz"):
            placement = place(read_cloud(path), name=path.name)
            print(f"{path.name:40s} up {placement.up}, units {placement.units}, "
                  f"{placement.warning or 'looks indoor'}")
    print(f"up axis right in {up_right} of {6 * len(rooms)} turned rooms; z-up rooms left z: {kept} of {len(rooms)}; "
          f"units right in {units_right} of {3 * len(rooms)}; "
          f"{1000 * np.median(seconds):.0f} ms per cloud (median, {np.median([len(x) for x in rooms.values()]):,.0f} points)")


if __name__ == "__main__":
    main()
