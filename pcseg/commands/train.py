"""``pcseg train --config FILE_OR_NAME [--set key=value ...] --out RUN_DIR [--resume]``."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model on a prepared dataset")
    parser.add_argument("--config", required=True,
                        help="a YAML file or a bundled config name (e.g. pointnet_synthetic)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=0.002 (repeatable)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, metrics, plots)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..config import apply_overrides, load_config
    from ..training.loop import train
    from ..training.run_dir import RunDir

    if args.resume:
        config = load_checkpoint(RunDir(args.out, resume=True).last)["config"]
    else:
        config = apply_overrides(load_config(args.config), args.overrides)
    train(config, args.out, resume=args.resume)
    return 0
