"""pcseg segment: every point labelled, awkward inputs, bad inputs, pictures, real scans, bundled models."""

import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import plyfile
import pytest
import torch

from pcseg import bundled
from pcseg.checkpoint import save_checkpoint
from pcseg.classes import S3DIS_CLASSES, S3DIS_PALETTE, UNLABELLED
from pcseg.cli import main
from pcseg.data.synthetic import generate_room
from pcseg.io import read_cloud, write_ply
from pcseg.models import build
from pcseg.segment import Segmenter, segment
from pcseg.up_axis import ROTATIONS, to_z_up
from pcseg.viz.render import LEGEND_WIDTH, TITLE_HEIGHT

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "samples" / "room.ply"


def make_checkpoint(path, name="pointnet", feature_set="xyzrgbn", channels=9, **options):
    """An untrained model checkpoint with small blocks: labelling and writing every point needs no training."""
    torch.manual_seed(0)
    model = build(name, 13, channels, **options)
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config,
                           "data": {"feature_set": feature_set, "num_points": 512, "block_size": 1.0, "stride": 1.0},
                           "class_names": list(S3DIS_CLASSES)})
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _ply_labels(path):
    return np.asarray(plyfile.PlyData.read(str(path))["vertex"]["label"])


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_cloud(path)


def panel_pixels(png):
    """(M, 3) int pixels of the cloud views of a rendered PNG (title rows and legend column cut off)."""
    image = mpimg.imread(png)[..., :3]
    return (image[TITLE_HEIGHT:, :-LEGEND_WIDTH].reshape(-1, 3) * 255).round().astype(int)


def shows_colour(pixels, colour, at_least=5):
    return int((np.abs(pixels - np.asarray(colour, int)).max(axis=1) <= 2).sum()) >= at_least


@pytest.fixture(scope="module")
def generated_room(tmp_path_factory):
    room = generate_room(3, kind="office", density=150)
    path = tmp_path_factory.mktemp("room") / "office.ply"
    write_ply(path, room.xyz, room.rgb)
    return path


def test_generated_room_end_to_end_with_picture(checkpoint, generated_room, tmp_path, capsys):
    out, png = tmp_path / "office_labelled.ply", tmp_path / "office.png"
    assert main(["segment", str(generated_room), "-o", str(out), "--model", checkpoint, "--render", str(png)]) == 0
    n = len(_read(generated_room))
    labels = _ply_labels(out)
    assert len(labels) == n and ((labels >= 0) & (labels < 13)).all()
    text = capsys.readouterr().out
    assert f"{n:,} points labelled" in text and "total" in text
    for c, count in zip(*np.unique(labels, return_counts=True)):
        assert f"{S3DIS_CLASSES[c]}" in text and f"{count:,}" in text
    pixels = panel_pixels(png)
    assert pixels.std() > 10  # not blank
    present = [c for c in np.unique(labels) if S3DIS_CLASSES[c] != "ceiling"]  # the ceiling is hidden
    assert present
    for c in present:
        assert shows_colour(pixels, S3DIS_PALETTE[c], at_least=1), S3DIS_CLASSES[c]
    absent = sorted(set(range(13)) - set(labels.tolist()))
    assert not any(shows_colour(pixels, S3DIS_PALETTE[c], at_least=50) for c in absent)


def test_output_keeps_properties_and_optionally_colours(checkpoint, tmp_path, rng):
    source_path = _awkward("nan_holes", rng, tmp_path)
    plain, kept = tmp_path / "plain.ply", tmp_path / "kept.ply"
    assert main(["segment", str(source_path), "-o", str(plain), "--model", checkpoint]) == 0
    assert main(["segment", str(source_path), "-o", str(kept), "--model", checkpoint, "--keep-colors"]) == 0
    source = plyfile.PlyData.read(str(source_path))["vertex"]
    a, b = plyfile.PlyData.read(str(plain))["vertex"], plyfile.PlyData.read(str(kept))["vertex"]
    for axis in "xyz":
        assert np.array_equal(a[axis], source[axis], equal_nan=True)
        assert np.array_equal(b[axis], source[axis], equal_nan=True)
    assert np.array_equal(a["label"], b["label"])
    colours = np.column_stack([a["red"], a["green"], a["blue"]])
    valid = a["label"] != UNLABELLED
    assert np.array_equal(colours[valid], S3DIS_PALETTE[a["label"][valid]]) and (colours[~valid] == 0).all()
    assert all(np.array_equal(b[c], source[c]) for c in ("red", "green", "blue"))


def test_python_api_on_a_cloud(checkpoint, generated_room):
    cloud = _read(generated_room)
    labels, probs = segment(cloud, model=checkpoint, device="cpu", batch_size=4)
    assert labels.dtype == np.int64 and probs.dtype == np.float32 and probs.shape == (len(cloud), 13)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert np.array_equal(labels, probs.argmax(axis=1))


def test_flat_patches_are_voted_unless_told_not_to(generated_room):
    """Segmenter(refine=True), the default, is the model's own probabilities (refine=False) put
    through pcseg.refine in the cloud's frame; on a room it changes labels on its walls and floor."""
    from pcseg.infer import Frame
    from pcseg.refine import refine_probabilities

    cloud = _read(generated_room)
    own = Segmenter.load("pointnet_synthetic", "cpu", refine=False)
    voted = Segmenter.load("pointnet_synthetic", "cpu")
    assert voted.refine and not own.refine
    raw = own.probabilities(cloud, progress=False)
    probs = voted.probabilities(cloud, progress=False)
    expected = refine_probabilities(cloud.xyz, raw.copy(), cloud.valid, Frame.of(cloud.xyz, cloud.valid).origin)
    np.testing.assert_array_equal(probs, expected)
    changed = probs.argmax(1) != raw.argmax(1)
    assert 0 < changed.mean() < 0.5


def _awkward(kind, rng, tmp_path):
    path = tmp_path / f"{kind}.ply"
    xyz = rng.uniform(0, 3, (3000, 3))
    if kind == "no_colours":
        write_ply(path, xyz)
    elif kind == "nan_holes":
        xyz[::7] = np.nan
        xyz[3, 1] = np.inf
        write_ply(path, xyz, rng.integers(0, 256, (3000, 3)).astype(np.uint8))
    elif kind == "one_point":
        write_ply(path, xyz[:1])
    elif kind == "duplicates":
        write_ply(path, np.repeat(xyz[:10], 300, axis=0))
    elif kind == "georeferenced":
        write_ply(path, xyz + [6.5e5, 4.2e6, 120.0])
    elif kind == "big_endian_double_mesh":
        vertex = np.zeros(3000, dtype=[("x", ">f8"), ("y", ">f8"), ("z", ">f8")])
        for i, axis in enumerate("xyz"):
            vertex[axis] = xyz[:, i]
        faces = np.array([([0, 1, 2],), ([2, 3, 4],)], dtype=[("vertex_indices", ">i4", (3,))])
        plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex"), plyfile.PlyElement.describe(faces, "face")],
                        byte_order=">").write(str(path))
    return path


@pytest.mark.parametrize("kind", ["no_colours", "nan_holes", "one_point", "duplicates", "georeferenced",
                                  "big_endian_double_mesh"])
def test_awkward_inputs(checkpoint, tmp_path, rng, kind):
    path = _awkward(kind, rng, tmp_path)
    cloud = _read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, probs = segment(path, model=checkpoint)
    assert labels.shape == (len(cloud),) and probs.shape == (len(cloud), 13)
    assert ((labels == UNLABELLED) == ~cloud.valid).all()
    assert ((labels[cloud.valid] >= 0) & (labels[cloud.valid] < 13)).all()
    out = tmp_path / "out.ply"
    assert main(["segment", str(path), "-o", str(out), "--model", checkpoint]) == 0
    assert np.array_equal(_ply_labels(out), labels)
    if kind == "big_endian_double_mesh":
        assert "face" in plyfile.PlyData.read(str(out))


@pytest.mark.parametrize("kind", ["georeferenced", "big_endian_double_mesh"])
def test_offset_and_encoding_do_not_change_labels(checkpoint, tmp_path, kind):
    """The same points, shifted by 6.5e5 m or stored as big-endian doubles, get the same labels."""
    reference = segment(_awkward("no_colours", np.random.default_rng(5), tmp_path), model=checkpoint)[0]
    other = segment(_awkward(kind, np.random.default_rng(5), tmp_path), model=checkpoint)[0]
    assert (reference == other).mean() > 0.999


@pytest.mark.parametrize("up", ["-y", "x", "-z"])
def test_up_axis_other_than_z_gives_the_z_up_labels(checkpoint, tmp_path, up):
    """A scan stored with another up axis, segmented with --up, is labelled as if it were z-up."""
    cloud = _read(_awkward("no_colours", np.random.default_rng(5), tmp_path))
    turned_xyz = cloud.xyz @ ROTATIONS[up]          # the inverse rotation: z-up -> `up`-up
    assert np.array_equal(to_z_up(turned_xyz, up), cloud.xyz)
    path = write_ply(tmp_path / "turned.ply", turned_xyz.astype(np.float32))
    out = tmp_path / "out.ply"
    assert main(["segment", str(path), "-o", str(out), "--model", checkpoint, f"--up={up}"]) == 0
    np.testing.assert_array_equal(_ply_labels(out), segment(cloud, model=checkpoint)[0])


def test_up_rotations_are_proper_and_bring_the_axis_to_z():
    for up, rotation in ROTATIONS.items():
        axis = np.zeros(3)
        axis["xyz".index(up[-1])] = -1.0 if up.startswith("-") else 1.0
        np.testing.assert_array_equal(rotation @ axis, [0, 0, 1])
        np.testing.assert_array_equal(rotation @ rotation.T, np.eye(3))
        assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_nan_holes_warn_and_keep_the_count(checkpoint, tmp_path, rng, capsys):
    path, out = _awkward("nan_holes", rng, tmp_path), tmp_path / "out.ply"
    assert main(["segment", str(path), "-o", str(out), "--model", checkpoint]) == 0
    captured = capsys.readouterr()
    assert "pcseg: warning:" in captured.err and "430 of 3000" in captured.err
    labels = _ply_labels(out)
    assert len(labels) == 3000 and (labels == UNLABELLED).sum() == 430
    assert "unlabelled" in captured.out


def test_several_inputs_to_a_folder(checkpoint, tmp_path, rng):
    a, b = _awkward("no_colours", rng, tmp_path), _awkward("one_point", rng, tmp_path)
    out, pictures = tmp_path / "out", tmp_path / "pictures"
    assert main(["segment", str(a), str(b), "-o", str(out), "--model", checkpoint, "--render", str(pictures)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["no_colours_labelled.ply", "one_point_labelled.ply"]
    assert sorted(p.name for p in pictures.iterdir()) == ["no_colours_labelled.png", "one_point_labelled.png"]
    assert len(_ply_labels(out / "one_point_labelled.ply")) == 1


def test_xyz_only_model(tmp_path, rng):
    model = make_checkpoint(tmp_path / "xyz.pt", feature_set="xyz", channels=3)
    labels, probs = segment(_awkward("no_colours", rng, tmp_path), model=model)
    assert len(labels) == 3000 and probs.shape == (3000, 13)


BAD_CALLS = {
    "missing input": (["{t}/missing.ply", "-o", "{t}/o.ply"], "no such file"),
    "not a PLY": (["{t}/bad.ply", "-o", "{t}/o.ply"], "not a PLY"),
    "output is the input": (["{t}/good.ply", "-o", "{t}/good.ply", "--overwrite"], "input"),
    "output exists": (["{t}/good.ply", "-o", "{t}/exists.ply"], "exists"),
    "unknown output type": (["{t}/good.ply", "-o", "{t}/o.xyz"], "unknown output type"),
    "picture not PNG": (["{t}/good.ply", "-o", "{t}/o.ply", "--render", "{t}/o.jpg"], ".png"),
    "unknown model name": (["{t}/good.ply", "-o", "{t}/o.ply", "--model", "nomodel"], "no bundled model"),
    "model not a checkpoint": (["{t}/good.ply", "-o", "{t}/o.ply", "--model", "{t}/bad.ply"], "checkpoint"),
    "missing checkpoint": (["{t}/good.ply", "-o", "{t}/o.ply", "--model", "{t}/none.pt"], "not found"),
    "stride above block": (["{t}/good.ply", "-o", "{t}/o.ply", "--stride", "2"], "--stride"),
    "zero batch": (["{t}/good.ply", "-o", "{t}/o.ply", "--batch-size", "0"], "--batch-size"),
    "zero votes": (["{t}/good.ply", "-o", "{t}/o.ply", "--votes", "0"], "--votes"),
    "negative block": (["{t}/good.ply", "-o", "{t}/o.ply", "--block-size", "-1"], "--block-size"),
    "negative voxel": (["{t}/good.ply", "-o", "{t}/o.ply", "--voxel-size", "-0.1"], "--voxel-size"),
    "voxel as big as a block": (["{t}/good.ply", "-o", "{t}/o.ply", "--voxel-size", "1"], "--voxel-size"),
    "unknown device": (["{t}/good.ply", "-o", "{t}/o.ply", "--device", "tpu"], "device"),
    "several to a file": (["{t}/good.ply", "{t}/other.ply", "-o", "{t}/exists.ply"], "folder"),
    "second input bad": (["{t}/good.ply", "{t}/bad.ply", "-o", "{t}/out"], "not a PLY"),
    "same stems": (["{t}/good.ply", "{t}/sub/good.ply", "-o", "{t}/out"], "collide"),
    "all points NaN": (["{t}/nan.ply", "-o", "{t}/o.ply"], "non-finite"),
}
if not torch.cuda.is_available():
    BAD_CALLS["cuda without CUDA"] = (["{t}/good.ply", "-o", "{t}/o.ply", "--device", "cuda"], "CUDA is not available")


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_one_line_error_nothing_written(checkpoint, tmp_path, rng, capsys, case):
    (tmp_path / "bad.ply").write_text("hello\n")
    write_ply(tmp_path / "good.ply", rng.uniform(0, 1, (50, 3)))
    write_ply(tmp_path / "other.ply", rng.uniform(0, 1, (50, 3)))
    write_ply(tmp_path / "sub" / "good.ply", rng.uniform(0, 1, (50, 3)))
    write_ply(tmp_path / "nan.ply", np.full((5, 3), np.nan))
    (tmp_path / "exists.ply").write_text("keep me")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args, message = BAD_CALLS[case]
    argv = ["segment"] + [a.format(t=tmp_path) for a in args]
    if "--model" not in argv:
        argv += ["--model", checkpoint]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and message in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pcseg", "segment", str(tmp_path / "none.ply"), "-o",
                             str(tmp_path / "o.ply")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("pcseg: error:") and not (tmp_path / "o.ply").exists()


def test_default_model_is_the_bundled_one(checkpoint, tmp_path, rng, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / f"{bundled.DEFAULT_MODEL}.pt").write_bytes(Path(checkpoint).read_bytes())
    monkeypatch.setattr(bundled, "WEIGHTS", weights)
    assert bundled.bundled_models() == [bundled.DEFAULT_MODEL]
    path = _awkward("no_colours", rng, tmp_path)
    assert main(["segment", str(path), "-o", str(tmp_path / "out.ply")]) == 0
    assert len(_ply_labels(tmp_path / "out.ply")) == 3000


def test_run_directory_as_model(checkpoint, tmp_path, rng):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(Path(checkpoint).read_bytes())
    labels, _ = segment(_awkward("one_point", rng, tmp_path), model=str(run))
    assert labels.shape == (1,)


@pytest.mark.parametrize("name", ["acnn_synthetic", "pointnet_synthetic"])
def test_bundled_models_label_a_generated_room(name, generated_room, tmp_path):
    assert name in bundled.bundled_models()
    out = tmp_path / "out.ply"
    assert main(["segment", str(generated_room), "-o", str(out), "--model", name, "--device", "cpu"]) == 0
    assert len(_ply_labels(out)) == len(_read(generated_room))


def test_real_scan_double_coordinates(checkpoint, real_scans, tmp_path):
    name, out = "labelcloud_cart.ply", tmp_path / "out.ply"
    assert main(["segment", str(real_scans / name), "-o", str(out), "--model", checkpoint]) == 0
    assert len(_ply_labels(out)) == len(_read(real_scans / name))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pcl_office1.ply", "pcl_office1.pcd", "pcl_table_scene_mug_stereo_textured.ply",
                                  "laspy_simple.las", "laspy_autzen_trim.laz"])
def test_real_scans_large(checkpoint, real_scans, tmp_path, name):
    out, png = tmp_path / "out.ply", tmp_path / "out.png"
    assert main(["segment", str(real_scans / name), "-o", str(out), "--model", checkpoint, "--render", str(png)]) == 0
    cloud = _read(real_scans / name)
    labels = _ply_labels(out)
    assert len(labels) == len(cloud) and ((labels == UNLABELLED) == ~cloud.valid).all()
    assert panel_pixels(png).std() > 10


@pytest.mark.slow
def test_sample_room_with_acnn(tmp_path):
    model = make_checkpoint(tmp_path / "acnn.pt", name="acnn")
    out = tmp_path / "room_labelled.ply"
    assert main(["segment", str(SAMPLE), "-o", str(out), "--model", model]) == 0
    assert len(_ply_labels(out)) == len(_read(SAMPLE))
