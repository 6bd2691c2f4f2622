"""``pcseg train --config FILE_OR_NAME [--set key=value ...] --out RUN_DIR [--resume]``.

The run folder is claimed (:mod:`pcseg.claims`) for the whole run, so a second run into it fails in
one line; a run that fails before its first checkpoint leaves no folder behind.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model on a prepared dataset")
    parser.add_argument("--config", required=True,
                        help="a YAML file or a bundled config name (e.g. pointnet_synthetic)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=0.002 (repeatable; "
                             "applies to every stage of a staged config)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, metrics, plots)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.set_defaults(func=run)


def run(args) -> int:
    import os
    from pathlib import Path

    from ..claims import claimed, folder_leftovers
    from ..errors import PcsegError

    out = Path(args.out)
    first = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 claims the run folder
    with claimed([out] if first else [], folder_leftovers):
        new = not out.exists()
        try:
            return _train(args)
        except PcsegError:
            if first and new and not args.resume:
                _remove_unstarted(out)
            raise


def _remove_unstarted(out) -> None:
    """Remove the run folder ``out`` a failed run made, unless it holds a checkpoint to resume."""
    import shutil

    if out.is_dir() and not any(out.rglob("last.pt")):
        shutil.rmtree(out)


def _train(args) -> int:
    from pathlib import Path

    from ..checkpoint import load_checkpoint
    from ..config import apply_overrides, load_config
    from ..training.loop import train
    from ..training.run_dir import RunDir
    from ..training.stages import PLAN_FILE, is_staged, train_stages

    if args.resume and (Path(args.out) / PLAN_FILE).is_file():
        train_stages({}, [], args.out, resume=True)
        return 0
    if args.resume:
        config = load_checkpoint(RunDir(args.out, resume=True).last)["config"]
    else:
        config = load_config(args.config)
        if is_staged(config):
            last = train_stages(config, args.overrides, args.out)
            print(f"all stages done; the last stage's run folder: {last}")
            return 0
        config = apply_overrides(config, args.overrides)
    train(config, args.out, resume=args.resume)
    return 0
