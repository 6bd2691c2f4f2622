"""Headless PNG rendering of labelled clouds: class colours, optional ground truth, errors and
confidence (a colour map with its colour bar), legend.

Open3D's ``Visualizer(visible=False)`` renders through EGL with no X server (Mesa's
software EGL/Vulkan; ``scripts/setup.sh`` installs it). Every panel is drawn from the same
camera, cropped to the cloud and placed 1:1 (no resampling, so class colours stay exact);
matplotlib composes the panels, titles and the legend into one image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..classes import S3DIS_PALETTE, UNLABELLED, UNLABELLED_COLOR, colors_for_labels
from ..errors import PcsegError
from ..fileutil import atomic_path
from .quiet import quiet_renderer

#: Colours of the error view: right points grey, wrong points red, points without ground truth pale.
RIGHT_COLOR = np.array([200, 200, 200], np.uint8)
WRONG_COLOR = np.array([220, 30, 30], np.uint8)
UNSCORED_COLOR = np.array([225, 225, 235], np.uint8)
#: Colour map of the confidence view (0 dark purple: unsure; 1 yellow: sure).
CONFIDENCE_COLORMAP = "viridis"
#: Size in pixels of one view, of the legend column, of the colour-bar column (confidence
#: pictures only) and of the title rows.
PANEL_SIZE = (800, 600)
LEGEND_WIDTH = 220
COLORBAR_WIDTH = 90
TITLE_HEIGHT = 60
#: At most this many points are drawn (a uniform random subset beyond it).
MAX_DRAWN_POINTS = 2_000_000


def point_size(n: int) -> float:
    """Point size in pixels for ``n`` drawn points: large for sparse clouds, fine for dense ones."""
    return float(np.clip(7.0 - 1.1 * np.log10(max(n, 1)), 1.5, 6.0))


def render_views(xyz: np.ndarray, colorings: Sequence[np.ndarray],
                 size: tuple[int, int] = PANEL_SIZE) -> list[np.ndarray]:
    """One (H, W, 3) uint8 image per colouring (N, 3) uint8 of the points ``xyz`` (N, 3), same camera.

    The camera looks obliquely down (z up) from the -x, -y side at the cloud's centre.
    """
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(colorings[0] / 255.0)
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(visible=False, width=size[0], height=size[1]):
        raise PcsegError("Open3D could not create an offscreen renderer "
                         "(install libegl1 and mesa-vulkan-drivers: scripts/setup.sh)")
    try:
        vis.add_geometry(cloud)
        options = vis.get_render_option()
        options.point_size = point_size(len(xyz))
        options.background_color = np.ones(3)
        view = vis.get_view_control()
        view.set_front([-0.45, -0.75, 0.55])
        view.set_up([0, 0, 1])
        view.set_lookat(cloud.get_axis_aligned_bounding_box().get_center())
        zoom = 0.6
        view.set_zoom(zoom)
        fill = content_fraction(capture(vis))
        if fill > 0:  # zoom so the cloud fills ~90 % of the view, whatever its shape
            view.set_zoom(float(np.clip(zoom * fill / 0.9, 0.02, 2.0)))
        images = []
        for colors in colorings:
            cloud.colors = o3d.utility.Vector3dVector(colors / 255.0)
            vis.update_geometry(cloud)
            images.append(capture(vis))
        return images
    finally:
        vis.destroy_window()


def capture(vis) -> np.ndarray:
    """The current (H, W, 3) uint8 image of an Open3D visualizer."""
    vis.poll_events()
    vis.update_renderer()
    return np.round(np.asarray(vis.capture_screen_float_buffer(do_render=True)) * 255).astype(np.uint8)


def drawn_pixels(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that are not the white background."""
    return (image < 250).any(axis=2)


def content_fraction(image: np.ndarray) -> float:
    """Largest fraction of the image's width or height that the drawn pixels span (0 when empty)."""
    drawn = drawn_pixels(image)
    if not drawn.any():
        return 0.0
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    return max((rows[-1] - rows[0] + 1) / image.shape[0], (cols[-1] - cols[0] + 1) / image.shape[1])


def crop_to_content(images: Sequence[np.ndarray], size: tuple[int, int] = PANEL_SIZE) -> list[np.ndarray]:
    """Crop images (same shape, white background) to the union of their drawn pixels, centred in ``size``."""
    drawn = np.zeros(images[0].shape[:2], bool)
    for image in images:
        drawn |= drawn_pixels(image)
    if not drawn.any():
        return list(images)
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out = []
    for image in images:
        canvas = np.full((size[1], size[0], 3), 255, np.uint8)
        h, w = bottom - top, right - left
        y, x = (size[1] - h) // 2, (size[0] - w) // 2
        canvas[y:y + h, x:x + w] = image[top:bottom, left:right]
        out.append(canvas)
    return out


def shown_points(labels: np.ndarray, valid: np.ndarray, class_names: Sequence[str],
                 gt: Optional[np.ndarray] = None, seed: int = 0) -> tuple[np.ndarray, bool]:
    """(indices of the points drawn, whether the ceiling was hidden).

    Drawn are the valid points minus the ceiling (by ground truth when given) so the room's
    inside shows, at most ``MAX_DRAWN_POINTS`` of them (a fixed random subset).
    """
    keep = valid.copy()
    hidden = False
    if "ceiling" in class_names:
        ceiling = list(class_names).index("ceiling")
        hide = keep & ((gt if gt is not None else labels) == ceiling)
        hidden = bool(hide.any()) and hide.sum() < keep.sum()  # never hide everything
        if hidden:
            keep &= ~hide
    index = np.flatnonzero(keep)
    if len(index) > MAX_DRAWN_POINTS:
        index = np.sort(np.random.default_rng(seed).choice(index, MAX_DRAWN_POINTS, replace=False))
    return index, hidden


def error_colors(labels: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, float, int]:
    """(colours (N, 3) uint8: wrong red, right grey, no ground truth pale; share wrong; scored points)."""
    scored = gt != UNLABELLED
    wrong = scored & (labels != gt)
    colors = np.where(wrong[:, None], WRONG_COLOR, RIGHT_COLOR)
    colors[~scored] = UNSCORED_COLOR
    n_scored = int(scored.sum())
    return colors, (float(wrong.sum()) / n_scored if n_scored else 0.0), n_scored


def confidence_colors(confidence: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours of ``confidence`` (N,) in [0, 1] in :data:`CONFIDENCE_COLORMAP`."""
    from matplotlib import colormaps

    rgba = colormaps[CONFIDENCE_COLORMAP](np.clip(np.asarray(confidence, np.float64), 0, 1))
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def render_png(path: os.PathLike, xyz: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
               valid: Optional[np.ndarray] = None, gt: Optional[np.ndarray] = None,
               confidence: Optional[np.ndarray] = None, title: str = "", labels_title: str = "prediction") -> Path:
    """Write a PNG of the cloud in class colours; with ``gt``, also ground truth and errors side by side;
    with ``confidence``, also a last panel in the confidence colour map, its colour bar right of it.

    Args:
        xyz: (N, 3) float32/64 coordinates, metres. labels, gt: (N,) integer class ids, 255 unlabelled.
        valid: (N,) bool, points to consider (default: all); invalid points are never drawn.
        confidence: (N,) float in [0, 1], the probability of each point's label.
        labels_title: caption of the ``labels`` panel.
    The ceiling is hidden (see :func:`shown_points`); the legend lists the classes drawn.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    labels = np.asarray(labels)
    valid = np.ones(len(labels), bool) if valid is None else np.asarray(valid, bool)
    index, ceiling_hidden = shown_points(labels, valid, class_names, gt)
    if len(index) == 0:
        raise PcsegError("nothing to draw: the cloud has no valid points")
    shown = labels[index]
    panels = [(labels_title, colors_for_labels(shown))]
    drawn_classes = set(np.unique(shown).tolist())
    errors_legend = []
    if gt is not None:
        shown_gt = np.asarray(gt)[index]
        colors, wrong, n_scored = error_colors(shown, shown_gt)
        panels += [("ground truth", colors_for_labels(shown_gt)),
                   (f"errors: {100 * wrong:.1f}% of {n_scored:,} points wrong", colors)]
        drawn_classes |= set(np.unique(shown_gt).tolist())
        errors_legend = [Patch(color=WRONG_COLOR / 255, label="wrong"), Patch(color=RIGHT_COLOR / 255, label="right")]
        if n_scored < len(index):
            errors_legend.append(Patch(color=UNSCORED_COLOR / 255, label="no ground truth"))
    if confidence is not None:
        panels.append(("confidence", confidence_colors(np.asarray(confidence)[index])))
    with quiet_renderer():
        views = render_views(xyz[index], [c for _, c in panels])
    images = crop_to_content(views)

    pw, ph = PANEL_SIZE
    bar_width = 0 if confidence is None else COLORBAR_WIDTH
    width, height = pw * len(panels) + bar_width + LEGEND_WIDTH, ph + TITLE_HEIGHT
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    for i, ((name, _), image) in enumerate(zip(panels, images)):
        ax = fig.add_axes((i * pw / width, 0, pw / width, ph / height))
        ax.imshow(image, interpolation="nearest")
        ax.set_axis_off()
        fig.text((i + 0.5) * pw / width, (ph + 8) / height, name, ha="center", va="bottom", fontsize=13)
    title = "   ".join(t for t in (title, "ceiling hidden" if ceiling_hidden else "") if t)
    if title:
        fig.text(0.01, 1 - 6 / height, title, ha="left", va="top", fontsize=10, color="0.35")
    handles = [Patch(color=S3DIS_PALETTE[c] / 255, label=class_names[c])
               for c in sorted(drawn_classes) if 0 <= c < min(len(class_names), len(S3DIS_PALETTE))]
    if UNLABELLED in drawn_classes:
        handles.append(Patch(color=UNLABELLED_COLOR / 255, label="unlabelled"))
    if confidence is not None:
        bar = fig.add_axes(((pw * len(panels) + 10) / width, 0.1 * ph / height, 18 / width, 0.8 * ph / height))
        fig.colorbar(ScalarMappable(Normalize(0, 1), CONFIDENCE_COLORMAP), cax=bar, label="confidence")
    legend_x = (pw * len(panels) + bar_width + 10) / width
    legend = fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(legend_x, 0.95), frameon=False,
                        title="classes", alignment="left", fontsize=11)
    if errors_legend:
        fig.add_artist(legend)
        fig.legend(handles=errors_legend, loc="lower left", bbox_to_anchor=(legend_x, 0.05), frameon=False,
                   title="errors", alignment="left", fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)
