"""pcseg segment: every point labelled, awkward inputs, bad inputs, pictures, real scans."""

import subprocess
import sys
import warnings

import numpy as np
import plyfile
import pytest
import torch

from pcseg.checkpoint import save_checkpoint
from pcseg.classes import S3DIS_CLASSES, S3DIS_PALETTE, UNLABELLED
from pcseg.cli import main
from pcseg.io import read_cloud, write_ply
from pcseg.models import build
from pcseg.segment import segment

SAMPLE = "datasets/samples/room.ply"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained PointNet checkpoint with small blocks (trained weights are not needed to
    test that every point is labelled and written)."""
    torch.manual_seed(0)
    model = build("pointnet", 13, 9)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config,
                           "data": {"feature_set": "xyzrgbn", "num_points": 512, "block_size": 1.0, "stride": 1.0},
                           "class_names": list(S3DIS_CLASSES)})
    return str(path)


def _labels(path):
    return plyfile.PlyData.read(str(path))["vertex"]["label"]


@pytest.mark.slow
def test_sample_room_end_to_end(checkpoint, tmp_path, capsys):
    out = tmp_path / "room_labelled.ply"
    assert main(["segment", SAMPLE, "-o", str(out), "--model", checkpoint, "--render", str(tmp_path / "room.png")]) == 0
    n = len(read_cloud(SAMPLE))
    labels = _labels(out)
    assert len(labels) == n and ((labels >= 0) & (labels < 13)).all()
    text = capsys.readouterr().out
    assert "total" in text and f"{n:,}" in text
    import matplotlib.image as mpimg
    png = mpimg.imread(tmp_path / "room.png")[..., :3]
    assert png.std() > 0.05
    pixels = (png.reshape(-1, 3) * 255).round().astype(int)
    for cls in np.unique(labels)[:3]:
        colour = S3DIS_PALETTE[cls].astype(int)
        assert (np.abs(pixels - colour).max(axis=1) <= 3).any(), S3DIS_CLASSES[cls]


def _awkward(kind, rng, tmp_path):
    path = tmp_path / f"{kind}.ply"
    xyz = rng.uniform(0, 3, (3000, 3))
    if kind == "no_colours":
        write_ply(path, xyz)
    elif kind == "nan_holes":
        xyz[::7] = np.nan
        write_ply(path, xyz, rng.integers(0, 256, (3000, 3)).astype(np.uint8))
    elif kind == "one_point":
        write_ply(path, xyz[:1])
    elif kind == "duplicates":
        write_ply(path, np.repeat(xyz[:10], 300, axis=0))
    elif kind == "georeferenced":
        write_ply(path, xyz + [6.5e5, 4.2e6, 120.0])
    else:
        v = np.zeros(3000, dtype=[("x", ">f8"), ("y", ">f8"), ("z", ">f8")])
        for i, a in enumerate("xyz"):
            v[a] = xyz[:, i]
        faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
        plyfile.PlyData([plyfile.PlyElement.describe(v, "vertex"), plyfile.PlyElement.describe(faces, "face")],
                        byte_order=">").write(str(path))
    return path


@pytest.mark.parametrize("kind", ["no_colours", "nan_holes", "one_point", "duplicates", "georeferenced",
                                  "big_endian_double_mesh"])
def test_awkward_inputs(checkpoint, tmp_path, rng, kind):
    path = _awkward(kind, rng, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cloud = read_cloud(path)
        labels, probs = segment(path, model=checkpoint)
    assert labels.shape == (len(cloud),) and probs.shape == (len(cloud), 13)
    assert ((labels == UNLABELLED) == ~cloud.valid).all()
    out = tmp_path / "out.ply"
    assert main(["segment", str(path), "-o", str(out), "--model", checkpoint]) == 0
    assert len(_labels(out)) == len(cloud)


def test_several_inputs_to_a_folder(checkpoint, tmp_path, rng):
    a, b = _awkward("no_colours", rng, tmp_path), _awkward("one_point", rng, tmp_path)
    assert main(["segment", str(a), str(b), "-o", str(tmp_path / "out"), "--model", checkpoint]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["no_colours_labelled.ply", "one_point_labelled.ply"]


@pytest.mark.parametrize("make_args,message", [
    (lambda t, c: ["segment", str(t / "missing.ply"), "-o", str(t / "o.ply"), "--model", c], "no such file"),
    (lambda t, c: ["segment", str(t / "bad.ply"), "-o", str(t / "o.ply"), "--model", c], "not a PLY"),
    (lambda t, c: ["segment", str(t / "good.ply"), "-o", str(t / "good.ply"), "--model", c, "--overwrite"], "input"),
    (lambda t, c: ["segment", str(t / "good.ply"), "-o", str(t / "exists.ply"), "--model", c], "exists"),
    (lambda t, c: ["segment", str(t / "good.ply"), "-o", str(t / "o.txt"), "--model", c], ".ply"),
    (lambda t, c: ["segment", str(t / "good.ply"), "-o", str(t / "o.ply"), "--model", "nomodel"], "no bundled model"),
    (lambda t, c: ["segment", str(t / "good.ply"), "-o", str(t / "o.ply"), "--model", str(t / "bad.ply")], "checkpoint"),
])
def test_bad_input_one_line_error_nothing_written(checkpoint, tmp_path, rng, capsys, make_args, message):
    (tmp_path / "bad.ply").write_text("hello\n")
    write_ply(tmp_path / "good.ply", rng.uniform(0, 1, (50, 3)))
    (tmp_path / "exists.ply").write_text("keep me")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(make_args(tmp_path, checkpoint)) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and message in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pcseg", "segment", str(tmp_path / "none.ply"), "-o",
                             str(tmp_path / "o.ply")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("pcseg: error:")


@pytest.mark.parametrize("name", ["labelcloud_cart.ply"])
def test_real_scans(checkpoint, real_scans, tmp_path, name):
    out = tmp_path / "out.ply"
    assert main(["segment", str(real_scans / name), "-o", str(out), "--model", checkpoint]) == 0
    assert len(_labels(out)) == len(read_cloud(real_scans / name))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pcl_office1.ply", "pcl_office1.pcd", "pcl_table_scene_mug_stereo_textured.ply",
                                  "laspy_simple.las"])
def test_real_scans_large(checkpoint, real_scans, tmp_path, name):
    out = tmp_path / "out.ply"
    assert main(["segment", str(real_scans / name), "-o", str(out), "--model", checkpoint,
                 "--render", str(tmp_path / "out.png")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cloud = read_cloud(real_scans / name)
    labels = _labels(out)
    assert len(labels) == len(cloud) and ((labels == UNLABELLED) == ~cloud.valid).all()
    assert (tmp_path / "out.png").stat().st_size > 10_000
