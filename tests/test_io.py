"""pcseg.io: PLY flavours round trip, bad files give one-line errors, real scans read right."""

import json
import warnings

import numpy as np
import plyfile
import pytest

from pcseg.classes import S3DIS_PALETTE, UNLABELLED
from pcseg.errors import PcsegError
from pcseg.io import read_cloud, write_labelled_ply, write_ply


def _write_raw_ply(path, vertex, *, text=False, byte_order="<", faces=None):
    elements = [plyfile.PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        elements.append(plyfile.PlyElement.describe(faces, "face"))
    plyfile.PlyData(elements, text=text, byte_order=byte_order).write(str(path))
    return path


def _vertex(rng, n, coord="f4", color="u1", extra=True):
    fields = [("x", coord), ("y", coord), ("z", coord)]
    if color:
        fields += [("red", color), ("green", color), ("blue", color)]
    fields += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
    if extra:
        fields += [("intensity", "f4"), ("label", "i4")]
    v = np.zeros(n, dtype=fields)
    xyz = rng.uniform(-5, 5, (n, 3))
    for i, a in enumerate("xyz"):
        v[a] = xyz[:, i]
    if color == "u1":
        for c in ("red", "green", "blue"):
            v[c] = rng.integers(0, 256, n)
    elif color == "u2":
        for c in ("red", "green", "blue"):
            v[c] = rng.integers(0, 65536, n)
    elif color == "f4":
        for c in ("red", "green", "blue"):
            v[c] = rng.uniform(0, 1, n)
    v["nz"] = 1.0
    if extra:
        v["intensity"] = rng.uniform(0, 100, n)
        v["label"] = rng.integers(0, 13, n)
    return v


@pytest.mark.parametrize("text,byte_order", [(True, "="), (False, "<"), (False, ">")])
@pytest.mark.parametrize("coord", ["f4", "f8"])
@pytest.mark.parametrize("color", ["u1", "u2", "f4", None])
def test_ply_flavours_read_right(tmp_path, rng, text, byte_order, coord, color):
    v = _vertex(rng, 200, coord=coord, color=color)
    path = _write_raw_ply(tmp_path / "in.ply", v, text=text, byte_order=byte_order)
    cloud = read_cloud(path)
    assert len(cloud) == 200 and cloud.valid.all()
    expected = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    np.testing.assert_allclose(cloud.absolute_xyz(), expected, atol=1e-5)
    assert cloud.xyz.dtype == np.float32 and cloud.origin.dtype == np.float64
    np.testing.assert_array_equal(cloud.labels, v["label"])
    np.testing.assert_array_equal(cloud.normals[:, 2], 1.0)
    if color is None:
        assert cloud.rgb is None
    else:
        assert cloud.rgb.dtype == np.uint8
        if color == "u1":
            np.testing.assert_array_equal(cloud.rgb[:, 0], v["red"])
        elif color == "u2":
            np.testing.assert_array_equal(cloud.rgb[:, 0], v["red"] // 257)
        else:
            np.testing.assert_array_equal(cloud.rgb[:, 0], np.rint(v["red"] * 255).astype(np.uint8))


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_labelled_round_trip_keeps_every_property(tmp_path, rng, byte_order):
    v = _vertex(rng, 300)
    src = _write_raw_ply(tmp_path / "in.ply", v, byte_order=byte_order)
    before = src.read_bytes()
    cloud = read_cloud(src)
    labels = rng.integers(0, 13, 300)
    out = write_labelled_ply(tmp_path / "out.ply", cloud, labels)
    assert src.read_bytes() == before
    written = plyfile.PlyData.read(str(out))["vertex"].data
    for name in ("x", "y", "z", "nx", "ny", "nz", "intensity"):
        np.testing.assert_array_equal(written[name], v[name])
    np.testing.assert_array_equal(written["label_input"], v["label"])
    np.testing.assert_array_equal(written["label"], labels)
    np.testing.assert_array_equal(
        np.stack([written["red"], written["green"], written["blue"]], 1), S3DIS_PALETTE[labels])
    again = read_cloud(out)
    np.testing.assert_array_equal(again.labels, labels)


def test_keep_colors(tmp_path, rng):
    v = _vertex(rng, 50)
    cloud = read_cloud(_write_raw_ply(tmp_path / "in.ply", v))
    out = write_labelled_ply(tmp_path / "out.ply", cloud, np.zeros(50, int), keep_colors=True)
    written = plyfile.PlyData.read(str(out))["vertex"].data
    np.testing.assert_array_equal(written["red"], v["red"])


def test_mesh_vertices_are_points_and_faces_are_kept(tmp_path, rng):
    v = _vertex(rng, 4, extra=False)
    faces = np.array([([0, 1, 2],), ([0, 2, 3],)], dtype=[("vertex_indices", "i4", (3,))])
    cloud = read_cloud(_write_raw_ply(tmp_path / "mesh.ply", v, faces=faces))
    assert len(cloud) == 4
    out = write_labelled_ply(tmp_path / "out.ply", cloud, np.arange(4))
    written = plyfile.PlyData.read(str(out))
    assert written["face"].count == 2 and written["vertex"].count == 4


def test_non_finite_points_kept_as_unlabelled(tmp_path, rng):
    v = _vertex(rng, 10, extra=False)
    v["x"][[2, 5]] = np.nan
    v["z"][7] = np.inf
    with pytest.warns(UserWarning, match="3 of 10 points"):
        cloud = read_cloud(_write_raw_ply(tmp_path / "nan.ply", v))
    assert len(cloud) == 10 and (~cloud.valid).sum() == 3
    assert np.isfinite(cloud.xyz).all()
    out = write_labelled_ply(tmp_path / "out.ply", cloud, np.ones(10, int))
    written = plyfile.PlyData.read(str(out))["vertex"].data
    assert list(np.flatnonzero(written["label"] == UNLABELLED)) == [2, 5, 7]
    assert (written["red"][[2, 5, 7]] == 0).all()


def test_georeferenced_coordinates_keep_millimetres(tmp_path, rng):
    xyz = np.array([6.5e6, 4.2e6, 350.0]) + rng.uniform(0, 50, (1000, 3))
    xyz = np.round(xyz, 3)
    path = write_ply(tmp_path / "geo.ply", xyz)
    cloud = read_cloud(path)
    assert np.abs(cloud.absolute_xyz() - xyz).max() < 1e-4
    assert np.abs(cloud.xyz).max() < 100


def test_write_refuses_input_and_existing_output(tmp_path, rng):
    src = _write_raw_ply(tmp_path / "in.ply", _vertex(rng, 5))
    cloud = read_cloud(src)
    with pytest.raises(PcsegError, match="input"):
        write_labelled_ply(src, cloud, np.zeros(5, int), overwrite=True)
    out = write_labelled_ply(tmp_path / "out.ply", cloud, np.zeros(5, int))
    with pytest.raises(PcsegError, match="exists"):
        write_labelled_ply(out, cloud, np.zeros(5, int))
    write_labelled_ply(out, cloud, np.ones(5, int), overwrite=True)
    assert (plyfile.PlyData.read(str(out))["vertex"]["label"] == 1).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _header(n, fmt="binary_little_endian", props=("x", "y", "z")):
    lines = ["ply", f"format {fmt} 1.0", f"element vertex {n}"]
    lines += [f"property float {p}" for p in props]
    return ("\n".join(lines + ["end_header"]) + "\n").encode()


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"hello world\n", "not a PLY"),
    (b"ply\nformat ascii 1.0\nelement vertex 3\n", "end_header"),
    (_header(1_000_000_000) + b"\0" * 24, "truncated"),
    (_header(10, fmt="ascii"), "truncated"),
    (_header(5) + b"\0" * 12, "truncated"),
    (b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n3 0 1 2\n",
     "no 'vertex' element"),
    (_header(2, props=("a", "b", "c")) + b"\0" * 24, "no x, y, z"),
    (_header(0), "zero points"),
    (_header(2) + np.full(6, np.nan, "<f4").tobytes(), "non-finite"),
])
def test_bad_files_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(PcsegError, match=message) as info:
        read_cloud(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text


def test_bad_paths(tmp_path):
    with pytest.raises(PcsegError, match="no such file"):
        read_cloud(tmp_path / "missing.ply")
    with pytest.raises(PcsegError, match="unsupported"):
        (tmp_path / "a.xyz").write_text("1 2 3\n")
        read_cloud(tmp_path / "a.xyz")
    with pytest.raises(PcsegError, match="directory"):
        read_cloud(tmp_path)


def test_real_organised_frame_with_nan_holes(real_scans):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ply = read_cloud(real_scans / "pcl_office1.ply")
        pcd = read_cloud(real_scans / "pcl_office1.pcd")
    for cloud in (ply, pcd):
        assert len(cloud) == 307_200 and int((~cloud.valid).sum()) == 52_744
        assert cloud.rgb is not None
    np.testing.assert_array_equal(ply.valid, pcd.valid)
    np.testing.assert_allclose(ply.absolute_xyz()[ply.valid], pcd.absolute_xyz()[pcd.valid], atol=1e-6)
    np.testing.assert_array_equal(ply.rgb[ply.valid], pcd.rgb[pcd.valid])


def test_real_double_coordinates_and_labels(real_scans):
    cloud = read_cloud(real_scans / "labelcloud_cart.ply")
    assert len(cloud) == 86_357 and cloud.valid.all()
    raw = plyfile.PlyData.read(str(real_scans / "labelcloud_cart.ply"))["vertex"].data
    assert raw["x"].dtype == np.float64
    np.testing.assert_allclose(cloud.absolute_xyz()[:, 0], raw["x"], atol=1e-6)
    labels = np.fromfile(real_scans / "labelcloud_cart_segmentation.bin", dtype=np.int8)
    assert labels.shape == (len(cloud),)
    assert "cart" in json.dumps(json.loads((real_scans / "labelcloud_cart_classes.json").read_text()))


def test_real_stereo_scan(real_scans):
    cloud = read_cloud(real_scans / "pcl_table_scene_mug_stereo_textured.ply")
    assert len(cloud) == 209_280 and cloud.valid.all() and cloud.rgb is not None


@pytest.mark.parametrize("name,count", [("laspy_simple.las", 1065), ("laspy_autzen_trim.laz", 110_000)])
def test_real_lidar_keeps_millimetres(real_scans, name, count):
    import laspy
    las = laspy.read(str(real_scans / name))
    cloud = read_cloud(real_scans / name)
    assert len(cloud) == count
    expected = np.stack([las.x, las.y, las.z], 1)
    assert np.abs(expected).max() > 1e5
    assert np.abs(cloud.absolute_xyz() - expected).max() < 1e-3
    np.testing.assert_array_equal(cloud.properties["classification"], np.asarray(las.classification))
