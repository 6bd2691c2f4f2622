"""Labelled outputs, the writer chosen by the output file's suffix.

=============  ==============================================================================
``.ply``       every input property, ``label``, ``confidence``, class colours (:mod:`.ply`)
``.las/.laz``  every input dimension, ASPRS ``classification``, ``label``, ``confidence``
               (:mod:`.las_writer`)
``.npy/.txt``  labels only (:mod:`.label_files`)
=============  ==============================================================================
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PcsegError
from .cloud import Cloud
from .label_files import write_label_file
from .las_writer import check_las_output, write_labelled_las
from .ply import write_labelled_ply

#: Output formats, named by their suffix without the dot.
OUTPUT_FORMATS = ("ply", "las", "laz", "npy", "txt")
#: Format of a folder output for an input of a format pcseg reads but does not write.
FALLBACK_FORMAT = "ply"


def output_format(path: os.PathLike) -> str:
    """The format (``OUTPUT_FORMATS``) ``path``'s suffix names; PcsegError for any other suffix."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise PcsegError(f"{path}: unknown output type '{Path(path).suffix}' "
                         f"(use {', '.join('.' + f for f in OUTPUT_FORMATS)})")
    return fmt


def folder_output_name(source: os.PathLike, fmt: Optional[str] = None) -> str:
    """``<stem>_labelled.<fmt>`` for the input ``source``; ``fmt`` None keeps the input's format
    (``FALLBACK_FORMAT`` for inputs pcseg does not write, e.g. .pcd)."""
    source = Path(source)
    if fmt is None:
        own = source.suffix.lower().lstrip(".")
        fmt = own if own in OUTPUT_FORMATS else FALLBACK_FORMAT
    return f"{source.stem}_labelled.{fmt}"


def check_writable(path: os.PathLike, cloud: Cloud) -> None:
    """Raise :class:`PcsegError` when ``cloud`` cannot be written to ``path``; cheap, meant
    to run before the cloud is segmented."""
    if output_format(path) in ("las", "laz"):
        check_las_output(path, cloud)


def write_labelled(path: os.PathLike, cloud: Cloud, labels: np.ndarray, confidence: np.ndarray, *,
                   keep_colors: bool = False, overwrite: bool = False) -> Path:
    """Write ``labels`` (N,) and ``confidence`` (N,) float in [0, 1] of ``cloud`` to ``path`` with
    the writer its suffix names (``.npy`` / ``.txt`` hold labels only); atomic, never over the
    input, over an existing output only with ``overwrite``. ``keep_colors`` applies to PLY."""
    fmt = output_format(path)
    if fmt == "ply":
        return write_labelled_ply(path, cloud, labels, confidence, keep_colors=keep_colors, overwrite=overwrite)
    if fmt in ("las", "laz"):
        return write_labelled_las(path, cloud, labels, confidence, overwrite=overwrite)
    return write_label_file(path, cloud, labels, overwrite=overwrite)


#: Compressed size of a LAZ point record against its LAS size (laszip typically reaches 1/5 to 1/10).
LAZ_RATIO = 0.1


def expected_size(path: os.PathLike, cloud: Cloud) -> int:
    """Bytes the labelled output ``path`` of ``cloud`` takes, about (a LAZ output: its LAS size times
    :data:`LAZ_RATIO`), for the free-space check done before the cloud is segmented."""
    from .ply import labelled_vertex

    fmt, n = output_format(path), len(cloud)
    if fmt in ("npy", "txt"):
        return 128 + n * (1 if fmt == "npy" else 4)
    base = cloud.properties[:1] if cloud.properties is not None else np.zeros(1, [("x", "f8"), ("y", "f8"), ("z", "f8")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a property PLY cannot hold is said when the output is written
        row = labelled_vertex(base, np.zeros(1, np.int64), np.zeros(1, np.float32), False).dtype.itemsize
    return int(4096 + n * row * (LAZ_RATIO if fmt == "laz" else 1))
