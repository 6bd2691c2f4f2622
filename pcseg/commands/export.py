"""``pcseg export CHECKPOINT OUT.pt``: an inference-only, float16 copy of a trained checkpoint."""

from __future__ import annotations

from ..refine import add_refine_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a small inference-only copy of a checkpoint")
    parser.add_argument("checkpoint", help="a training checkpoint (e.g. RUN_DIR/best.pt)")
    parser.add_argument("output", help="the .pt file to write")
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_refine_arguments(parser, on="run the model with flat-patch voting by default (default: as the "
                                    "checkpoint says)", off="run the model without flat-patch voting by default")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..checkpoint import export_checkpoint
    from ..claims import claimed
    from ..errors import PcsegError
    from ..fileutil import check_output_path

    if Path(args.output).suffix != ".pt":
        raise PcsegError(f"{args.output}: the output must be a .pt file")
    with claimed([args.output]):
        check_output_path(args.output, inputs=[args.checkpoint], overwrite=args.overwrite)
        export_checkpoint(args.checkpoint, args.output, half=not args.fp32, refine=args.refine)
    before, after = Path(args.checkpoint).stat().st_size, Path(args.output).stat().st_size
    print(f"{args.checkpoint} ({before / 1e6:.1f} MB) -> {args.output} ({after / 1e6:.1f} MB, "
          f"{'float32' if args.fp32 else 'float16'} weights)")
    return 0
