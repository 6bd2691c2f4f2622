"""pcseg view: headless pictures with ground truth and errors, and clear errors."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from pcseg.classes import S3DIS_PALETTE
from pcseg.cli import main
from pcseg.io import write_ply
from pcseg.viz.render import WRONG_COLOR


@pytest.fixture
def labelled(tmp_path, rng):
    xyz = np.concatenate([np.column_stack([rng.uniform(0, 3, (3000, 2)), np.zeros(3000)]),
                          np.column_stack([np.zeros(1500), rng.uniform(0, 3, 1500), rng.uniform(0, 2.5, 1500)])])
    gt = np.repeat([1, 2], [3000, 1500])
    pred = gt.copy()
    pred[:600] = 7  # some floor predicted as table
    write_ply(tmp_path / "pred.ply", xyz, labels=pred)
    write_ply(tmp_path / "gt.ply", xyz, labels=gt)
    return tmp_path


def _has_colour(pixels, colour):
    return (np.abs(pixels - np.asarray(colour, int)).max(axis=1) <= 3).any()


def test_render_with_ground_truth(labelled, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    out = labelled / "view.png"
    assert main(["view", str(labelled / "pred.ply"), "--gt", str(labelled / "gt.ply"), "--render", str(out)]) == 0
    image = mpimg.imread(out)[..., :3]
    assert image.shape[1] > 2 * image.shape[0] and image.std() > 0.05
    pixels = (image.reshape(-1, 3) * 255).round().astype(int)
    for colour in (S3DIS_PALETTE[1], S3DIS_PALETTE[2], S3DIS_PALETTE[7], WRONG_COLOR):
        assert _has_colour(pixels, colour)
    assert "floor" in capsys.readouterr().out
    assert main(["view", str(labelled / "pred.ply"), "--render", str(out)]) == 2


@pytest.mark.parametrize("args,message", [
    (lambda t: ["view", str(t / "pred.ply")], "--render"),
    (lambda t: ["view", str(t / "plain.ply"), "--render", str(t / "x.png")], "no label property"),
    (lambda t: ["view", str(t / "pred.ply"), "--gt", str(t / "short.ply"), "--render", str(t / "x.png")], "points"),
])
def test_view_errors(labelled, rng, monkeypatch, capsys, args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    write_ply(labelled / "plain.ply", rng.uniform(0, 1, (10, 3)))
    write_ply(labelled / "short.ply", rng.uniform(0, 1, (10, 3)), labels=np.zeros(10, int))
    assert main(args(labelled)) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and message in err
    assert not (labelled / "x.png").exists()
