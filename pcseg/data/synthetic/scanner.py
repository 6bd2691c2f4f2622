"""What a sensor does to a perfect room, and colour with per-object texture and lighting.

Two sensors: a terrestrial *lidar* scanner (S3DIS-like: occlusion seen from a few stations by
Open3D's hidden point removal, density falling with range) and a hand-held *RGB-D* walk-through
(ScanNet-like: occlusion seen from a loop of viewpoints, ceilings often missing, holes in the
reconstruction, glass lost, then the fixed number of mesh vertices a ScanNet export keeps)."""

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


#: How far outside the walls' inner faces a window's glass lies (it is set 8 cm back), metres.
GLASS_BEYOND_WALL = 0.07
#: Points drawn per exported vertex before the occlusion test (most are hidden or cut later).
CANDIDATES_PER_VERTEX = 4


def rgbd_capture(rng, points: np.ndarray, instance: np.ndarray, classes: list[str], L: float, W: float,
                 vertices: int = 50_000) -> np.ndarray:
    """(m,) int64 indices of the points (n, 3) of an L x W metre room that an RGB-D walk-through
    keeps, as ScanNet's exported scans hold them (at most ``CANDIDATES_PER_VERTEX * vertices`` points,
    drawn at random, are tested for occlusion).

    ``instance`` (n,) indexes ``classes`` (class name per instance). The camera loops round the room
    at 1.1-1.6 m (6-10 viewpoints); the ceiling, which such a camera seldom looks at, is lost in half
    the rooms; 5-15 holes of 0.1-0.35 m radius are cut where the reconstruction failed; a window's
    glass (its points over :data:`GLASS_BEYOND_WALL` outside the walls) is lost with probability 0.7, per window;
    and at most ``vertices`` of what remains are drawn at random, as a mesh's vertices are exported.
    """
    candidates = np.arange(len(points))
    if len(points) > CANDIDATES_PER_VERTEX * vertices:  # the occlusion test is the costly step
        candidates = np.sort(rng.choice(len(points), CANDIDATES_PER_VERTEX * vertices, replace=False))
    points, instance = points[candidates], instance[candidates]
    views = int(rng.integers(6, 11))
    angle = 2 * np.pi * (np.arange(views) + rng.random()) / views
    radius = rng.uniform(0.2, 0.35, 2) * (L, W)
    stations = np.column_stack([L / 2 + radius[0] * np.cos(angle), W / 2 + radius[1] * np.sin(angle),
                                rng.uniform(1.1, 1.6, views)])
    keep = visible_from(points, stations)
    names = np.asarray(classes)
    if rng.random() < 0.5:
        keep &= names[instance] != "ceiling"
    for _ in range(int(rng.integers(5, 16))):
        center = points[rng.integers(len(points))]
        keep &= np.linalg.norm(points - center, axis=1) > rng.uniform(0.1, 0.35)
    beyond_walls = np.max([-points[:, 0], points[:, 0] - L, -points[:, 1], points[:, 1] - W], axis=0)
    for window in np.flatnonzero(names == "window"):
        if rng.random() < 0.7:
            keep &= ~((instance == window) & (beyond_walls > GLASS_BEYOND_WALL))
    kept = np.flatnonzero(keep)
    if len(kept) > vertices:
        kept = np.sort(rng.choice(kept, vertices, replace=False))
    return candidates[kept]


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
