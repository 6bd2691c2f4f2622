"""An interactive Open3D window of a labelled cloud, with the legend printed in the terminal."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..classes import S3DIS_PALETTE, colors_for_labels
from ..errors import PcsegError


def has_display() -> bool:
    """True when a window can open (an X or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def legend_text(labels: np.ndarray, class_names: Sequence[str]) -> str:
    """One line per class present: a colour swatch (24-bit terminal colour), id and name."""
    lines = []
    for c in np.unique(labels):
        if 0 <= c < min(len(class_names), len(S3DIS_PALETTE)):
            r, g, b = S3DIS_PALETTE[c]
            lines.append(f"\x1b[48;2;{r};{g};{b}m    \x1b[0m {c:>2} {class_names[c]}")
    return "\n".join(lines)


def show_window(panels: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Open one Open3D window per panel (title, xyz (N, 3), labels or colours (N,) / (N, 3))."""
    if not has_display():
        raise PcsegError("no display to open a window on; use --render PNG to write a picture")
    import open3d as o3d

    for title, xyz, values in panels:
        colors = values if values.ndim == 2 else colors_for_labels(values)
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
        cloud.colors = o3d.utility.Vector3dVector(colors / 255.0)
        o3d.visualization.draw_geometries([cloud], window_name=f"pcseg: {title}")
