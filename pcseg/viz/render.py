"""Headless PNG rendering of clouds in class colours, with a legend.

Open3D's ``Visualizer(visible=False)`` renders through EGL with no X server (software
Vulkan/EGL from Mesa); matplotlib composes the panels and the legend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..classes import S3DIS_PALETTE, UNLABELLED, colors_for_labels
from ..fileutil import atomic_path

#: Colours of the error view: right points grey, wrong points red.
RIGHT_COLOR, WRONG_COLOR = np.array([190, 190, 190], np.uint8), np.array([220, 30, 30], np.uint8)


def render_view(xyz: np.ndarray, colors: np.ndarray, width: int = 960, height: int = 720,
                point_size: float = 2.0) -> np.ndarray:
    """An (H, W, 3) float image of points (N, 3) with colours (N, 3) uint8, seen obliquely from above."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64) / 255.0)
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(visible=False, width=width, height=height):
        raise RuntimeError("Open3D could not create an offscreen window (is libEGL/Mesa installed?)")
    try:
        vis.add_geometry(cloud)
        options = vis.get_render_option()
        options.point_size = point_size
        options.background_color = np.ones(3)
        view = vis.get_view_control()
        view.set_front([-0.45, -0.75, 0.5])
        view.set_up([0, 0, 1])
        view.set_lookat(cloud.get_center())
        view.set_zoom(0.7)
        vis.poll_events()
        vis.update_renderer()
        return np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()


def cut_ceiling(xyz: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Mask hiding the ceiling (class and the top 10 % of height) so the room's inside shows."""
    keep = np.ones(len(xyz), dtype=bool)
    if "ceiling" in class_names:
        keep &= labels != list(class_names).index("ceiling")
    z = xyz[:, 2]
    return keep & (z <= z.min() + 0.9 * (z.max() - z.min()))


def render_png(path: Path, xyz: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
               gt: np.ndarray | None = None, title: str = "") -> Path:
    """Write a PNG: the cloud in class colours (and, with ``gt``, ground truth and errors) + legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    valid = labels != UNLABELLED
    keep = valid & cut_ceiling(xyz, labels, class_names)
    if keep.sum() == 0:
        keep = valid
    if keep.sum() > 2_000_000:
        keep &= np.random.default_rng(0).random(len(keep)) < 2_000_000 / keep.sum()
    panels = [("prediction", colors_for_labels(labels[keep]))]
    if gt is not None:
        panels.append(("ground truth", colors_for_labels(gt[keep])))
        wrong = labels[keep] != gt[keep]
        panels.append((f"errors ({100 * wrong.mean():.1f}% wrong)", np.where(wrong[:, None], WRONG_COLOR, RIGHT_COLOR)))
    images = [render_view(xyz[keep], colors) for _, colors in panels]
    present = sorted(set(np.unique(labels[valid]).tolist()) | (set(np.unique(gt[gt != UNLABELLED]).tolist()) if gt is not None else set()))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels) + 2.2, 5.4), squeeze=False)
    for ax, (name, _), image in zip(axes[0], panels, images):
        ax.imshow(image)
        ax.set_title(name)
        ax.axis("off")
    handles = [Patch(color=S3DIS_PALETTE[c] / 255 if c < len(S3DIS_PALETTE) else "k", label=class_names[c])
               for c in present if c < len(class_names)]
    fig.legend(handles=handles, loc="center right", frameon=False, title="classes")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / fig.get_figwidth(), 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)
