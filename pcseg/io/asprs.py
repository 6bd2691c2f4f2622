"""The S3DIS -> ASPRS class table of LAS/LAZ outputs.

LAS readers (PDAL, CloudCompare, QGIS, LAStools) colour and filter by the ASPRS
``classification`` codes (LAS 1.4 R15, table 17), which describe terrain and structures,
not rooms. pcseg maps the building's fabric to *Building* (6), the floor, the surface
walked on, to *Ground* (2), so that ground-based tools (height above ground, floor
models) work on indoor scans, and furniture and objects, which have no ASPRS class, to
*Unclassified* (1: processed, no standard class). Points without a class (non-finite
input points) get *Created, never classified* (0). Every code exists in every LAS point
format (0-31); the exact class id is always written beside it (the ``label`` dimension).
"""

from __future__ import annotations

import numpy as np

from ..classes import S3DIS_CLASSES, UNLABELLED

#: ASPRS codes pcseg writes, with their standard names.
ASPRS_NAMES = {0: "Created, never classified", 1: "Unclassified", 2: "Ground", 6: "Building"}

#: ASPRS code of each S3DIS class, by name.
S3DIS_TO_ASPRS = {
    "ceiling": 6, "floor": 2, "wall": 6, "beam": 6, "column": 6, "window": 6, "door": 6,
    "table": 1, "chair": 1, "sofa": 1, "bookcase": 1, "board": 1, "clutter": 1,
}
#: ASPRS code of class ids beyond the S3DIS table and of unlabelled points (255).
OTHER_CLASS_CODE = 1
UNLABELLED_CODE = 0


def asprs_codes(labels: np.ndarray) -> np.ndarray:
    """(N,) uint8 ASPRS codes of class ids ``labels`` (N,) in 0-255 (S3DIS ids, 255 unlabelled)."""
    table = np.full(256, OTHER_CLASS_CODE, np.uint8)
    table[:len(S3DIS_CLASSES)] = [S3DIS_TO_ASPRS[name] for name in S3DIS_CLASSES]
    table[UNLABELLED] = UNLABELLED_CODE
    return table[np.asarray(labels, np.uint8)]
