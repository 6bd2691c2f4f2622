"""The ``pcseg`` command line: one sub-command per module in :mod:`pcseg.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and
sets ``func`` to the function that runs it. User errors (:class:`PcsegError`)
are printed as one line, ``pcseg: error: ...``, with exit status 2; warnings (a file
holding fewer points than its header says, a property renamed for the output format) as
one line each, ``pcseg: warning: ...``.
"""

import argparse
import importlib
import sys
import warnings

from .errors import PcsegError

#: Sub-command modules under ``pcseg.commands``, in the order ``--help`` lists them.
COMMANDS = ("info", "generate", "prepare", "train", "eval", "export", "segment", "view")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="pcseg", description="Semantic segmentation of indoor 3D point clouds.")
    parser.add_argument("--version", action="version", version=f"pcseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"pcseg.commands.{name}").register(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command line: one line, ``pcseg: warning: <message>``."""
    print(f"pcseg: warning: {message}", file=file or sys.stderr)


def main(argv=None) -> int:
    """Entry point of the ``pcseg`` script; returns the process exit status."""
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except PcsegError as exc:
        print(f"pcseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
