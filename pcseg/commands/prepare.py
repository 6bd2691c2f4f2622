"""``pcseg prepare s3dis SRC DST``, ``pcseg prepare scannet SRC DST`` and
``pcseg prepare ply SRC DST --classes TABLE``: datasets into the per-room cache."""

from __future__ import annotations

import argparse
import os
from collections import Counter


#: Default ``--workers`` of the commands that run one process per room or file.
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


def workers_count(text: str) -> int:
    """``--workers``: a whole number of processes, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def register(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help="prepare a dataset into the per-room cache")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    _kind(kinds, "s3dis", "raw S3DIS (Stanford3dDataset_v1.2_Aligned_Version)",
                  "S3DIS root holding Area_1 ... Area_6", "rooms", run_s3dis)
    scannet = _kind(kinds, "scannet", "ScanNet scans (NYU40 labels mapped to the 13 S3DIS classes)",
                    "folder holding <scan>_vh_clean_2.ply + .labels.ply, or <scan>_vert.npy + "
                    "_sem_label.npy (flat or one folder per scan)", "scans", run_scannet)
    scannet.add_argument("--mapping", default=None,
                         help="NYU40 -> S3DIS class table (default: datasets/scannet/nyu40_to_s3dis.tsv)")
    ply = _kind(kinds, "ply", "a folder of your own labelled PLY/LAS/PCD files",
                "folder of labelled clouds (sub-folders become areas)", "files", run_ply)
    ply.add_argument("--classes", required=True,
                     help="class table: .json/.yaml list or {id: name}, or .txt with one name per line")


def _kind(kinds, name: str, help_text: str, src_help: str, items: str, func):
    """A ``pcseg prepare NAME SRC DST [--workers N]`` sub-command."""
    parser = kinds.add_parser(name, help=help_text)
    parser.add_argument("src", help=src_help)
    parser.add_argument("dst", help="output cache folder (re-running resumes)")
    parser.add_argument("--workers", type=workers_count, default=DEFAULT_WORKERS,
                        help=f"{items} prepared in parallel (default: min(4, CPUs))")
    parser.set_defaults(func=_claiming_dst(func))
    return parser


def _claiming_dst(func):
    """``func(args)`` run with the cache folder ``args.dst`` claimed (:mod:`pcseg.claims`): a second
    run into it fails in one line, and what a killed run left there is removed by the next."""
    def run(args) -> int:
        from ..claims import claimed, folder_leftovers

        with claimed([args.dst], folder_leftovers):
            return func(args)
    return run


def run_s3dis(args) -> int:
    from ..data.s3dis import prepare_s3dis

    reports = prepare_s3dis(args.src, args.dst, workers=args.workers)
    for report in reports:
        for line in report.repaired + report.skipped:
            print(line)
    entries = [r.entry for r in reports]
    resumed = sum(r.resumed for r in reports)
    unknown = Counter(name for e in entries for name in e.get("unknown_classes", []))
    _print_table([
        ("rooms", f"{len(reports)} ({resumed} already done)"),
        ("points", f"{sum(e['num_points'] for e in entries):,}"),
        ("lines repaired", str(sum(e.get("repaired_lines", 0) for e in entries))),
        ("lines skipped", str(sum(e.get("skipped_lines", 0) for e in entries))),
        ("unknown classes -> clutter (files)",
         ", ".join(f"{k} ({v})" for k, v in sorted(unknown.items())) or "none"),
        ("cache", str(args.dst)),
    ])
    if resumed and any(e.get("repaired_lines") or e.get("skipped_lines") for e in entries):
        print("(bad lines of rooms prepared earlier were listed by that run)")
    return 0


def run_scannet(args) -> int:
    from ..data.scannet import DEFAULT_MAPPING, prepare_scannet

    reports = prepare_scannet(args.src, args.dst, args.mapping or DEFAULT_MAPPING, workers=args.workers)
    entries = [r.entry for r in reports]
    labelled = sum(sum(e["class_counts"]) for e in entries)
    total = sum(e["num_points"] for e in entries)
    _print_table([
        ("scans", f"{len(reports)} ({sum(r.resumed for r in reports)} already done) "
                  f"of {len({e['area'] for e in entries})} rooms"),
        ("points", f"{total:,} ({total - labelled:,} unannotated -> 255)"),
        ("cache", str(args.dst)),
    ])
    return 0


def run_ply(args) -> int:
    from ..data.ply_folder import prepare_ply_folder

    reports = prepare_ply_folder(args.src, args.dst, args.classes, workers=args.workers)
    _print_table([
        ("clouds", f"{len(reports)} ({sum(r.resumed for r in reports)} already done)"),
        ("points", f"{sum(r.entry['num_points'] for r in reports):,}"),
        ("labels outside the table -> 255", str(sum(r.unknown_labels for r in reports))),
        ("non-finite points left out", str(sum(r.dropped_points for r in reports))),
        ("cache", str(args.dst)),
    ])
    return 0


def _print_table(rows) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
