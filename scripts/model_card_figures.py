"""Figures and tables for a bundled model's card (pcseg/weights/<name>.md).

    python scripts/model_card_figures.py MODEL OUT_DIR [--real ../shared/real] [--only NAME ...]
        [--real-rooms CACHE/AREA/ROOM ...]

Segments the sample room (scored against datasets/samples/room_labels.ply), every
real scan in --real and every labelled room of a prepared cache named by --real-rooms
(prediction | truth | errors, with its OA and mIoU), writes one PNG per scan or room to
OUT_DIR, and prints Markdown tables:
per scan the points, time, the most frequent classes, and where floor, ceiling and wall
points lie in height (median height of the class's points, 0 = lowest point of the scan,
1 = highest), the plausibility check of the card.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from pcseg.data.rooms import load_room, read_room_entry
from pcseg.io import Cloud, read_cloud
from pcseg.metrics import confusion_matrix, scores
from pcseg.segment import Segmenter
from pcseg.up_axis import to_z_up
from pcseg.viz.render import render_png

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "samples"
#: Real scans and their up axis (RGB-D and stereo frames are in camera coordinates, y down).
REAL_SCANS = {
    "pcl_office1.ply": "-y",
    "pcl_table_scene_mug_stereo_textured.ply": "-y",
    "labelcloud_cart.ply": "z",
    "laspy_autzen_trim.laz": "z",
    "laspy_simple.las": "z",
}
HEIGHT_CLASSES = ("floor", "wall", "ceiling")


def read_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_cloud(path)


def class_heights(xyz: np.ndarray, labels: np.ndarray, names) -> str:
    """'floor 0.02, wall 0.48, ...': median normalised height of each class with >= 1 % of the points."""
    z = xyz[:, 2].astype(np.float64)
    rel = (z - z.min()) / max(float(np.ptp(z)), 1e-9)
    parts = []
    for name in HEIGHT_CLASSES:
        mask = labels == names.index(name)
        if mask.mean() >= 0.01:
            parts.append(f"{name} {np.median(rel[mask]):.2f}")
    return ", ".join(parts) or "-"


def top_classes(labels: np.ndarray, names, k: int = 4) -> str:
    counts = np.bincount(labels, minlength=len(names))
    order = np.argsort(-counts)[:k]
    return ", ".join(f"{names[i]} {100 * counts[i] / len(labels):.0f}%" for i in order if counts[i])


def picture_against_truth(segmenter: Segmenter, cloud, truth: np.ndarray, path: Path, title: str, name: str) -> None:
    """Segment a z-up cloud, draw prediction | truth | errors to ``path`` and print its OA and mIoU."""
    segmenter.up = "z"
    labels, _ = segmenter.labels(cloud, progress=False)
    result = scores(confusion_matrix(truth, labels, len(segmenter.class_names)))
    render_png(path, cloud.xyz, labels, segmenter.class_names, gt=truth, title=title)
    print(f"{name} ({len(cloud):,} points): OA {100 * result['OA']:.1f}, mIoU {100 * result['mIoU']:.1f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="bundled model name or checkpoint")
    parser.add_argument("out", help="folder for the PNGs")
    parser.add_argument("--real", default=str(ROOT.parent / "shared" / "real"), help="folder of real scans")
    parser.add_argument("--real-rooms", nargs="+", default=[], metavar="CACHE/AREA/ROOM",
                        help="labelled rooms of a prepared cache to picture against their truth")
    parser.add_argument("--only", nargs="+", choices=["sample", "rooms", *REAL_SCANS], metavar="NAME",
                        help="segment only these: 'sample' (the sample room), 'rooms' (--real-rooms) or real "
                             "scan file names, e.g. to split the work between processes")
    args = parser.parse_args()
    todo = set(args.only or ["sample", "rooms", *REAL_SCANS])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.model).stem

    segmenter = Segmenter.load(args.model, "cpu")
    names = segmenter.class_names
    if "sample" in todo:
        truth = read_quietly(SAMPLE / "room_labels.ply")
        picture_against_truth(segmenter, truth, truth.labels, out / f"{stem}_sample_room.png",
                              "datasets/samples/room.ply", "sample room")

    for folder in (Path(r) for r in args.real_rooms if "rooms" in todo):
        cache, rel = folder.parents[1], f"{folder.parent.name}/{folder.name}"
        room = load_room(cache, read_room_entry(cache, rel), mmap=False)
        picture_against_truth(segmenter, Cloud.from_arrays(room.xyz, rgb=room.rgb), room.labels,
                              out / f"{stem}_real_{folder.name}.png", f"{rel} (real, validation)", f"real room {rel}")

    print("| scan | up | points | time | most frequent labels | median height (0 low, 1 high) |")
    print("|---|---|---|---|---|---|")
    for name, up in REAL_SCANS.items():
        if name not in todo:
            continue
        path = Path(args.real) / name
        if not path.is_file():
            print(f"| {name} | missing | | | | |")
            continue
        cloud = read_quietly(path)
        segmenter.up = up
        start = time.perf_counter()
        labels, _ = segmenter.labels(cloud, progress=False)
        seconds = time.perf_counter() - start
        xyz = to_z_up(cloud.xyz, up)
        valid = cloud.valid
        render_png(out / f"{stem}_{path.stem}.png", xyz, labels, names, valid=valid, title=name)
        print(f"| {name} | {up} | {int(valid.sum()):,} | {seconds:.1f} s | {top_classes(labels[valid], names)} "
              f"| {class_heights(xyz[valid], labels[valid], names)} |")


if __name__ == "__main__":
    main()
