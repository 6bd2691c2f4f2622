"""Labelled outputs: LAS/LAZ keep every input dimension, confidence and probabilities, labels-only files,
output choice by suffix and folder format, confidence in the summary and the view."""

import warnings

import laspy
from laspy.vlrs.vlrlist import VLRList
import matplotlib.image as mpimg
import numpy as np
import plyfile
import pytest

from pcseg.classes import S3DIS_CLASSES, UNLABELLED
from pcseg.cli import main
from pcseg.errors import PcsegError
from pcseg.io import read_cloud, write_labelled, write_ply
from pcseg.io.asprs import S3DIS_TO_ASPRS, asprs_codes
from pcseg.io.writers import folder_output_name
from pcseg.summary import class_summary
from pcseg.viz.render import COLORBAR_WIDTH, LEGEND_WIDTH, PANEL_SIZE, TITLE_HEIGHT, confidence_colors
from test_segment import make_checkpoint

#: Extra dimensions every LAS output has.
PCSEG_DIMENSIONS = {"label", "confidence"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_cloud(path)


def _random_labels(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 13, n), rng.uniform(0, 1, n).astype(np.float32)


def make_las(path, rng, n=2000, point_format=8, version="1.4", evlr=True):
    """A LAS file with random values in every dimension, a user extra dimension, a CRS-like VLR and,
    for LAS 1.4, an EVLR."""
    header = laspy.LasHeader(version=version, point_format=point_format)
    header.scales = [0.001, 0.001, 0.01]
    header.offsets = [650_000.0, 4_200_000.0, 100.0]
    header.add_extra_dims([laspy.ExtraBytesParams("reflectance", "f4", "a user dimension")])
    header.vlrs.append(laspy.VLR("pcseg_test", 42, "a vlr", b"kept as it is"))
    las = laspy.LasData(header)
    raw = np.zeros(n, las.points.array.dtype)
    for name in raw.dtype.names:
        info = np.iinfo(raw.dtype[name]) if raw.dtype[name].kind in "ui" else None
        raw[name] = rng.integers(info.min, info.max, n, endpoint=True) if info else rng.normal(0, 1e3, n)
    raw["X"], raw["Y"], raw["Z"] = (rng.integers(0, 200_000, n) for _ in range(3))  # within 200 m
    las.points = laspy.ScaleAwarePointRecord(raw, header.point_format, header.scales, header.offsets)
    if evlr and version == "1.4":
        las.evlrs = VLRList([laspy.VLR("pcseg_test", 43, "an evlr", b"kept after the points")])
    las.write(str(path))
    return path


def _vlrs(vlrs):
    """(user id, record id, bytes) of the VLRs a writer does not remake (LASzip, extra bytes)."""
    return [(v.user_id, v.record_id, bytes(v.record_data if hasattr(v, "record_data") else v.record_data_bytes()))
            for v in vlrs or [] if type(v).__name__ not in ("LasZipVlr", "ExtraBytesVlr")]


def assert_las_output_keeps_input(source, out, labels, confidence):
    a, b = laspy.read(str(source)), laspy.read(str(out))
    assert b.header.point_count == a.header.point_count == len(labels)
    assert (b.header.version, b.header.point_format.id) == (a.header.version, a.header.point_format.id)
    np.testing.assert_array_equal(b.header.scales, a.header.scales)
    np.testing.assert_array_equal(b.header.offsets, a.header.offsets)
    assert _vlrs(b.header.vlrs) == _vlrs(a.header.vlrs) and _vlrs(b.evlrs) == _vlrs(a.evlrs)
    for field in a.points.array.dtype.names:  # the raw records, bit for bit, extra dimensions included
        if field not in ("raw_classification", "classification"):
            assert np.array_equal(b.points.array[field], a.points.array[field]), field
    for name in a.point_format.dimension_names:  # and the flags sharing a byte with the classification
        if name != "classification":
            assert np.array_equal(np.asarray(b[name]), np.asarray(a[name])), name
    assert set(b.point_format.extra_dimension_names) == set(a.point_format.extra_dimension_names) | PCSEG_DIMENSIONS | {
        "classification_input"}
    np.testing.assert_array_equal(b.classification_input, a.classification)
    np.testing.assert_array_equal(b.classification, asprs_codes(labels))
    np.testing.assert_array_equal(b.label, labels)
    assert b.confidence.dtype == np.float32
    np.testing.assert_array_equal(b.confidence, confidence)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_made_las_round_trip_keeps_every_dimension(tmp_path, rng, suffix):
    for source in (make_las(tmp_path / "made_14.laz", rng), make_las(tmp_path / "made_12.las", rng, point_format=1,
                                                                      version="1.2")):
        cloud = _read(source)
        labels, confidence = _random_labels(len(cloud))
        out = write_labelled(tmp_path / f"{source.stem}_out{suffix}", cloud, labels, confidence)
        assert_las_output_keeps_input(source, out, labels, confidence)


@pytest.mark.parametrize("name", ["laspy_simple.las", "laspy_autzen_trim.laz"])
@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_real_las_round_trip_keeps_every_dimension(real_scans, tmp_path, name, suffix):
    cloud = _read(real_scans / name)
    labels, confidence = _random_labels(len(cloud))
    out = write_labelled(tmp_path / f"out{suffix}", cloud, labels, confidence)
    assert_las_output_keeps_input(real_scans / name, out, labels, confidence)
    back = _read(out)  # pcseg reads its own output: labels and confidence come back
    np.testing.assert_array_equal(back.labels, labels)
    np.testing.assert_array_equal(back.properties["confidence"], confidence)


def test_pcseg_las_output_segmented_again(tmp_path, rng):
    source = make_las(tmp_path / "in.las", rng, point_format=3, version="1.2")
    first = write_labelled(tmp_path / "first.las", _read(source), *_random_labels(2000, seed=1))
    labels, confidence = _random_labels(2000, seed=2)
    second = write_labelled(tmp_path / "second.laz", _read(first), labels, confidence)
    b = laspy.read(str(second))
    assert list(b.point_format.extra_dimension_names) == ["reflectance", "label", "confidence",
                                                          "classification_input"]
    np.testing.assert_array_equal(b.classification_input, laspy.read(str(source)).classification)
    np.testing.assert_array_equal(b.label, labels)
    np.testing.assert_array_equal(b.confidence, confidence)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_input_with_its_own_label_dimensions_keeps_them(tmp_path, rng, checkpoint, capsys, suffix):
    header = laspy.LasHeader(version="1.4", point_format=6)
    header.add_extra_dims([laspy.ExtraBytesParams("label", "f8"), laspy.ExtraBytesParams("confidence", "u1")])
    las = laspy.LasData(header)
    las.x, las.y, las.z = rng.uniform(0, 3, (3, 500))
    las.label, las.confidence = rng.uniform(0, 9, 500), rng.integers(0, 255, 500)
    las.write(str(tmp_path / "in.las"))
    before = (tmp_path / "in.las").read_bytes()
    assert main(["segment", str(tmp_path / "in.las"), "-o", str(tmp_path / f"out{suffix}"), "--model", checkpoint]) == 0
    warning = [ln for ln in capsys.readouterr().err.splitlines()  # a random cloud: no indoor scan, said apart
               if ln.startswith("pcseg: warning:") and "does not look like an indoor scan" not in ln]
    assert warning == [f"pcseg: warning: {tmp_path / 'in.las'}: has its own 'label', 'confidence' dimensions, kept as "
                       "it is; pcseg writes label as 'label_pcseg', confidence as 'confidence_pcseg'"]
    out = laspy.read(str(tmp_path / f"out{suffix}"))
    np.testing.assert_array_equal(out.label, las.label)  # the input's own, untouched
    np.testing.assert_array_equal(out.confidence, las.confidence)
    assert out.label_pcseg.dtype == np.uint8 and (out.label_pcseg < 13).all()
    assert ((out.confidence_pcseg >= 0) & (out.confidence_pcseg <= 1)).all()
    np.testing.assert_array_equal(out.classification, asprs_codes(out.label_pcseg))
    assert (tmp_path / "in.las").read_bytes() == before


def test_ply_to_las_keeps_points_colours_properties_and_marks_non_finite(tmp_path, rng):
    n = 1000
    vertex = np.zeros(n, [("x", "f8"), ("y", "f8"), ("z", "f8"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                          ("intensity", "f4"), ("label", "i4"), ("curvature", "f4")])
    xyz = rng.uniform(0, 5, (n, 3)) + [6.5e5, 4.2e6, 120.0]
    xyz[::10] = np.nan
    for i, axis in enumerate("xyz"):
        vertex[axis] = xyz[:, i]
    for name in ("red", "green", "blue"):
        vertex[name] = rng.integers(0, 256, n)
    vertex["intensity"], vertex["label"], vertex["curvature"] = rng.uniform(0, 1, n), 7, rng.uniform(0, 1, n)
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "in.ply"))
    cloud = _read(tmp_path / "in.ply")
    labels, confidence = _random_labels(n)
    b = laspy.read(str(write_labelled(tmp_path / "out.laz", cloud, labels, confidence)))
    valid = cloud.valid
    assert len(b.points) == n and b.header.point_format.id == 7 and str(b.header.version) == "1.4"
    np.testing.assert_array_equal(b.header.scales, [0.001] * 3)
    assert np.abs(b.xyz[valid] - xyz[valid]).max() <= 0.0005 + 1e-9
    np.testing.assert_array_equal(np.asarray(b.withheld, bool), ~valid)
    np.testing.assert_array_equal(b.xyz[~valid], np.broadcast_to(cloud.origin, (int((~valid).sum()), 3)))
    for name in ("red", "green", "blue"):
        np.testing.assert_array_equal(b[name], vertex[name].astype(np.uint16) * 257)
    np.testing.assert_array_equal(b.intensity_input, vertex["intensity"])  # LAS has its own intensity
    np.testing.assert_array_equal(b.label_input, vertex["label"])
    np.testing.assert_array_equal(b.curvature, vertex["curvature"])
    np.testing.assert_array_equal(b.label, np.where(valid, labels, UNLABELLED))
    np.testing.assert_array_equal(b.classification, np.where(valid, asprs_codes(labels), 0))
    np.testing.assert_array_equal(b.confidence, np.where(valid, confidence, 0))


def test_labels_only_files(tmp_path, rng):
    xyz = rng.uniform(0, 3, (500, 3))
    xyz[::5] = np.nan
    cloud = _read(write_ply(tmp_path / "in.ply", xyz))
    labels, confidence = _random_labels(500)
    expected = np.where(cloud.valid, labels, UNLABELLED)
    txt = write_labelled(tmp_path / "out.txt", cloud, labels, confidence)
    lines = txt.read_text().splitlines()
    assert len(lines) == 500 and [int(line) for line in lines] == expected.tolist()
    npy = np.load(write_labelled(tmp_path / "out.npy", cloud, labels, confidence))
    assert npy.dtype == np.uint8 and np.array_equal(npy, expected)


@pytest.mark.parametrize("suffix", [".ply", ".las"])
def test_input_confidence_and_labels_kept_under_new_names(tmp_path, rng, suffix):
    """An input that has pcseg's property names, even renamed ones (a labelled output of a labelled
    output), loses none of them."""
    vertex = np.zeros(100, [("x", "f4"), ("y", "f4"), ("z", "f4"), ("confidence", "f8"), ("confidence_input", "f4"),
                            ("label", "i4")])
    vertex["x"], vertex["confidence"], vertex["confidence_input"], vertex["label"] = rng.uniform(0, 1, 100), 0.25, 0.5, 3
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "in.ply"))
    labels, confidence = _random_labels(100)
    out = write_labelled(tmp_path / f"out{suffix}", _read(tmp_path / "in.ply"), labels, confidence)
    out = plyfile.PlyData.read(str(out))["vertex"] if suffix == ".ply" else laspy.read(str(out))
    assert np.asarray(out["confidence"]).dtype == np.float32 and np.array_equal(out["confidence"], confidence)
    assert np.array_equal(out["label"], labels) and np.array_equal(out["label_input"], vertex["label"])
    assert np.array_equal(out["confidence_input_input"], vertex["confidence"])
    assert np.array_equal(out["confidence_input"], vertex["confidence_input"])


def test_asprs_table_covers_every_class_with_codes_of_every_point_format():
    assert set(S3DIS_TO_ASPRS) == set(S3DIS_CLASSES)
    codes = asprs_codes(np.arange(256))
    assert codes.max() <= 31 and codes[UNLABELLED] == 0
    assert codes[S3DIS_CLASSES.index("floor")] == 2 and codes[S3DIS_CLASSES.index("wall")] == 6
    assert codes[S3DIS_CLASSES.index("chair")] == 1


def test_segment_to_laz_with_probabilities(checkpoint, tmp_path, rng, capsys):
    source = make_las(tmp_path / "scan.las", rng, n=3000, point_format=3, version="1.2")
    out, probs_path = tmp_path / "scan_labelled.laz", tmp_path / "scan_probs.npy"
    assert main(["segment", str(source), "-o", str(out), "--probabilities", str(probs_path),
                 "--model", checkpoint]) == 0
    b = laspy.read(str(out))
    probs = np.load(probs_path)
    assert probs.dtype == np.float16 and probs.shape == (3000, 13)
    confidence = np.asarray(b.confidence)
    assert ((confidence >= 0) & (confidence <= 1)).all() and confidence.min() < confidence.max()
    np.testing.assert_array_equal(probs.max(axis=1), confidence.astype(np.float16))
    np.testing.assert_array_equal(probs[np.arange(3000), b.label], probs.max(axis=1))  # the label is the likeliest
    assert_las_output_keeps_input(source, out, np.asarray(b.label), confidence)
    text = capsys.readouterr().out
    assert "confidence" in text and f"probabilities: {probs_path}" in text


def test_folder_keeps_each_input_format_unless_format_given(checkpoint, tmp_path, rng):
    ply = write_ply(tmp_path / "a.ply", rng.uniform(0, 3, (800, 3)))
    las = make_las(tmp_path / "b.laz", rng, n=800)
    out = tmp_path / "out"
    assert main(["segment", str(ply), str(las), "-o", str(out), "--model", checkpoint,
                 "--probabilities", str(tmp_path / "probs")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_labelled.ply", "b_labelled.laz"]
    assert sorted(p.name for p in (tmp_path / "probs").iterdir()) == ["a_probabilities.npy", "b_probabilities.npy"]
    assert main(["segment", str(ply), str(las), "-o", str(tmp_path / "txt"), "--format", "txt",
                 "--model", checkpoint]) == 0
    assert [len((tmp_path / "txt" / f"{s}_labelled.txt").read_text().splitlines()) for s in "ab"] == [800, 800]
    assert main(["segment", str(ply), "-o", str(tmp_path / "one"), "--model", checkpoint]) == 0  # no suffix: folder
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["a_labelled.ply"]
    assert folder_output_name(tmp_path / "c.pcd") == "c_labelled.ply"  # pcseg writes no PCD
    assert folder_output_name(tmp_path / "c.pcd", "laz") == "c_labelled.laz"


BAD_REQUESTS = {
    "unknown suffix": (["{t}/good.ply", "-o", "{t}/o.xyz"], "unknown output type '.xyz'"),
    "format contradicts the file": (["{t}/good.ply", "-o", "{t}/o.ply", "--format", "las"], "contradicts"),
    "probabilities not npy": (["{t}/good.ply", "-o", "{t}/o.ply", "--probabilities", "{t}/p.txt"], ".npy"),
    "same output twice": (["{t}/good.ply", "-o", "{t}/o.npy", "--probabilities", "{t}/o.npy"], "share a path"),
    "las output over the las input": (["{t}/in.las", "-o", "{t}/in.las", "--overwrite"], "input"),
    "several to a las file": (["{t}/good.ply", "{t}/in.las", "-o", "{t}/o.las"], "folder"),
    "no suffix names a file": (["{t}/good.ply", "-o", "{t}/plainfile"], "suffix"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_one_line_error_nothing_written(checkpoint, tmp_path, rng, capsys, case):
    write_ply(tmp_path / "good.ply", rng.uniform(0, 1, (50, 3)))
    make_las(tmp_path / "in.las", rng, n=50)
    (tmp_path / "plainfile").write_text("keep me")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args, message = BAD_REQUESTS[case]
    assert main(["segment"] + [a.format(t=tmp_path) for a in args] + ["--model", checkpoint]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcseg: error:") and message in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_summary_gives_each_class_its_mean_confidence():
    labels = np.array([1, 1, 2, UNLABELLED])
    table = class_summary(labels, S3DIS_CLASSES, np.array([0.5, 0.7, 0.9, 0.0], np.float32))
    rows = {line.split()[0]: line.split() for line in table.splitlines()}
    assert rows["floor"][-1] == "0.60" and rows["wall"][-1] == "0.90" and rows["total"][-1] == "0.70"
    assert rows["unlabelled"][-1] == "25.0%"


def test_view_colours_by_confidence_with_a_colour_bar(tmp_path, rng, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    xyz = np.column_stack([rng.uniform(0, 3, (4000, 2)), np.zeros(4000)])
    cloud = _read(write_ply(tmp_path / "in.ply", xyz))
    labels = np.full(4000, 1)
    confidence = np.where(xyz[:, 0] < 1.5, 0.1, 0.95).astype(np.float32)  # unsure on the left half
    labelled = write_labelled(tmp_path / "labelled.laz", cloud, labels, confidence)
    png = tmp_path / "view.png"
    assert main(["view", str(labelled), "--color-by", "confidence", "--render", str(png)]) == 0
    floor = [line for line in capsys.readouterr().out.splitlines() if " floor " in line]
    assert len(floor) == 1 and floor[0].endswith(f"confidence {confidence.mean():.2f}")
    image = (mpimg.imread(png)[..., :3] * 255).round().astype(int)
    assert image.shape[1] == 2 * PANEL_SIZE[0] + COLORBAR_WIDTH + LEGEND_WIDTH
    panel = image[TITLE_HEIGHT:, PANEL_SIZE[0]:2 * PANEL_SIZE[0]].reshape(-1, 3)
    for value in (0.1, 0.95):
        colour = confidence_colors(np.array([value]))[0].astype(int)
        assert (np.abs(panel - colour).max(axis=1) <= 2).sum() > 1000, value
    bar = image[TITLE_HEIGHT:, 2 * PANEL_SIZE[0]:2 * PANEL_SIZE[0] + COLORBAR_WIDTH].reshape(-1, 3)
    ends = confidence_colors(np.array([0.0, 1.0])).astype(int)
    assert all((np.abs(bar - c).max(axis=1) <= 3).any() for c in ends)
    import open3d as o3d
    shown = {}
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(o3d.visualization, "draw_geometries",
                        lambda geometries, **kw: shown.update(geometries=geometries, **kw))
    assert main(["view", str(labelled), "--color-by", "confidence"]) == 0  # the window: labels | confidence
    colours = (np.asarray(shown["geometries"][1].colors) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(colours, confidence_colors(confidence))
    monkeypatch.delenv("DISPLAY")
    write_ply(tmp_path / "plain.ply", xyz, labels=labels)
    assert main(["view", str(tmp_path / "plain.ply"), "--color-by", "confidence", "--render",
                 str(tmp_path / "x.png")]) == 2
    assert "no confidence property" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
