"""The ``pcseg`` command line: one sub-command per module in :mod:`pcseg.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and
sets ``func`` to the function that runs it. User errors (:class:`PcsegError`)
are printed as one line, ``pcseg: error: ...``, with exit status 2 (an error another process
of a torchrun job reports is not printed twice); warnings (a file holding fewer points than its
header says, a property renamed for the output format) as one line each, ``pcseg: warning: ...``.
Ctrl-C (status 130) and SIGTERM (status 143) unwind the command like an error, so its temporary
files, scratch folders and output claims are removed (:mod:`pcseg.claims`).
"""

import argparse
import contextlib
import importlib
import os
import signal
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


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM (a BaseException, as KeyboardInterrupt, so that no
    ``except Exception`` stops it)."""


@contextlib.contextmanager
def sigterm_unwinds():
    """While the block runs, SIGTERM raises :class:`Terminated` in this process (not in processes
    forked from it), once: a second SIGTERM during the unwinding is ignored."""
    pid = os.getpid()

    def terminate(signum, frame):
        if os.getpid() != pid:
            os._exit(128 + signum)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        with sigterm_unwinds():
            return args.func(args) or 0
    except PcsegError as exc:
        if not getattr(exc, "reported_elsewhere", False):
            print(f"pcseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcseg: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("pcseg: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
