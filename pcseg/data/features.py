"""Per-point input channels of the models, as in PointNet's S3DIS setup.

Feature sets (channels in this order):

- ``xyzrgbn`` (9): block-centred xyz, rgb / 255, room-normalised xyz
- ``xyzrgb`` (6):  block-centred xyz, rgb / 255
- ``xyzn`` (6):    block-centred xyz, room-normalised xyz
- ``xyz`` (3):     block-centred xyz

Block-centred xyz is in metres: x and y minus the block centre, z minus the room's
floor (``room_min[2]``). Room-normalised xyz is ``(xyz - room_min) / (room_max - room_min)``
in [0, 1] (extent clamped to at least 1 cm). Clouds without colours get
``MISSING_RGB`` (mid grey) for every point; training's colour drop uses the same value,
so models learn to work without colours. A model trained with ``data.colours: false`` never
reads colours: every point of its training blocks and of the clouds it segments gets
``MISSING_RGB`` (its checkpoint's ``data.colours``; see :func:`pcseg.infer.predict_probabilities`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

FEATURE_SETS = {"xyzrgbn": 9, "xyzrgb": 6, "xyzn": 6, "xyz": 3}

#: Colour (0-1 per channel) standing in for a cloud without colours.
MISSING_RGB = 0.5


def check_feature_set(name: str) -> int:
    """Number of channels of feature set ``name``; ValueError for an unknown name."""
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; choose one of {', '.join(FEATURE_SETS)}")
    return FEATURE_SETS[name]


def make_features(xyz: np.ndarray, rgb: Optional[np.ndarray], block_center: np.ndarray,
                  room_min: np.ndarray, room_max: np.ndarray, feature_set: str) -> np.ndarray:
    """Model input (n, C) float32 for one block.

    Args:
        xyz: (n, 3) float32 point coordinates, metres, in the room/cloud frame.
        rgb: (n, 3) uint8 colours, or None (then ``MISSING_RGB``); float arrays are taken as 0-1.
        block_center: (2,) x, y of the block centre, metres.
        room_min, room_max: (3,) bounding box of the whole room/cloud, metres.
        feature_set: a key of ``FEATURE_SETS``.
    """
    channels = check_feature_set(feature_set)
    n = xyz.shape[0]
    out = np.empty((n, channels), dtype=np.float32)
    out[:, 0] = xyz[:, 0] - block_center[0]
    out[:, 1] = xyz[:, 1] - block_center[1]
    out[:, 2] = xyz[:, 2] - room_min[2]
    col = 3
    if "rgb" in feature_set:
        if rgb is None:
            out[:, 3:6] = MISSING_RGB
        elif np.issubdtype(np.asarray(rgb).dtype, np.floating):
            out[:, 3:6] = rgb
        else:
            out[:, 3:6] = np.asarray(rgb, dtype=np.float32) / 255.0
        col = 6
    if feature_set.endswith("n"):
        extent = np.maximum(np.asarray(room_max, np.float64) - room_min, 0.01)
        out[:, col:col + 3] = (xyz - np.asarray(room_min, np.float32)) / extent.astype(np.float32)
    return out
