"""What a terrestrial scanner does to a perfect room: occlusion seen from a few stations
(Open3D's hidden point removal), density falling with range, range noise, and colour
with per-object texture and lighting."""

from __future__ import annotations

import numpy as np

#: Base colours (RGB 0-255) a class's objects draw from.
CLASS_COLORS = {
    "ceiling": [(235, 235, 230), (220, 222, 215), (240, 238, 228)],
    "floor": [(120, 115, 110), (150, 130, 100), (90, 95, 105), (170, 165, 150)],
    "wall": [(225, 220, 205), (210, 210, 200), (235, 228, 210), (200, 205, 210)],
    "beam": [(215, 212, 200), (225, 220, 205)],
    "column": [(215, 212, 200), (200, 200, 195)],
    "window": [(150, 170, 190), (180, 195, 210), (120, 140, 160)],
    "door": [(150, 110, 70), (180, 140, 95), (160, 160, 160), (120, 80, 50)],
    "table": [(170, 130, 90), (200, 190, 170), (140, 100, 70), (90, 90, 90)],
    "chair": [(40, 40, 45), (60, 70, 120), (130, 40, 40), (80, 80, 80), (150, 120, 90)],
    "sofa": [(100, 60, 50), (60, 80, 110), (140, 130, 120), (50, 50, 55)],
    "bookcase": [(150, 115, 80), (120, 90, 60), (180, 170, 150), (100, 100, 105)],
    "board": [(240, 240, 240), (230, 232, 235)],
    "clutter": [(200, 60, 50), (60, 140, 60), (220, 200, 80), (80, 80, 200), (160, 120, 80),
                (30, 30, 30), (200, 200, 200)],
}


def visible_from(points: np.ndarray, stations: np.ndarray) -> np.ndarray:
    """Bool (n,) mask of points visible from at least one station (hidden point removal)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    diameter = float(np.linalg.norm(points.max(0) - points.min(0)))
    seen = np.zeros(len(points), dtype=bool)
    for station in stations:
        _, idx = cloud.hidden_point_removal(station.tolist(), diameter * 300)
        seen[np.asarray(idx, dtype=np.int64)] = True
    return seen


def range_thinning(rng, points: np.ndarray, stations: np.ndarray, full_range: float = 2.5) -> np.ndarray:
    """Bool mask keeping points with probability min(1, (full_range / range)^2) (nearest station)."""
    d = np.min(np.linalg.norm(points[:, None, :] - stations[None], axis=2), axis=1)
    return rng.random(len(points)) < np.minimum(1.0, (full_range / np.maximum(d, 1e-3)) ** 2)


def shade(rng, points: np.ndarray, instance: np.ndarray, classes: list[str], lights: np.ndarray) -> np.ndarray:
    """Colours (n, 3) uint8: a base colour per instance, texture noise, and lighting falloff."""
    base = np.array([CLASS_COLORS[c][rng.integers(len(CLASS_COLORS[c]))] for c in classes], float)
    base *= rng.uniform(0.85, 1.1, (len(classes), 1))
    colors = base[instance]
    d = np.min(np.linalg.norm(points[:, None, :] - lights[None], axis=2), axis=1)
    light = 0.65 + 0.4 * np.exp(-d / 3.0)
    tint = rng.uniform(0.93, 1.05, 3)
    texture = 1 + 0.06 * rng.standard_normal((len(points), 1))
    colors = colors * light[:, None] * tint * texture + rng.normal(0, 4, colors.shape)
    return np.clip(np.rint(colors), 0, 255).astype(np.uint8)
