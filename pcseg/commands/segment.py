"""``pcseg segment INPUT [INPUT ...] -o OUTPUT``: label every point of scans."""

from __future__ import annotations

import sys
from pathlib import Path

from ..io.writers import OUTPUT_FORMATS
from ..refine import add_refine_arguments
from ..units import add_units_argument
from ..up_axis import add_up_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="label every point of PLY/LAS/PCD scans")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="scans (.ply .las .laz .pcd)")
    parser.add_argument("-o", "--output", required=True,
                        help="labelled file, the writer chosen by its suffix: .ply, .las/.laz (ASPRS classification "
                             "+ label + confidence), .npy/.txt (labels only); or a folder (several inputs, or no "
                             "suffix: <stem>_labelled.<format> each)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                        help="format of the files written into an output folder (default: each input's own; "
                             "ply for .pcd)")
    parser.add_argument("--probabilities", default=None, metavar="NPY",
                        help="also save the (N, classes) float16 probabilities (a folder when there are several "
                             "inputs: <stem>_probabilities.npy each)")
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
    add_refine_arguments(parser)
    parser.add_argument("--render", default=None, metavar="PNG",
                        help="also write a picture (a folder when there are several inputs)")
    add_up_argument(parser)
    add_units_argument(parser)
    parser.add_argument("--keep-colors", action="store_true",
                        help="keep the input colours in a PLY output (default: points take their class colour; "
                             "LAS outputs always keep them)")
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory budget, e.g. 6G: larger clouds (binary PLY, LAS, LAZ) are read, segmented "
                             "and written in spatial tiles as PLY, with the labels of a whole-cloud run "
                             "(default: half the machine's memory)")
    parser.add_argument("--scratch", default=None, metavar="DIR",
                        help="folder for the scratch files of clouds over --max-memory (default: the output's "
                             "folder; about 100-300 bytes a point, removed at the end)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    parser.set_defaults(func=run)


def plan_outputs(args) -> list[tuple[Path, Path, Path | None, Path | None]]:
    """(input, labelled output, picture or None, probabilities or None) per input; every path check
    done before any work."""
    from ..errors import PcsegError
    from ..fileutil import check_output_path
    from ..io import READERS, check_cloud_file
    from ..io.writers import folder_output_name, output_format

    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.is_file():
            raise PcsegError(f"{path}: no such file")
        if path.suffix.lower() not in READERS:
            raise PcsegError(f"{path}: unsupported file type (supported: {', '.join(sorted(READERS))})")
        check_cloud_file(path)  # a bad header fails here, before the model loads
    several = len(inputs) > 1
    out = Path(args.output)
    to_folder = several or out.is_dir() or not out.suffix
    if to_folder:
        if several and ((out.exists() and not out.is_dir()) or out.suffix.lower().lstrip(".") in OUTPUT_FORMATS):
            raise PcsegError(f"{out}: with several inputs, -o must be a folder")
        if out.exists() and not out.is_dir():
            raise PcsegError(f"{out}: a file output needs a suffix ({', '.join('.' + f for f in OUTPUT_FORMATS)})")
        if len({p.stem for p in inputs}) != len(inputs):
            raise PcsegError("several inputs share a file name; their outputs would collide")
    elif args.format not in (None, output_format(out)):  # output_format: PcsegError for an unknown suffix
        raise PcsegError(f"--format {args.format} contradicts -o {out} (--format is for output folders)")
    if args.probabilities and not several and Path(args.probabilities).suffix.lower() != ".npy":
        raise PcsegError(f"{args.probabilities}: --probabilities must name a .npy file")
    plan = []
    for path in inputs:
        target = out / folder_output_name(path, args.format) if to_folder else out
        picture = probabilities = None
        if args.render:
            picture = Path(args.render) / f"{path.stem}_labelled.png" if several else Path(args.render)
            if picture.suffix.lower() != ".png":
                raise PcsegError(f"{picture}: --render must name a .png file")
            check_output_path(picture, inputs=inputs, overwrite=args.overwrite)
        if args.probabilities:
            probabilities = Path(args.probabilities)
            if several:
                probabilities = probabilities / f"{path.stem}_probabilities.npy"
            check_output_path(probabilities, inputs=inputs, overwrite=args.overwrite)
        plan.append((path, check_output_path(target, inputs=inputs, overwrite=args.overwrite), picture,
                     probabilities))
    written = [p for row in plan for p in row[1:] if p is not None]
    if len(set(written)) < len(written):
        raise PcsegError("two outputs share a path (-o, --render and --probabilities must differ)")
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


def print_placement(placement) -> None:
    """The lines saying what was assumed about a scan's up axis and unit, and a warning when it
    does not look like an indoor scan."""
    for note in placement.notes:
        print(f"pcseg: note: {note}", file=sys.stderr)
    if placement.warning:
        print(f"pcseg: warning: {placement.warning}", file=sys.stderr)


def run(args) -> int:
    import time
    from contextlib import ExitStack

    from ..fileutil import deferred_renames
    from ..ranks import Ranks

    started = time.perf_counter()
    ranks = Ranks.start()  # under torchrun, each process segments its share of the inputs
    with ranks.stopping_together(), ExitStack() as stack:
        plan, tiled, budget = claim_and_plan(args, ranks, stack)
        # several ranks: every output waits for every rank's success, then all are renamed in place
        outputs = stack.enter_context(deferred_renames()) if ranks.world > 1 else None
        segment_plan(args, ranks, plan, tiled, budget, outputs, started)
    return 0


def claim_and_plan(args, ranks, stack):
    """(plan rows, inputs over the budget, budget bytes), every path checked on every rank before any
    work; rank 0 claims every output (held until ``stack`` closes), which also checks their folders are
    writable. Each rank reads the headers of its share of the inputs only."""
    from ..claims import claimed
    from ..fileutil import check_output_path
    from ..tiled import check_scratch, default_budget, parse_size, tiled_inputs

    with ranks.all_or_none():
        plan = plan_outputs(args)
        budget = default_budget() if args.max_memory is None else parse_size(args.max_memory)
        if args.scratch is not None:
            check_scratch(args.scratch)
        if ranks.is_first:
            written = [p for row in plan for p in row[1:] if p is not None]
            stack.enter_context(claimed(written))
            for path in written:  # again, now that no other run can write it
                check_output_path(path, overwrite=args.overwrite)
        mine = [row for _, row in ranks.share(plan, [row[0].stat().st_size for row in plan])]
        tiled_here = tiled_inputs(mine, budget)  # larger than the budget: read, segmented and written in tiles
    return plan, set().union(*ranks.gather_all(tiled_here)), budget


def segment_plan(args, ranks, plan, tiled, budget, outputs, started: float) -> None:
    """Segment every row of ``plan`` this rank has a share of and print the reports (rank 0);
    ``outputs``: the deferred renames of a run of several ranks, committed once every rank is done;
    ``started``: the run's start (``time.perf_counter()``)."""
    import time
    import warnings

    from ..fileutil import check_free_space
    from ..io import read_cloud, write_labelled, write_probabilities
    from ..io.labelled import confidence_of
    from ..io.writers import check_writable, expected_size
    from ..segment import Segmenter
    from ..summary import class_summary
    from ..tiled import segment_tiled

    segmenter = Segmenter.load(args.model, ranks.device(args.device), args.batch_size, args.block_size, args.stride,
                               args.num_points, args.up, args.voxel_size, args.votes, args.refine, args.units)
    # inputs over the budget first, their tiles shared by every rank; then the others, one rank each
    mine = [(i, row) for i, row in enumerate(plan) if row[0] in tiled]
    mine += [(i, row) for i, row in ranks.share(plan, [row[0].stat().st_size for row in plan]) if row[0] not in tiled]
    classes = len(segmenter.class_names)

    def needs(row, cloud):
        """(folder, bytes) of the files written for ``row``."""
        _, target, _, probabilities = row
        return [(target.parent, expected_size(target, cloud))] + (
            [(probabilities.parent, 128 + 2 * classes * len(cloud))] if probabilities is not None else [])

    if len(plan) > 1:  # a bad file later in the list must fail before anything is written
        with ranks.all_or_none(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported when the file is segmented
            space = []
            for _, row in mine:
                if row[0] not in tiled:
                    cloud = read_cloud(row[0])
                    check_writable(row[1], cloud)
                    space += needs(row, cloud)
            check_free_space(space)
    reports = {}
    for index, row in mine:
        source, target, picture, probabilities = row
        with ranks.report(reports, index):
            if source in tiled:  # read, segmented and written tile by tile (the time counts all three)
                start = time.perf_counter()
                result = segment_tiled(segmenter, source, target, budget, keep_colors=args.keep_colors,
                                       overwrite=args.overwrite, progress=ranks.is_first, ranks=ranks,
                                       scratch=args.scratch, placed=print_placement)
                seconds = time.perf_counter() - start
                if result is None:  # another rank's share of the tiles: rank 0 writes and reports
                    continue
                labels, confidence, placement = result
            else:
                cloud = read_reporting_warnings(source)
                check_writable(target, cloud)
                check_free_space(needs(row, cloud))
                start = time.perf_counter()
                placement = segmenter.place(cloud, str(source))
                print_placement(placement)
                labels, probs = segmenter.labels(cloud, progress=ranks.is_first, placement=placement)
                seconds = time.perf_counter() - start
                confidence = confidence_of(probs)
                write_labelled(target, cloud, labels, confidence, keep_colors=args.keep_colors, overwrite=args.overwrite)
            print(f"{source} -> {target}: {len(labels):,} points labelled in {seconds:.1f} s "
                  f"({segmenter.device}, {segmenter.block_size:g} m blocks, stride {segmenter.stride:g} m, "
                  f"voxel {segmenter.voxel_size:g} m, {segmenter.votes} vote{'s' if segmenter.votes > 1 else ''}"
                  f"{', flat patches voted' if segmenter.refine else ''}{', in tiles' if source in tiled else ''})")
            if probabilities is not None:
                write_probabilities(probabilities, cloud, probs, overwrite=args.overwrite)
                print(f"probabilities: {probabilities}")
            print(class_summary(labels, segmenter.class_names, confidence))
            if placement.warning:
                print(f"warning: {placement.warning}")
            if picture is not None:
                from ..viz.render import render_png
                render_png(picture, placement.model_xyz(cloud.xyz), labels, segmenter.class_names, valid=cloud.valid, title=source.name)
                print(f"picture: {picture}")
    if outputs is not None:
        ranks.barrier()  # every rank's outputs are written: none failed
        outputs.commit()
    ranks.print_reports(reports, f"{len(plan)} scan{'s' if len(plan) > 1 else ''} segmented by {ranks.world} "
                                 f"processes in {time.perf_counter() - started:.1f} s")
