"""Per-point arrays without the points: labels alone and class probabilities.

Labels go to ``.npy`` (uint8 (N,), as the room cache's ``label.npy``) or ``.txt`` (one class
id a line, as the S3DIS benchmark's result files), 255 marking the cloud's non-finite
points; probabilities to a float16 ``.npy`` (N, C). Row / line i is point i of the input.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..fileutil import atomic_path, check_output_path
from .cloud import Cloud
from .labelled import output_labels

def write_label_file(path: os.PathLike, cloud: Cloud, labels: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write ``labels`` (N,) of ``cloud`` to ``path`` (.npy or .txt, by suffix), atomically.

    Refuses to overwrite the input and, unless ``overwrite``, an existing output.
    """
    inputs = [cloud.path] if cloud.path is not None else []
    path = check_output_path(path, inputs=inputs, overwrite=overwrite)
    labels = output_labels(path, cloud, labels).astype(np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if path.suffix.lower() == ".npy":
            np.save(fh, labels)
        else:
            np.savetxt(fh, labels, fmt="%d")
    return path


def write_probabilities(path: os.PathLike, cloud: Cloud, probabilities: np.ndarray, *,
                        overwrite: bool = False) -> Path:
    """Write the class probabilities (N, C) of ``cloud`` to the .npy ``path`` as float16, atomically
    (rows of non-finite points are 0). Refuses to overwrite the input and, unless ``overwrite``,
    an existing output."""
    inputs = [cloud.path] if cloud.path is not None else []
    path = check_output_path(path, inputs=inputs, overwrite=overwrite)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(probabilities, np.float16))
    return path
