"""The models shipped in pcseg/weights: present, documented, and as good as their cards say."""

import shlex
import subprocess
import warnings
from pathlib import Path

import numpy as np
import plyfile
import pytest

from pcseg import bundled
from pcseg.checkpoint import load_checkpoint
from pcseg.io import read_cloud
from pcseg.segment import segment

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_demo_command() -> str:
    """The part after ``&&`` of the README's first quick-start command."""
    lines = [line for line in README.read_text().splitlines() if line.startswith("bash scripts/setup.sh && ")]
    return lines[0].split("&& ", 1)[1]


def test_default_model_is_shipped_with_a_card_and_its_recipe():
    assert bundled.DEFAULT_MODEL in bundled.bundled_models()
    for name in bundled.bundled_models():
        ckpt = load_checkpoint(bundled.resolve_model(name))
        assert "optimizer" not in ckpt and ckpt["config"]["model"]["name"] == ckpt["model_config"]["name"]
        assert (bundled.WEIGHTS / f"{name}.md").is_file()
        assert (ROOT / "pcseg" / "configs" / f"{name}.yaml").is_file()
        assert name in (bundled.WEIGHTS / "README.md").read_text()
        val = ckpt["metrics"]["val"]
        assert f"mIoU {100 * val['mIoU']:.1f}" in (bundled.WEIGHTS / f"{name}.md").read_text()


@pytest.mark.slow
def test_readme_demo_labels_the_sample_room(tmp_path):
    """The README's first command, run as pasted in a folder holding the sample scan."""
    command = readme_demo_command()
    assert "datasets/samples/room.ply" in command
    work = tmp_path / "work"
    (work / "datasets" / "samples").mkdir(parents=True)
    (work / "datasets" / "samples" / "room.ply").symlink_to(ROOT / "datasets" / "samples" / "room.ply")
    argv = shlex.split(command)
    argv[0] = str(ROOT / argv[0])
    for _ in range(2):  # pasting it twice works too
        result = subprocess.run(argv, cwd=work, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    labels = np.asarray(plyfile.PlyData.read(str(work / "room_labelled.ply"))["vertex"]["label"])
    truth = np.asarray(plyfile.PlyData.read(str(ROOT / "datasets" / "samples" / "room_labels.ply"))["vertex"]["label"])
    assert (work / "room.png").stat().st_size > 10_000
    assert (labels == truth).mean() > 0.8                 # OA 85.9 (acnn_real.md): a generated room


@pytest.mark.slow
def test_default_model_on_a_real_office_frame(real_scans):
    """Kinect frame of an office (camera coordinates, --up=-y): floor low, walls at mid height."""
    path = real_scans / "pcl_office1.ply"
    labels, _ = segment(path, up="-y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cloud = read_cloud(path)
    height = -cloud.xyz[:, 1].astype(np.float64)
    height = (height - np.nanmin(height[cloud.valid])) / np.ptp(height[cloud.valid])
    floor, wall = labels == 1, labels == 2
    assert floor.sum() > 1000 and wall.mean() > 0.3
    assert np.median(height[floor]) < 0.2 < np.median(height[wall])
