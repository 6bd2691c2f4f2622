"""``pcseg segment INPUT [INPUT ...] -o OUTPUT``: label every point of scans."""

from __future__ import annotations

import sys
from pathlib import Path

from ..up_axis import add_up_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="label every point of PLY/LAS/PCD scans")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="scans (.ply .las .laz .pcd)")
    parser.add_argument("-o", "--output", required=True,
                        help="labelled PLY (one input) or a folder (several: <stem>_labelled.ply each)")
    parser.add_argument("--model", default=None,
                        help="bundled model name or checkpoint path (default: the bundled default; "
                             "names: pcseg/weights/README.md)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=16, help="full block samples' worth of points per forward pass (default 16)")
    parser.add_argument("--block-size", type=float, default=None, help="block side, metres (default: the model's)")
    parser.add_argument("--stride", type=float, default=None,
                        help="block stride, metres, at most the block size (default: the model's)")
    parser.add_argument("--num-points", type=int, default=None, help="points per block sample (default: the model's)")
    parser.add_argument("--voxel-size", type=float, default=None, metavar="METRES",
                        help="run the model on one point per voxel of this side; points of a voxel share "
                             "its label (default 0.02; 0 runs every point)")
    parser.add_argument("--votes", type=int, default=1,
                        help="average this many turns of every block about the vertical (test-time "
                             "augmentation; costs as many times the time; default 1)")
    parser.add_argument("--render", default=None, metavar="PNG",
                        help="also write a picture (a folder when there are several inputs)")
    add_up_argument(parser)
    parser.add_argument("--keep-colors", action="store_true",
                        help="keep the input colours (default: points take their class colour)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    parser.set_defaults(func=run)


def plan_outputs(args) -> list[tuple[Path, Path, Path | None]]:
    """(input, labelled PLY, picture or None) per input; every path check done before any work."""
    from ..errors import PcsegError
    from ..fileutil import check_output_path
    from ..io import READERS

    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.is_file():
            raise PcsegError(f"{path}: no such file")
        if path.suffix.lower() not in READERS:
            raise PcsegError(f"{path}: unsupported file type (supported: {', '.join(sorted(READERS))})")
    several = len(inputs) > 1
    out = Path(args.output)
    if several:
        if (out.exists() and not out.is_dir()) or out.suffix.lower() == ".ply":
            raise PcsegError(f"{out}: with several inputs, -o must be a folder")
        if len({p.stem for p in inputs}) != len(inputs):
            raise PcsegError("several inputs share a file name; their outputs would collide")
    elif out.suffix.lower() != ".ply":
        raise PcsegError(f"{out}: the output must be a .ply file")
    plan = []
    for path in inputs:
        target = out / f"{path.stem}_labelled.ply" if several else out
        picture = None
        if args.render:
            picture = Path(args.render) / f"{path.stem}_labelled.png" if several else Path(args.render)
            if picture.suffix.lower() != ".png":
                raise PcsegError(f"{picture}: --render must name a .png file")
            check_output_path(picture, inputs=inputs, overwrite=args.overwrite)
        plan.append((path, check_output_path(target, inputs=inputs, overwrite=args.overwrite), picture))
    return plan


def read_reporting_warnings(path: Path):
    """``read_cloud(path)``, its warnings (e.g. non-finite points) printed as ``pcseg: warning: ...``."""
    import warnings

    from ..io import read_cloud

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloud = read_cloud(path)
    for warning in caught:
        print(f"pcseg: warning: {warning.message}", file=sys.stderr)
    return cloud


def run(args) -> int:
    import time
    import warnings

    from ..io import read_cloud, write_labelled_ply
    from ..segment import Segmenter
    from ..summary import class_summary
    from ..up_axis import to_z_up

    plan = plan_outputs(args)
    segmenter = Segmenter.load(args.model, args.device, args.batch_size, args.block_size, args.stride,
                               args.num_points, args.up, args.voxel_size, args.votes)
    if len(plan) > 1:  # a bad file later in the list must fail before anything is written
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported when the file is segmented
            for source, _, _ in plan:
                read_cloud(source)
    for source, target, picture in plan:
        cloud = read_reporting_warnings(source)
        start = time.perf_counter()
        labels, _ = segmenter.labels(cloud)
        seconds = time.perf_counter() - start
        write_labelled_ply(target, cloud, labels, keep_colors=args.keep_colors, overwrite=args.overwrite)
        print(f"{source} -> {target}: {len(cloud):,} points labelled in {seconds:.1f} s "
              f"({segmenter.device}, {segmenter.block_size:g} m blocks, stride {segmenter.stride:g} m, "
              f"voxel {segmenter.voxel_size:g} m, {segmenter.votes} vote{'s' if segmenter.votes > 1 else ''})")
        print(class_summary(labels, segmenter.class_names))
        if picture is not None:
            from ..viz.render import render_png
            render_png(picture, to_z_up(cloud.xyz, args.up), labels, segmenter.class_names, valid=cloud.valid, title=source.name)
            print(f"picture: {picture}")
    return 0
