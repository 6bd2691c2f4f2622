"""Procedural S3DIS-style rooms: structure (floor, ceiling, walls with door and window
openings, beams, columns, boards), furniture by room kind, then a scanner simulation.

``generate_room(seed)`` is deterministic given its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...classes import S3DIS_CLASSES
from . import objects
from .scanner import range_thinning, rgbd_capture, shade, visible_from
from .shapes import sample_box, sample_rect

ROOM_KINDS = ("office", "conferenceRoom", "hallway", "lounge", "storage")
#: What captures a room (see :mod:`pcseg.data.synthetic.scanner`).
SENSORS = ("lidar", "rgbd")
#: How often each kind is drawn, roughly as in S3DIS (mostly offices and hallways).
KIND_WEIGHTS = (0.5, 0.1, 0.2, 0.08, 0.12)


def choose_kind(rng: np.random.Generator) -> str:
    """A room kind drawn with ``KIND_WEIGHTS``."""
    return str(rng.choice(ROOM_KINDS, p=KIND_WEIGHTS))


@dataclass
class SyntheticRoom:
    """A generated room: xyz (N, 3) float64 metres, rgb (N, 3) uint8, labels (N,) uint8,
    instance (N,) int32 into ``instance_classes`` (class name per instance)."""

    name: str
    xyz: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray
    instance: np.ndarray
    instance_classes: list


@dataclass
class Wall:
    """An inner wall face: from ``start`` (x, y) along unit ``direction`` for ``length`` m;
    ``normal`` points into the room."""

    start: np.ndarray
    direction: np.ndarray
    length: float
    normal: np.ndarray

    def at(self, s: float, offset: float = 0.0) -> np.ndarray:
        """(x, y) at distance ``s`` along the wall, ``offset`` metres into the room."""
        return self.start + s * self.direction + offset * self.normal

    def facing_yaw(self) -> float:
        """Yaw that turns an object's +y side (its back) against this wall."""
        return float(np.arctan2(self.normal[0], -self.normal[1]))


class _Builder:
    """Collects instances and keeps the floor plan free of collisions."""

    def __init__(self, rng, L, W, H, density):
        self.rng, self.L, self.W, self.H, self.density = rng, L, W, H, density
        self.parts: list[tuple[str, np.ndarray]] = []
        self.footprints: list[tuple[float, float, float, float]] = []
        self.walls = [
            Wall(np.array([0.0, 0.0]), np.array([1.0, 0.0]), L, np.array([0.0, 1.0])),
            Wall(np.array([L, W]), np.array([-1.0, 0.0]), L, np.array([0.0, -1.0])),
            Wall(np.array([0.0, W]), np.array([0.0, -1.0]), W, np.array([1.0, 0.0])),
            Wall(np.array([L, 0.0]), np.array([0.0, 1.0]), W, np.array([-1.0, 0.0])),
        ]
        self.openings = {i: [] for i in range(4)}  # wall -> [(s0, s1, z0, z1)]

    def add(self, parts):
        self.parts.extend((c, p) for c, p in parts if len(p))

    def free(self, x0, y0, x1, y1, margin=0.05) -> bool:
        if x0 < 0 or y0 < 0 or x1 > self.L or y1 > self.W:
            return False
        return all(x1 + margin <= a0 or x0 - margin >= a1 or y1 + margin <= b0 or y0 - margin >= b1
                   for a0, b0, a1, b1 in self.footprints)

    def claim(self, cx, cy, hx, hy) -> bool:
        """Reserve the rectangle centre (cx, cy), half sizes (hx, hy) if free."""
        if not self.free(cx - hx, cy - hy, cx + hx, cy + hy):
            return False
        self.footprints.append((cx - hx, cy - hy, cx + hx, cy + hy))
        return True

    def place(self, hx, hy, tries=40):
        """A free centre for a (2hx x 2hy) footprint anywhere in the room, or None."""
        for _ in range(tries):
            cx, cy = self.rng.uniform(hx, self.L - hx), self.rng.uniform(hy, self.W - hy)
            if self.claim(cx, cy, hx, hy):
                return np.array([cx, cy])
        return None

    def place_at_wall(self, width, depth, tries=40):
        """(wall, s, centre xy) for an object of ``width`` x ``depth`` backed on a wall, or None."""
        for _ in range(tries):
            i = int(self.rng.integers(4))
            wall = self.walls[i]
            if wall.length < width + 0.2:
                continue
            s = self.rng.uniform(width / 2 + 0.05, wall.length - width / 2 - 0.05)
            if any(s0 - width / 2 < s < s1 + width / 2 and z0 < 0.3 for s0, s1, z0, _ in self.openings[i]):
                continue
            center = wall.at(s, depth / 2 + 0.02)
            hx, hy = (abs(wall.direction[0]) * width + abs(wall.normal[0]) * depth) / 2, \
                     (abs(wall.direction[1]) * width + abs(wall.normal[1]) * depth) / 2
            if self.claim(center[0], center[1], hx, hy):
                return wall, s, center
        return None

    def opening(self, wall_index, width, z0, z1, tries=30):
        """Reserve a free span of ``width`` on a wall for an opening; returns s0 or None."""
        wall = self.walls[wall_index]
        for _ in range(tries):
            if wall.length < width + 0.4:
                return None
            s0 = self.rng.uniform(0.2, wall.length - width - 0.2)
            if all(s0 + width + 0.3 <= a or s0 - 0.3 >= b for a, b, _, _ in self.openings[wall_index]):
                self.openings[wall_index].append((s0, s0 + width, z0, z1))
                return s0
        return None


def _structure(b: _Builder, kind: str):
    rng, L, W, H, dens = b.rng, b.L, b.W, b.H, b.density
    b.add([("floor", sample_rect(rng, (0, 0, 0), (L, 0, 0), (0, W, 0), dens)),
           ("ceiling", sample_rect(rng, (0, 0, H), (L, 0, 0), (0, W, 0), dens))])
    n_doors = rng.integers(2, 5) if kind == "hallway" else rng.integers(1, 3)
    for _ in range(n_doors):
        i = int(rng.integers(4))
        w, h = rng.uniform(0.85, 1.0), rng.uniform(2.0, 2.15)
        s0 = b.opening(i, w, 0.0, h)
        if s0 is None:
            continue
        wall = b.walls[i]
        if rng.random() < 0.5:  # closed, set 5 cm back into the opening
            start = np.array([*wall.at(s0, -0.05), 0.0])
            slab = sample_rect(rng, start, np.array([*(wall.direction * w), 0]), (0, 0, h), dens)
        else:  # open into the room around its hinge
            angle = rng.uniform(0.6, 1.6)
            swing = np.cos(angle) * wall.direction + np.sin(angle) * wall.normal
            slab = sample_rect(rng, np.array([*wall.at(s0), 0.0]), np.array([*(swing * w), 0]), (0, 0, h), dens)
        frame = [sample_rect(rng, np.array([*wall.at(s, 0.0), 0.0]), np.array([*(wall.normal * 0.05), 0]),
                             (0, 0, h), dens) for s in (s0, s0 + w)]
        b.add([("door", np.concatenate([slab] + frame))])
    if kind != "hallway" or rng.random() < 0.3:
        for _ in range(rng.integers(0, 4)):
            i = int(rng.integers(4))
            w, z0 = rng.uniform(0.9, 2.4), rng.uniform(0.75, 1.0)
            z1 = min(H - 0.25, z0 + rng.uniform(1.0, 1.7))
            s0 = b.opening(i, w, z0, z1)
            if s0 is None:
                continue
            wall = b.walls[i]
            glass = sample_rect(rng, np.array([*wall.at(s0, -0.08), z0]), np.array([*(wall.direction * w), 0]),
                                (0, 0, z1 - z0), dens)
            sill_c = wall.at(s0 + w / 2, 0.06)
            sill_size = np.abs(wall.direction) * w + np.abs(wall.normal) * 0.16
            sill = sample_box(rng, (*sill_c, z0 - 0.02), (*sill_size, 0.04), dens)
            mullion = sample_box(rng, (*wall.at(s0 + w / 2, -0.05), (z0 + z1) / 2),
                                 (*(np.abs(wall.direction) * 0.05 + np.abs(wall.normal) * 0.06), z1 - z0), dens)
            b.add([("window", np.concatenate([glass, sill, mullion]))])
    for i, wall in enumerate(b.walls):
        pts = sample_rect(rng, np.array([*wall.start, 0.0]), np.array([*(wall.direction * wall.length), 0]),
                          (0, 0, H), dens)
        s = (pts[:, :2] - wall.start) @ wall.direction
        keep = np.ones(len(pts), dtype=bool)
        for s0, s1, z0, z1 in b.openings[i]:
            keep &= ~((s >= s0) & (s < s1) & (pts[:, 2] >= z0) & (pts[:, 2] < z1))
        b.add([("wall", pts[keep])])
    if rng.random() < 0.4:
        along_x = L < W
        for _ in range(rng.integers(1, 3)):
            bw, bd = rng.uniform(0.25, 0.5), rng.uniform(0.3, 0.6)
            if along_x:
                c = (L / 2, rng.uniform(0.5, W - 0.5), H - bd / 2)
                size = (L, bw, bd)
            else:
                c = (rng.uniform(0.5, L - 0.5), W / 2, H - bd / 2)
                size = (bw, W, bd)
            b.add([("beam", sample_box(rng, c, size, dens, bottom=True))])
    if rng.random() < 0.5:
        for _ in range(rng.integers(1, 3)):
            s = rng.uniform(0.3, 0.6)
            corner = rng.random() < 0.5
            cx = s / 2 if rng.random() < 0.5 else L - s / 2
            cy = (s / 2 if rng.random() < 0.5 else W - s / 2) if corner else rng.uniform(s, W - s)
            if b.claim(cx, cy, s / 2, s / 2):
                b.add([("column", sample_box(rng, (cx, cy, H / 2), (s, s, H), dens))])
    if kind in ("office", "conferenceRoom") or rng.random() < 0.2:
        for _ in range(1 if kind != "conferenceRoom" else rng.integers(1, 3)):
            i = int(rng.integers(4))
            w, z0 = rng.uniform(1.2, 3.0), rng.uniform(0.85, 1.0)
            wall = b.walls[i]
            if wall.length < w + 0.4:
                continue
            s0 = b.opening(i, w, z0, z0 + 1.2)
            if s0 is None:
                continue
            b.openings[i].pop()  # a board covers the wall, it is no opening
            b.openings[i].append((s0, s0 + w, z0, z0 + 1.2))
            panel = sample_rect(rng, np.array([*wall.at(s0, 0.02), z0]), np.array([*(wall.direction * w), 0]),
                                (0, 0, rng.uniform(1.0, 1.2)), dens)
            b.add([("board", panel)])
            _mask_wall_behind(b, i, s0, s0 + w, z0, z0 + 1.2)


def _mask_wall_behind(b: _Builder, i, s0, s1, z0, z1):
    """Remove wall points hidden behind a board (the last wall parts are the four walls)."""
    wall = b.walls[i]
    for k in range(len(b.parts) - 1, -1, -1):
        cls, pts = b.parts[k]
        if cls != "wall":
            continue
        on_wall = np.abs((pts[:, :2] - wall.start) @ wall.normal) < 1e-6
        s = (pts[:, :2] - wall.start) @ wall.direction
        hidden = on_wall & (s >= s0) & (s < s1) & (pts[:, 2] >= z0) & (pts[:, 2] < z1)
        if hidden.any():
            b.parts[k] = (cls, pts[~hidden])


def _table_with_chairs(b: _Builder, size, center=None, chairs_per_side=1):
    rng, dens = b.rng, b.density
    yaw = 0.0 if rng.random() < 0.5 else np.pi / 2
    sx, sy = size if yaw == 0 else size[::-1]
    if center is None:
        center = b.place(sx / 2 + 0.1, sy / 2 + 0.1)
        if center is None:
            return
    parts, h = objects.table(rng, center, size, yaw, dens)
    b.add(parts)
    for _ in range(rng.integers(1, 6)):
        p = center + rng.uniform(-0.4, 0.4, 2) * np.array([sx, sy])
        b.add(objects.clutter_item(rng, (*p, h), dens))
    long_x = sx >= sy
    length = sx if long_x else sy
    for side in (-1, 1):
        for k in range(chairs_per_side):
            t = (k + 0.5) / chairs_per_side - 0.5
            offset = (sy if long_x else sx) / 2 + rng.uniform(0.15, 0.45)
            pos = center + (np.array([t * length, side * offset]) if long_x else np.array([side * offset, t * length]))
            face = np.arctan2(center[1] - pos[1], center[0] - pos[0]) + np.pi / 2 + np.pi
            if b.claim(pos[0], pos[1], 0.22, 0.22):
                b.add(objects.chair(rng, pos, face + rng.normal(0, 0.3), dens))


def _furniture(b: _Builder, kind: str):
    rng, dens = b.rng, b.density
    if kind == "conferenceRoom":
        size = (min(b.L - 2.0, rng.uniform(2.4, 5.0)), min(b.W - 2.0, rng.uniform(1.0, 1.6)))
        if min(size) > 0.6:
            c = np.array([b.L / 2, b.W / 2])
            b.claim(c[0], c[1], size[0] / 2 + 0.05, size[1] / 2 + 0.05)
            _table_with_chairs(b, size, center=c, chairs_per_side=max(1, int(size[0] / 0.75)))
    n = {"office": (1, 4), "conferenceRoom": (0, 2), "hallway": (0, 1), "lounge": (1, 3), "storage": (0, 2)}[kind]
    for _ in range(rng.integers(*n)):
        _table_with_chairs(b, (rng.uniform(1.0, 1.8), rng.uniform(0.6, 0.9)), chairs_per_side=int(rng.integers(1, 4)))
    n_books = {"office": (0, 3), "conferenceRoom": (0, 2), "hallway": (0, 2), "lounge": (0, 2), "storage": (1, 3)}[kind]
    for _ in range(rng.integers(*n_books)):
        width = rng.uniform(0.8, 2.0)
        spot = b.place_at_wall(width, 0.4)
        if spot:
            wall, _, center = spot
            b.add(objects.bookcase(rng, center, wall.facing_yaw(), width, dens))
    n_sofa = {"lounge": (1, 4), "office": (0, 2), "conferenceRoom": (0, 1), "hallway": (0, 1), "storage": (0, 1)}[kind]
    for _ in range(rng.integers(*n_sofa)):
        spot = b.place_at_wall(2.3, 0.95)
        if spot:
            wall, _, center = spot
            b.add(objects.sofa(rng, center, wall.facing_yaw(), dens)[0])
    n_clutter = {"storage": (8, 20), "office": (4, 10), "lounge": (2, 7), "conferenceRoom": (2, 6), "hallway": (1, 6)}[kind]
    for _ in range(rng.integers(*n_clutter)):
        p = b.place(0.3, 0.3)
        if p is not None:
            b.add(objects.clutter_item(rng, (*p, 0.0), dens))
    n_wall_items = {"storage": (0, 3), "office": (2, 7), "lounge": (2, 6), "conferenceRoom": (1, 5), "hallway": (2, 8)}[kind]
    for _ in range(rng.integers(*n_wall_items)):
        _wall_item(b)
    for _ in range(rng.integers(1, 5)):
        p = b.place(0.25, 0.25)
        if p is not None:
            b.add(objects.chair(rng, p, rng.uniform(0, 2 * np.pi), dens))


def _wall_item(b: _Builder, tries=20):
    """Hang a picture, poster, radiator or cabinet on a wall, clear of doors, windows and boards."""
    rng = b.rng
    for _ in range(tries):
        i = int(rng.integers(4))
        wall = b.walls[i]
        if wall.length < 1.6:
            continue
        s = rng.uniform(0.7, wall.length - 0.7)
        if any(s0 - 0.8 < s < s1 + 0.8 for s0, s1, _, _ in b.openings[i]):
            continue
        b.add(objects.wall_item(rng, wall.at(s), wall.direction, wall.normal,
                                rng.uniform(1.0, min(1.8, b.H - 1.1)), b.density))
        return


def _room_size(rng, kind):
    H = rng.uniform(2.6, 3.5)
    if kind == "hallway":
        L, W = rng.uniform(6.0, 14.0), rng.uniform(1.8, 2.8)
    elif kind == "conferenceRoom":
        L, W = rng.uniform(5.0, 9.0), rng.uniform(4.0, 7.0)
    elif kind == "storage":
        L, W = rng.uniform(3.0, 6.0), rng.uniform(2.5, 4.5)
    else:
        L, W = rng.uniform(3.5, 9.0), rng.uniform(3.0, 7.0)
    return (L, W, H) if rng.random() < 0.5 or kind == "hallway" else (W, L, H)


def generate_room(seed: int, kind: str | None = None, density: float = 2500.0,
                  stations: int | None = None, noise: float = 0.003, name: str | None = None,
                  sensor: str = "lidar") -> SyntheticRoom:
    """Generate one scanned room.

    Args:
        seed: the only source of randomness.
        kind: one of ``ROOM_KINDS`` (random when None).
        density: surface points per m^2 before occlusion and range thinning.
        stations: lidar scanner positions (1-3 random when None).
        noise: range noise standard deviation, metres.
        sensor: ``"lidar"`` (S3DIS-like) or ``"rgbd"`` (ScanNet-like: at most 50,000 points, often
            no ceiling; see :func:`pcseg.data.synthetic.scanner.rgbd_capture`).
    """
    rng = np.random.default_rng(seed)
    kind = kind or choose_kind(rng)
    if kind not in ROOM_KINDS:
        raise ValueError(f"kind must be one of {ROOM_KINDS}, got {kind!r}")
    if sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {SENSORS}, got {sensor!r}")
    L, W, H = _room_size(rng, kind)
    b = _Builder(rng, L, W, H, density)
    _structure(b, kind)
    _furniture(b, kind)
    classes = [c for c, _ in b.parts]
    points = np.concatenate([p for _, p in b.parts])
    instance = np.repeat(np.arange(len(b.parts), dtype=np.int32), [len(p) for _, p in b.parts])
    if sensor == "rgbd":
        keep = rgbd_capture(rng, points, instance, classes, L, W)
    else:
        n_st = stations or int(rng.integers(1, 4))
        st = np.column_stack([rng.uniform(0.3, 0.7, n_st) * L, rng.uniform(0.3, 0.7, n_st) * W,
                              rng.uniform(1.2, 1.7, n_st)])
        keep = visible_from(points, st) & range_thinning(rng, points, st)
    points, instance = points[keep], instance[keep]
    points = points + rng.normal(0, noise, points.shape)
    lights = np.column_stack([rng.uniform(0, L, 3), rng.uniform(0, W, 3), np.full(3, H)])
    rgb = shade(rng, points, instance, classes, lights)
    labels = np.array([S3DIS_CLASSES.index(c) for c in classes], dtype=np.uint8)[instance]
    return SyntheticRoom(name or f"{kind}_1", points, rgb, labels, instance, classes)
