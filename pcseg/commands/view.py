"""``pcseg view FILE [--gt FILE] [--render PNG]``: look at a labelled cloud."""

from __future__ import annotations

from ..up_axis import add_up_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser("view", help="show a labelled cloud (window, or --render PNG)")
    parser.add_argument("file", help="a labelled cloud (its 'label' property), e.g. pcseg segment's output")
    parser.add_argument("--gt", default=None,
                        help="ground truth with the same points: prediction | ground truth | errors")
    parser.add_argument("--render", default=None, metavar="PNG",
                        help="write a picture instead of opening a window (works without a display)")
    parser.add_argument("--color-by", choices=("labels", "confidence"), default="labels",
                        help="confidence: also show each point's confidence (its 'confidence' property, "
                             "written by pcseg segment) in a colour map, beside the labels")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing picture")
    add_up_argument(parser)
    parser.set_defaults(func=run)


def _read_labelled(path: str):
    """The cloud at ``path``; PcsegError when it has no label property."""
    import warnings

    from ..errors import PcsegError
    from ..io import read_cloud

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-finite points: shown as unlabelled, nothing to warn about
        cloud = read_cloud(path)
    if cloud.labels is None:
        raise PcsegError(f"{path}: no label property (label it first with pcseg segment)")
    return cloud


def _confidence(cloud):
    """(N,) float32 ``confidence`` property of ``cloud``, or None when it has none."""
    import numpy as np

    names = () if cloud.properties is None else cloud.properties.dtype.names
    return np.asarray(cloud.properties["confidence"], np.float32) if "confidence" in names else None


def check_same_points(cloud, truth, path: str, truth_path: str) -> None:
    """PcsegError unless ``truth`` holds the points of ``cloud`` in the same order (count,
    validity and coordinates within a millimetre)."""
    import numpy as np

    from ..errors import PcsegError

    if len(truth) != len(cloud):
        raise PcsegError(f"{truth_path}: {len(truth):,} points, but {path} has {len(cloud):,}")
    same_valid = np.array_equal(truth.valid, cloud.valid)
    offset = np.abs(truth.absolute_xyz()[cloud.valid] - cloud.absolute_xyz()[cloud.valid]) if same_valid else None
    if offset is None or (len(offset) and offset.max() > 1e-3):
        far = "different non-finite points" if offset is None else f"points up to {offset.max():.3g} apart"
        raise PcsegError(f"{truth_path}: not the same points as {path} ({far}); --gt needs the ground truth "
                         f"of the same cloud, point for point")


def view_up(cloud, up: str, name: str) -> str:
    """``up``, or for "auto" the axis :func:`pcseg.placement.place` finds (a line says so when not z)."""
    import sys

    if up != "auto":
        return up
    from ..placement import place

    placement = place(cloud, up, "m", name)
    for note in placement.notes:
        print(f"pcseg: note: {note}", file=sys.stderr)
    return placement.up


def run(args) -> int:
    """Show or render, with ``--render`` claimed (:mod:`pcseg.claims`) for the whole run."""
    from ..claims import claimed

    with claimed([args.render] if args.render is not None else []):
        return _view(args)


def _view(args) -> int:
    from pathlib import Path

    from ..classes import S3DIS_CLASSES, colors_for_labels
    from ..errors import PcsegError
    from ..fileutil import check_output_path
    from ..up_axis import to_z_up
    from ..viz.window import has_display, legend_text, show_window

    if args.render is None and not has_display():
        raise PcsegError("no display to open a window on (headless); use --render PNG to write a picture")
    if args.render is not None:
        if Path(args.render).suffix.lower() != ".png":
            raise PcsegError(f"{args.render}: --render must name a .png file")
        check_output_path(args.render, inputs=[args.file] + ([args.gt] if args.gt else []),
                          overwrite=args.overwrite)
    cloud = _read_labelled(args.file)
    gt = None
    if args.gt:
        truth = _read_labelled(args.gt)
        check_same_points(cloud, truth, args.file, args.gt)
        gt = truth.labels
    confidence = _confidence(cloud)
    if args.color_by == "confidence" and confidence is None:
        raise PcsegError(f"{args.file}: no confidence property (label it with pcseg segment)")
    print(legend_text(cloud.labels, S3DIS_CLASSES, confidence=confidence))
    up = view_up(cloud, args.up, args.file)
    shown_confidence = confidence if args.color_by == "confidence" else None
    if args.render is not None:
        from ..viz.render import render_png
        render_png(args.render, to_z_up(cloud.xyz, up), cloud.labels, S3DIS_CLASSES, valid=cloud.valid, gt=gt,
                   confidence=shown_confidence, title=Path(args.file).name,
                   labels_title="prediction" if gt is not None else "labels")
        print(f"picture: {args.render}")
        return 0
    from ..viz.render import confidence_colors, error_colors
    xyz, valid = to_z_up(cloud.xyz, up)[cloud.valid], cloud.valid
    colorings = [("prediction" if gt is not None else "labels", colors_for_labels(cloud.labels[valid]))]
    if gt is not None:
        colorings += [("ground truth", colors_for_labels(gt[valid])),
                      ("errors (red)", error_colors(cloud.labels[valid], gt[valid])[0])]
    if shown_confidence is not None:
        colorings.append(("confidence (dark: unsure)", confidence_colors(shown_confidence[valid])))
    show_window(xyz, colorings)
    return 0
