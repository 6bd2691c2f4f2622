"""pcseg view: headless pictures (with ground truth and errors), the window layout, clear errors."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from pcseg.classes import S3DIS_PALETTE
from pcseg.cli import main
from pcseg.io import write_ply
from pcseg.viz.render import LEGEND_WIDTH, PANEL_SIZE, RIGHT_COLOR, TITLE_HEIGHT, WRONG_COLOR


@pytest.fixture
def labelled(tmp_path, rng):
    """A floor (class 1) and a wall (2); the prediction calls part of the floor table (7)."""
    xyz = np.concatenate([np.column_stack([rng.uniform(0, 3, (3000, 2)), np.zeros(3000)]),
                          np.column_stack([np.zeros(1500), rng.uniform(0, 3, 1500), rng.uniform(0, 2.5, 1500)])])
    gt = np.repeat([1, 2], [3000, 1500])
    pred = gt.copy()
    pred[:600] = 7
    write_ply(tmp_path / "pred.ply", xyz, labels=pred)
    write_ply(tmp_path / "gt.ply", xyz, labels=gt)
    return tmp_path


def panels(png):
    """The cloud views of a rendered PNG as a list of (M, 3) int pixel arrays, left to right."""
    image = (mpimg.imread(png)[..., :3] * 255).round().astype(int)[TITLE_HEIGHT:, :-LEGEND_WIDTH]
    width = PANEL_SIZE[0]
    assert image.shape[1] % width == 0
    return [image[:, i:i + width].reshape(-1, 3) for i in range(0, image.shape[1], width)]


def count(pixels, colour):
    return int((np.abs(pixels - np.asarray(colour, int)).max(axis=1) <= 2).sum())


def test_render_with_ground_truth(labelled, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    out = labelled / "view.png"
    assert main(["view", str(labelled / "pred.ply"), "--gt", str(labelled / "gt.ply"), "--render", str(out)]) == 0
    prediction, truth, errors = panels(out)
    floor, wall, table = S3DIS_PALETTE[1], S3DIS_PALETTE[2], S3DIS_PALETTE[7]
    assert count(prediction, table) > 100 and count(prediction, floor) > 100 and count(prediction, wall) > 100
    assert count(truth, table) == 0 and count(truth, floor) > 100 and count(truth, wall) > 100
    assert count(errors, WRONG_COLOR) > 100 and count(errors, RIGHT_COLOR) > count(errors, WRONG_COLOR)
    assert count(errors, floor) == 0
    text = capsys.readouterr().out
    assert "floor" in text and "table" in text and "13.3%" in text  # 600 of 4500 points are table
    assert main(["view", str(labelled / "pred.ply"), "--render", str(out)]) == 2  # exists, no --overwrite
    assert main(["view", str(labelled / "pred.ply"), "--render", str(out), "--overwrite"]) == 0
    assert len(panels(out)) == 1


def test_window_shows_panels_side_by_side(labelled, monkeypatch):
    import open3d as o3d
    shown = {}
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(o3d.visualization, "draw_geometries",
                        lambda geometries, **kw: shown.update(geometries=geometries, **kw))
    assert main(["view", str(labelled / "pred.ply"), "--gt", str(labelled / "gt.ply")]) == 0
    clouds = shown["geometries"]
    assert len(clouds) == 3 and "ground truth" in shown["window_name"]
    xs = [np.asarray(c.points)[:, 0] for c in clouds]
    assert xs[0].max() < xs[1].min() and xs[1].max() < xs[2].min()  # no overlap
    colours = (np.asarray(clouds[2].colors) * 255).round().astype(int)
    assert count(colours, WRONG_COLOR) == 600


@pytest.mark.parametrize("args,message", [
    (lambda t: ["view", str(t / "pred.ply")], "--render"),
    (lambda t: ["view", str(t / "plain.ply"), "--render", str(t / "x.png")], "no label property"),
    (lambda t: ["view", str(t / "pred.ply"), "--gt", str(t / "short.ply"), "--render", str(t / "x.png")], "points"),
    (lambda t: ["view", str(t / "pred.ply"), "--render", str(t / "x.jpg")], ".png"),
    (lambda t: ["view", str(t / "missing.ply"), "--render", str(t / "x.png")], "no such file"),
])
def test_view_errors(labelled, rng, monkeypatch, capsys, args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    write_ply(labelled / "plain.ply", rng.uniform(0, 1, (10, 3)))
    write_ply(labelled / "short.ply", rng.uniform(0, 1, (10, 3)), labels=np.zeros(10, int))
    assert main(args(labelled)) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and message in err and err.count("\n") == 1
    assert not (labelled / "x.png").exists() and not (labelled / "x.jpg").exists()


def test_render_prints_nothing_from_the_renderer(labelled):
    """A headless render says only pcseg's own lines: no XDG_RUNTIME_DIR, GLFW or Open3D chatter."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XDG_RUNTIME_DIR")}
    env["PYTHONPATH"] = str(root)
    out = labelled / "quiet.png"
    done = subprocess.run([sys.executable, "-m", "pcseg", "view", str(labelled / "pred.ply"), "--render", str(out)],
                          capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0 and out.is_file()
    assert done.stderr == ""
    assert not any(word in done.stdout for word in ("XDG_RUNTIME_DIR", "GLFW", "Open3D", "EGL"))
    assert f"picture: {out}" in done.stdout


def test_gt_of_other_points_is_refused(labelled, rng, capsys):
    """Two clouds with the same number of points but different coordinates: one-line error, exit 2."""
    xyz = rng.uniform(0, 3, (4500, 3))
    write_ply(labelled / "other.ply", xyz, labels=np.ones(4500, int))
    out = labelled / "v.png"
    assert main(["view", str(labelled / "pred.ply"), "--gt", str(labelled / "other.ply"), "--render", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the same points" in err[0] and "other.ply" in err[0]
    assert not out.exists()
