"""``pcseg view FILE [--gt FILE] [--render PNG]``: look at a labelled cloud."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("view", help="show a labelled cloud (window, or --render PNG)")
    parser.add_argument("file", help="a labelled cloud (its 'label' property), e.g. pcseg segment's output")
    parser.add_argument("--gt", default=None, help="ground truth with the same points: side by side + errors")
    parser.add_argument("--render", default=None, metavar="PNG", help="write a picture instead of a window")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing picture")
    parser.set_defaults(func=run)


def run(args) -> int:
    import warnings

    import numpy as np

    from ..classes import S3DIS_CLASSES, UNLABELLED
    from ..errors import PcsegError
    from ..fileutil import check_output_path
    from ..io import read_cloud
    from ..viz.window import has_display, legend_text, show_window

    if args.render is None and not has_display():
        raise PcsegError("no display to open a window on; use --render PNG to write a picture")
    if args.render is not None:
        check_output_path(args.render, inputs=[args.file] + ([args.gt] if args.gt else []), overwrite=args.overwrite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cloud = read_cloud(args.file)
        gt_cloud = read_cloud(args.gt) if args.gt else None
    if cloud.labels is None:
        raise PcsegError(f"{args.file}: no label property (segment it first with pcseg segment)")
    labels = cloud.labels
    gt = None
    if gt_cloud is not None:
        if gt_cloud.labels is None:
            raise PcsegError(f"{args.gt}: no label property")
        if len(gt_cloud) != len(cloud):
            raise PcsegError(f"{args.gt}: {len(gt_cloud)} points, but {args.file} has {len(cloud)}")
        gt = gt_cloud.labels
    print(legend_text(np.concatenate([labels, gt]) if gt is not None else labels, S3DIS_CLASSES))
    if args.render is not None:
        from ..viz.render import render_png
        render_png(args.render, cloud.xyz, labels, S3DIS_CLASSES, gt=gt, title=str(args.file))
        print(f"picture: {args.render}")
        return 0
    panels = [("prediction", cloud.xyz, labels)]
    if gt is not None:
        from ..viz.render import RIGHT_COLOR, WRONG_COLOR
        wrong = (labels != gt) & (gt != UNLABELLED)
        panels += [("ground truth", cloud.xyz, gt),
                   ("errors", cloud.xyz, np.where(wrong[:, None], WRONG_COLOR, RIGHT_COLOR))]
    show_window(panels)
    return 0
