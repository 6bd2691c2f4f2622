"""Reading and writing point clouds: PLY (plyfile), LAS/LAZ (laspy), PCD (pypcd4).

Every reader returns a :class:`Cloud`; :func:`read_cloud` picks the reader by the
file extension, :func:`write_labelled` the labelled-output writer by the output's
(.ply, .las, .laz, .npy, .txt). See docs/FORMATS.md for what is read and written and
how bad files are reported.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PcsegError
from .cloud import Cloud
from .las import read_las
from .las_layout import inspect_las
from .pcd import read_pcd
from .label_files import write_label_file, write_probabilities
from .las_writer import write_labelled_las
from .ply import check_ply_header, read_ply, write_labelled_ply, write_ply
from .writers import write_labelled

READERS = {".ply": read_ply, ".las": read_las, ".laz": read_las, ".pcd": read_pcd}


def read_cloud(path: os.PathLike) -> Cloud:
    """Read a point cloud file (.ply, .las, .laz, .pcd) into a :class:`Cloud`.

    Raises :class:`PcsegError` with a one-line message naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise PcsegError(f"{path}: no such file")
    if path.is_dir():
        raise PcsegError(f"{path}: is a directory, expected a point cloud file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PcsegError(f"{path}: unsupported file type '{path.suffix}' "
                         f"(supported: {', '.join(sorted(READERS))})")
    return reader(path)


def check_cloud_file(path: os.PathLike) -> None:
    """Check a cloud file's header (PLY; LAS/LAZ: :func:`pcseg.io.las_layout.inspect_las`) against its
    size without decoding its points: cheap, meant to run before any work. Raises :class:`PcsegError`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        check_ply_header(path)
    elif suffix in (".las", ".laz"):
        inspect_las(path)


__all__ = ["check_cloud_file", "Cloud", "read_cloud", "read_ply", "read_las", "read_pcd", "write_ply",
           "write_labelled", "write_labelled_ply", "write_labelled_las", "write_label_file",
           "write_probabilities"]
