"""Surface sampling of the primitives rooms are built from (numpy, no loops over points).

Every sampler returns points (n, 3) float64 in metres, with n drawn from the surface area
times ``density`` (points per square metre before the scanner simulation thins them).
"""

from __future__ import annotations

import numpy as np


def sample_rect(rng: np.random.Generator, corner, u, v, density: float) -> np.ndarray:
    """Points on the parallelogram ``corner + s*u + t*v``, s, t in [0, 1)."""
    corner, u, v = (np.asarray(a, dtype=np.float64) for a in (corner, u, v))
    area = float(np.linalg.norm(np.cross(u, v)))
    n = rng.poisson(area * density)
    st = rng.random((n, 2))
    return corner + st[:, :1] * u + st[:, 1:] * v


def rotate_z(points: np.ndarray, yaw: float, pivot=(0.0, 0.0)) -> np.ndarray:
    """Rotate (n, 3) points by ``yaw`` radians about the vertical axis through ``pivot`` (x, y)."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = points.copy()
    x, y = points[:, 0] - pivot[0], points[:, 1] - pivot[1]
    out[:, 0] = c * x - s * y + pivot[0]
    out[:, 1] = s * x + c * y + pivot[1]
    return out


def sample_box(rng: np.random.Generator, center, size, density: float, yaw: float = 0.0,
               bottom: bool = False) -> np.ndarray:
    """Points on the faces of a box (centre (3,), size (3,) metres), turned by ``yaw``.

    The bottom face is left out unless ``bottom`` (boxes standing on something hide it).
    """
    center, size = np.asarray(center, float), np.asarray(size, float)
    lo = center - size / 2
    sx, sy, sz = size
    ex, ey, ez = np.array([sx, 0, 0]), np.array([0, sy, 0]), np.array([0, 0, sz])
    faces = [
        (lo + ez, ex, ey),           # top
        (lo, ex, ez), (lo + ey, ex, ez),   # front, back
        (lo, ey, ez), (lo + ex, ey, ez),   # left, right
    ]
    if bottom:
        faces.append((lo, ex, ey))
    pts = np.concatenate([sample_rect(rng, *f, density) for f in faces])
    return rotate_z(pts, yaw, center[:2]) if yaw else pts


def sample_cylinder(rng: np.random.Generator, base_center, radius: float, height: float,
                    density: float, top: bool = True) -> np.ndarray:
    """Points on an upright cylinder's side (and top disc) standing at ``base_center``."""
    base_center = np.asarray(base_center, float)
    n_side = rng.poisson(2 * np.pi * radius * height * density)
    phi = rng.uniform(0, 2 * np.pi, n_side)
    side = np.column_stack([radius * np.cos(phi), radius * np.sin(phi), rng.uniform(0, height, n_side)])
    parts = [side]
    if top:
        n_top = rng.poisson(np.pi * radius ** 2 * density)
        r = radius * np.sqrt(rng.random(n_top))
        phi = rng.uniform(0, 2 * np.pi, n_top)
        parts.append(np.column_stack([r * np.cos(phi), r * np.sin(phi), np.full(n_top, height)]))
    return np.concatenate(parts) + base_center


def sample_blob(rng: np.random.Generator, center, radii, density: float) -> np.ndarray:
    """Points on a bumpy ellipsoid (foliage, bags): centre (3,), radii (3,) metres."""
    radii = np.asarray(radii, float)
    area = 4 * np.pi * (np.prod(radii) ** (2 / 3))
    n = rng.poisson(area * density)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    bump = 1 + 0.15 * rng.standard_normal((n, 1))
    return np.asarray(center, float) + d * radii * bump
