"""Builders of the things a room holds: each returns ``(class name, points (n, 3) metres)``
parts of one instance. Sizes are those of common office furniture."""

from __future__ import annotations

import numpy as np

from .shapes import rotate_z, sample_blob, sample_box, sample_cylinder, sample_rect


def table(rng, center_xy, size_xy, yaw, density):
    """A table: top 3 cm thick at 0.72-0.76 m on four legs (or two panel sides)."""
    h = rng.uniform(0.72, 0.76)
    sx, sy = size_xy
    top = sample_box(rng, (*center_xy, h - 0.015), (sx, sy, 0.03), density, bottom=True)
    legs = []
    if rng.random() < 0.7:
        for dx in (-1, 1):
            for dy in (-1, 1):
                c = (center_xy[0] + dx * (sx / 2 - 0.06), center_xy[1] + dy * (sy / 2 - 0.06), (h - 0.03) / 2)
                legs.append(sample_box(rng, c, (0.05, 0.05, h - 0.03), density))
    else:
        for dx in (-1, 1):
            c = (center_xy[0] + dx * (sx / 2 - 0.03), center_xy[1], (h - 0.03) / 2)
            legs.append(sample_box(rng, c, (0.03, sy * 0.9, h - 0.03), density))
    pts = np.concatenate([top] + legs)
    return [("table", rotate_z(pts, yaw, center_xy))], h


def chair(rng, center_xy, yaw, density):
    """An office chair (five-star base, seat, back) or a four-legged chair; faces -y before ``yaw``."""
    seat_h = rng.uniform(0.42, 0.5)
    w = rng.uniform(0.42, 0.5)
    parts = [sample_box(rng, (0, 0, seat_h), (w, w, 0.07), density, bottom=True),
             sample_box(rng, (0, w / 2 - 0.03, seat_h + 0.3), (w * 0.95, 0.06, rng.uniform(0.4, 0.55)), density)]
    if rng.random() < 0.6:
        parts.append(sample_cylinder(rng, (0, 0, 0.08), 0.025, seat_h - 0.1, density))
        for k in range(5):
            a = 2 * np.pi * k / 5
            arm = sample_box(rng, (0.16 * np.cos(a), 0.16 * np.sin(a), 0.06), (0.32, 0.04, 0.04), density, yaw=a)
            parts.append(arm)
    else:
        for dx in (-1, 1):
            for dy in (-1, 1):
                parts.append(sample_box(rng, (dx * (w / 2 - 0.03), dy * (w / 2 - 0.03), seat_h / 2),
                                        (0.03, 0.03, seat_h), density))
    pts = rotate_z(np.concatenate(parts), yaw)
    pts[:, :2] += center_xy
    return [("chair", pts)]


def sofa(rng, center_xy, yaw, density):
    """A sofa: seat block, back and two arms; its back is on +y before ``yaw``."""
    L, D = rng.uniform(1.5, 2.3), rng.uniform(0.8, 0.95)
    parts = [sample_box(rng, (0, 0, 0.22), (L, D, 0.44), density),
             sample_box(rng, (0, D / 2 - 0.1, 0.6), (L, 0.2, 0.4), density)]
    for dx in (-1, 1):
        parts.append(sample_box(rng, (dx * (L / 2 - 0.1), 0, 0.55), (0.2, D, 0.25), density))
    pts = rotate_z(np.concatenate(parts), yaw)
    pts[:, :2] += center_xy
    return [("sofa", pts)], (L, D)


def bookcase(rng, center_xy, yaw, width, density):
    """An open bookcase against a wall (back on +y before ``yaw``), shelves filled with books."""
    D, H = rng.uniform(0.3, 0.4), rng.uniform(1.8, 2.2)
    shelves = rng.integers(4, 7)
    parts = [sample_rect(rng, (-width / 2, D / 2, 0), (width, 0, 0), (0, 0, H), density)]
    for dx in (-1, 1):
        parts.append(sample_box(rng, (dx * width / 2, 0, H / 2), (0.02, D, H), density))
    for k in range(shelves + 1):
        z = k * H / shelves
        parts.append(sample_box(rng, (0, 0, z), (width, D, 0.02), density))
        if k < shelves:
            x = -width / 2 + 0.02
            while x < width / 2 - 0.05:
                bw = rng.uniform(0.02, 0.06)
                bh = rng.uniform(0.15, 0.9 * H / shelves)
                if rng.random() < 0.6:
                    # Only the spines face the scanner: books get a quarter of the density.
                    parts.append(sample_box(rng, (x + bw / 2, rng.uniform(-0.03, 0.03), z + 0.01 + bh / 2),
                                            (bw, D * 0.8, bh), density / 4))
                x += bw + rng.uniform(0, 0.01)
    pts = rotate_z(np.concatenate(parts), yaw)
    pts[:, :2] += center_xy
    return [("bookcase", pts)]


def clutter_item(rng, base_xyz, density):
    """A small item: box, monitor, bin, plant or bag, standing at ``base_xyz``."""
    x, y, z = base_xyz
    kind = rng.choice(["box", "monitor", "bin", "plant", "bag", "printer"])
    if kind == "box":
        s = rng.uniform(0.15, 0.6, 3)
        pts = sample_box(rng, (x, y, z + s[2] / 2), s, density, yaw=rng.uniform(0, np.pi))
    elif kind == "monitor":
        w, h = rng.uniform(0.45, 0.65), rng.uniform(0.3, 0.4)
        pts = np.concatenate([sample_box(rng, (x, y, z + 0.12 + h / 2), (w, 0.04, h), density),
                              sample_box(rng, (x, y, z + 0.06), (0.05, 0.05, 0.12), density),
                              sample_box(rng, (x, y, z + 0.01), (0.2, 0.15, 0.02), density)])
        pts = rotate_z(pts, rng.uniform(-0.4, 0.4), (x, y))
    elif kind == "bin":
        pts = sample_cylinder(rng, (x, y, z), rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.45), density, top=False)
    elif kind == "plant":
        h = rng.uniform(0.3, 1.2)
        pts = np.concatenate([sample_cylinder(rng, (x, y, z), 0.15, 0.3, density, top=False),
                              sample_blob(rng, (x, y, z + 0.3 + h / 2), (0.3, 0.3, h / 2), density)])
    elif kind == "printer":
        pts = sample_box(rng, (x, y, z + 0.2), (0.5, 0.45, 0.4), density, yaw=rng.uniform(0, np.pi))
    else:
        pts = sample_blob(rng, (x, y, z + 0.15), (0.25, 0.15, 0.15), density)
    return [("clutter", pts)]


def wall_item(rng, wall_point, along, normal, z, density):
    """Something hung on a wall at height ``z`` (its bottom, metres): a picture, poster,
    radiator or wall cabinet. ``wall_point`` (x, y) is on the wall face, ``along`` and
    ``normal`` (unit (x, y)) run along the wall and into the room."""
    kind = rng.choice(["picture", "poster", "radiator", "cabinet"])
    if kind == "radiator":
        w, h, d, z = rng.uniform(0.6, 1.4), rng.uniform(0.4, 0.6), rng.uniform(0.06, 0.12), rng.uniform(0.08, 0.2)
    elif kind == "cabinet":
        w, h, d = rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.4)
    else:
        w, h, d = (rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.7), 0.03) if kind == "picture" else \
                  (rng.uniform(0.4, 0.7), rng.uniform(0.6, 1.0), 0.01)
    along, normal = np.asarray(along, float), np.asarray(normal, float)
    center_xy = np.asarray(wall_point, float) + normal * (d / 2 + 0.005)
    size_xy = np.abs(along) * w + np.abs(normal) * d
    return [("clutter", sample_box(rng, (*center_xy, z + h / 2), (*size_xy, h), density, bottom=True))]
