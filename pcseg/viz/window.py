"""An interactive Open3D window of a labelled cloud, with the class legend printed in the terminal."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ..classes import S3DIS_PALETTE, UNLABELLED
from ..errors import PcsegError


def has_display() -> bool:
    """True when a window can open (an X or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def legend_text(labels: np.ndarray, class_names: Sequence[str], color: bool = True,
                confidence: Optional[np.ndarray] = None) -> str:
    """One line per class present: a colour swatch (24-bit terminal colour), id, name, points, share and,
    with ``confidence`` (N,), the class's mean confidence."""
    labels = np.asarray(labels)
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    means = None if confidence is None else np.bincount(inverse.ravel(), np.asarray(confidence)) / counts
    lines = []
    for i, (c, count) in enumerate(zip(ids.tolist(), counts.tolist())):
        if c == UNLABELLED:
            name, rgb = "unlabelled", (0, 0, 0)
        elif 0 <= c < min(len(class_names), len(S3DIS_PALETTE)):
            name, rgb = class_names[c], tuple(S3DIS_PALETTE[c])
        else:
            name, rgb = "unknown class", (0, 0, 0)
        swatch = f"\x1b[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m    \x1b[0m " if color else ""
        line = f"{swatch}{c:>3} {name:<12} {count:>12,} {100 * count / len(labels):6.1f}%"
        lines.append(line if means is None or c == UNLABELLED else f"{line}  confidence {means[i]:.2f}")
    return "\n".join(lines)


def show_window(xyz: np.ndarray, colorings: Sequence[tuple[str, np.ndarray]]) -> None:
    """One Open3D window showing the points ``xyz`` (N, 3) once per (title, colours (N, 3) uint8),
    side by side along x (e.g. prediction | ground truth | errors)."""
    if not has_display():
        raise PcsegError("no display to open a window on; use --render PNG to write a picture")
    import open3d as o3d

    xyz = np.asarray(xyz, np.float64)
    step = 1.15 * float(np.ptp(xyz[:, 0])) + 0.5
    geometries = []
    for i, (_, colors) in enumerate(colorings):
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz + [i * step, 0.0, 0.0]))
        cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64) / 255.0)
        geometries.append(cloud)
    title = " | ".join(name for name, _ in colorings)
    o3d.visualization.draw_geometries(geometries, window_name=f"pcseg: {title}", width=1600, height=900)
