"""The S3DIS class table: names, ids and the display palette.

Class ids are 0..12 in the order of the S3DIS benchmark. ``UNLABELLED`` (255)
marks points that carry no class, e.g. non-finite points of a scan, which are
kept in outputs so the point count never changes.
"""

import numpy as np

S3DIS_CLASSES = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door",
    "table", "chair", "sofa", "bookcase", "board", "clutter",
)

#: Label written for points that have no class (non-finite input points).
UNLABELLED = 255

#: RGB colour (uint8) per class, distinct and readable on white and black.
S3DIS_PALETTE = np.array([
    [152, 223, 138],  # ceiling   light green
    [174, 199, 232],  # floor     light blue
    [255, 187, 120],  # wall      light orange
    [140, 86, 75],    # beam      brown
    [148, 103, 189],  # column    purple
    [23, 190, 207],   # window    cyan
    [214, 39, 40],    # door      red
    [31, 119, 180],   # table     blue
    [255, 127, 14],   # chair     orange
    [227, 119, 194],  # sofa      pink
    [44, 160, 44],    # bookcase  green
    [188, 189, 34],   # board     olive
    [127, 127, 127],  # clutter   grey
], dtype=np.uint8)

#: Colour of points with label ``UNLABELLED``.
UNLABELLED_COLOR = np.array([0, 0, 0], dtype=np.uint8)


def colors_for_labels(labels: np.ndarray, palette: np.ndarray = S3DIS_PALETTE) -> np.ndarray:
    """Map integer labels ``(N,)`` to uint8 colours ``(N, 3)``; out-of-range labels get black."""
    labels = np.asarray(labels)
    out = np.empty((labels.shape[0], 3), dtype=np.uint8)
    out[:] = UNLABELLED_COLOR
    known = (labels >= 0) & (labels < len(palette))
    out[known] = palette[labels[known]]
    return out
