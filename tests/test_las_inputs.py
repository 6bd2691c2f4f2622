"""LAS/LAZ inputs from the wild: every file segments whole (every point labelled, every input dimension
kept, one-line warnings for what changes) or fails in one line with nothing written, the input unchanged."""

import io
import resource
import struct
from pathlib import Path

import laspy
import lazrs
import numpy as np
import plyfile
import pytest
from laspy.vlrs.vlrlist import VLRList

from pcseg import tile_plan, tiled
from pcseg.classes import UNLABELLED
from pcseg.cli import main
from pcseg.io.asprs import asprs_codes
from pcseg.io.chunked import open_chunked
from test_segment import make_checkpoint

#: Byte offsets of LAS header fields (ASPRS LAS 1.4 R15, table 3).
MINOR_VERSION, CREATION_DATE, VLR_COUNT, LEGACY_COUNT, X_SCALE, WIDE_COUNT = 25, 90, 100, 107, 131, 247


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def make_las(path: Path, n=1500, version="1.2", point_format=3, extra=(), seed=0, side=4.0,
             evlr=False) -> laspy.LasData:
    """A LAS/LAZ cloud (by ``path``'s suffix) of ``side`` metres square with random values, extra
    dimensions ``extra`` and, with ``evlr``, an extended VLR after the points."""
    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(version=version, point_format=point_format)
    header.scales, header.offsets = [0.001] * 3, [1000.0, 2000.0, 0.0]
    if extra:
        header.add_extra_dims(list(extra))
    las = laspy.LasData(header)
    las.x, las.y, las.z = rng.uniform(1000, 1000 + side, n), rng.uniform(2000, 2000 + side, n), rng.uniform(0, 3, n)
    las.intensity = rng.integers(0, 65535, n)
    for param in extra:
        values = las[param.name]
        kind = np.dtype(values.dtype)
        shape = np.shape(values)
        las[param.name] = (rng.integers(np.iinfo(kind).min, np.iinfo(kind).max, shape, dtype=kind, endpoint=True)
                           if kind.kind in "ui" else rng.normal(0, 100, shape))
    if evlr:
        las.evlrs = VLRList([laspy.VLR("pcseg_test", 7, "an evlr", b"after the points")])
    las.write(str(path))
    return laspy.read(str(path))


def patch(path: Path, offset: int, fmt: str, value) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


def make_copc(path: Path, n=3000, chunks=(1000, 1500, 500)) -> laspy.LasData:
    """A COPC-style LAZ 1.4: a ``copc`` info VLR first, variable-size LAZ chunks, a ``copc`` hierarchy EVLR."""
    rng = np.random.default_rng(3)
    header = laspy.LasHeader(version="1.4", point_format=7)
    header.scales, header.offsets = [0.001] * 3, [500.0, 600.0, 0.0]
    vlr = lazrs.LazVlr.new_for_compression(7, 0, True)
    header.vlrs.append(laspy.VLR("copc", 1, "copc info", bytes(160)))
    header.vlrs.append(laspy.VLR("laszip encoded", 22204, "lazrs", vlr.record_data()))
    las = laspy.LasData(header)
    las.x, las.y, las.z = rng.uniform(500, 504, n), rng.uniform(600, 604, n), rng.uniform(0, 3, n)
    las.red, las.green, las.blue = (rng.integers(0, 65535, n) for _ in range(3))
    plain = io.BytesIO()
    las.write(plain)
    head = bytearray(plain.getvalue()[:struct.unpack_from("<I", plain.getvalue(), 96)[0]])
    head[104] |= 0x80  # the points are compressed
    stream = io.BytesIO()
    stream.write(bytes(head))
    compressor = lazrs.LasZipCompressor(stream, vlr)
    raw, size, start = las.points.array.tobytes(), las.points.array.dtype.itemsize, 0
    for count in chunks:
        compressor.compress_many(raw[start * size:(start + count) * size])
        compressor.finish_current_chunk()
        start += count
    compressor.done()
    data = bytearray(stream.getvalue())
    evlr_start = len(data)
    data += struct.pack("<H16sHQ32s", 0, b"copc", 1000, 32, b"copc hierarchy") + bytes(32)
    struct.pack_into("<QI", data, 235, evlr_start, 1)
    path.write_bytes(bytes(data))
    return las


def segment(args, checkpoint, capsys):
    """(exit status, stderr lines) of ``pcseg segment ARGS``, the cloud taken as metres with z up
    (these files are about their format: their placement is tested in test_placement.py)."""
    status = main(["segment", *map(str, args), "--model", checkpoint, "--up", "z", "--units", "m"])
    return status, capsys.readouterr().err.splitlines()


#: The one warning about the points rather than the file: these random clouds are no indoor scan.
NOT_INDOOR = "does not look like an indoor scan"


def messages(lines, kind):
    """The ``pcseg: KIND:`` lines of ``lines``, the out-of-domain warning left out."""
    return [ln for ln in lines if ln.startswith(f"pcseg: {kind}:") and NOT_INDOOR not in ln]


def ply_rows(path):
    data = plyfile.PlyData.read(str(path))
    return data["vertex"].data


def assert_labelled_las(out: Path, source: laspy.LasData, count: int, label="label"):
    """``out`` holds the first ``count`` records of ``source``, bit for bit, with pcseg's dimensions."""
    got = laspy.read(str(out))
    assert len(got) == got.header.point_count == count
    for name in source.points.array.dtype.names:
        if name not in ("classification", "raw_classification"):
            np.testing.assert_array_equal(got.points.array[name], source.points.array[name][:count], err_msg=name)
    assert (got[label] < 13).all()
    np.testing.assert_array_equal(got.classification, asprs_codes(got[label]))


@pytest.mark.parametrize("output", ["out.ply", "out.las", "out.laz", "tiled.ply"])
@pytest.mark.parametrize("case", ["header count", "64-bit count", "cut at 60 %", "LAS 1.4 cut with its EVLR"])
def test_a_file_holding_fewer_points_than_its_header_is_read_to_its_last_point(tmp_path, checkpoint, capsys,
                                                                               case, output):
    version = "1.4" if case in ("64-bit count", "LAS 1.4 cut with its EVLR") else "1.2"
    source = make_las(tmp_path / "in.las", 3000, version=version, point_format=7 if version == "1.4" else 3,
                      evlr="EVLR" in case)
    held = 3000
    if case == "header count":
        patch(tmp_path / "in.las", LEGACY_COUNT, "<I", 6000)
    elif case == "64-bit count":
        patch(tmp_path / "in.las", WIDE_COUNT, "<Q", 6000)
    else:
        data = (tmp_path / "in.las").read_bytes()
        offset = struct.unpack_from("<I", data, 96)[0]
        cut = int(len(data) * 0.6)
        (tmp_path / "in.las").write_bytes(data[:cut])
        held = (cut - offset) // source.header.point_format.size
    before = (tmp_path / "in.las").read_bytes()
    declared = 3000 if "cut" in case else 6000
    extra = ["--max-memory", str(tiled.BASE_BYTES + 800 * tiled.TILE_BYTES_PER_POINT)] if output == "tiled.ply" else []
    status, err = segment([tmp_path / "in.las", "-o", tmp_path / output, *extra], checkpoint, capsys)
    assert status == 0
    lost_evlr = [f"pcseg: warning: {tmp_path / 'in.las'}: its extended variable-length records lie beyond the end "
                 "of the file; they are not copied"] if "EVLR" in case and output.startswith("out.la") else []
    assert messages(err, "warning") == [f"pcseg: warning: {tmp_path / 'in.las'}: the header declares {declared:,} "
                                        f"points but only the first {held:,} could be read (the file ends there); "
                                        f"those {held:,} are segmented and written"] + lost_evlr
    if output.endswith(".ply"):
        rows = ply_rows(tmp_path / output)  # plyfile reads exactly the rows the header counts
        assert len(rows) == held and (tmp_path / output).stat().st_size == len(
            (tmp_path / output).read_bytes().split(b"end_header\n", 1)[0]) + len(b"end_header\n") + held * rows.dtype.itemsize
        np.testing.assert_array_equal(rows["intensity"], source.intensity[:held])
        assert (rows["label"] < 13).all()
    else:
        assert_labelled_las(tmp_path / output, source, held)
    assert (tmp_path / "in.las").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.las", output])


@pytest.mark.parametrize("output", ["out.ply", "out.las", "tiled.ply"])
def test_a_cut_laz_file_fails_in_one_line(tmp_path, checkpoint, capsys, output):
    make_las(tmp_path / "in.laz", 3000)
    data = (tmp_path / "in.laz").read_bytes()
    (tmp_path / "in.laz").write_bytes(data[:int(len(data) * 0.6)])
    before = (tmp_path / "in.laz").read_bytes()
    extra = ["--max-memory", str(tiled.BASE_BYTES + 800 * tiled.TILE_BYTES_PER_POINT)] if output == "tiled.ply" else []
    status, err = segment([tmp_path / "in.laz", "-o", tmp_path / output, *extra], checkpoint, capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"pcseg: error: {tmp_path / 'in.laz'}: its LAZ chunk table is missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.laz"]
    assert (tmp_path / "in.laz").read_bytes() == before


@pytest.mark.parametrize("damage,message", [
    ((VLR_COUNT, "<I", 2**31), "2147483648 variable-length records cannot fit"),
    ((MINOR_VERSION, "<B", 9), "version 1.9; pcseg reads LAS 1.0-1.4"),
    ((104, "<B", 11), "point format 11; LAS defines 0-10"),
    ((105, "<H", 20), "point records of 20 bytes, shorter than point format 3's 34"),
    ((X_SCALE, "<d", float("nan")), "scales or offsets are zero or not finite"),
    ((96, "<I", 10**9), "offset to points 1000000000 do not fit"),
])
@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_an_inconsistent_header_fails_in_one_line_before_the_model(tmp_path, capsys, damage, message, suffix):
    make_las(tmp_path / f"in{suffix}", 500)
    patch(tmp_path / f"in{suffix}", *damage)
    before = (tmp_path / f"in{suffix}").read_bytes()
    # a model that does not exist: the header is refused before the model is looked for
    status, err = segment([tmp_path / f"in{suffix}", "-o", tmp_path / "out.ply"], str(tmp_path / "none.pt"), capsys)
    assert status == 2 and len(err) == 1 and err[0].startswith(f"pcseg: error: {tmp_path / f'in{suffix}'}: ")
    assert message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"in{suffix}"]
    assert (tmp_path / f"in{suffix}").read_bytes() == before


def test_a_laz_chunk_table_claiming_billions_of_chunks_fails_in_one_line(tmp_path, capsys):
    make_las(tmp_path / "in.laz", 500)
    data = (tmp_path / "in.laz").read_bytes()
    offset = struct.unpack_from("<I", data, 96)[0]
    table = struct.unpack_from("<q", data, offset)[0]
    patch(tmp_path / "in.laz", table + 4, "<I", 0xFFFFFFFF)  # laz-rs would allocate 68 GB for it
    status, err = segment([tmp_path / "in.laz", "-o", tmp_path / "out.ply"], str(tmp_path / "none.pt"), capsys)
    assert status == 2 and err == [f"pcseg: error: {tmp_path / 'in.laz'}: not a valid LAS/LAZ file (its chunk table "
                                   f"lists 4294967295 chunks in {table - offset - 8} bytes of compressed points)"]


@pytest.mark.parametrize("output", ["out.las", "out.laz", "out.ply"])
def test_las_1_0_with_a_zero_date_keeps_its_header_fields(tmp_path, checkpoint, capsys, output):
    source = make_las(tmp_path / "in.las", 800, point_format=1)
    patch(tmp_path / "in.las", MINOR_VERSION, "<B", 0)
    patch(tmp_path / "in.las", CREATION_DATE, "<I", 0)
    before = (tmp_path / "in.las").read_bytes()
    status, err = segment([tmp_path / "in.las", "-o", tmp_path / output], checkpoint, capsys)
    assert status == 0 and not messages(err, "warning")
    if output == "out.ply":
        assert len(ply_rows(tmp_path / output)) == 800
    else:
        head = (tmp_path / output).read_bytes()[:94]
        assert head[MINOR_VERSION] == 0 and head[CREATION_DATE:CREATION_DATE + 4] == bytes(4)
        assert_labelled_las(tmp_path / output, source, 800)
    assert (tmp_path / "in.las").read_bytes() == before


EVERY_EXTRA_TYPE = [laspy.ExtraBytesParams(f"{kind}_dim", kind) for kind in
                    ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "3u2", "3f8")] + [
    laspy.ExtraBytesParams("a b/c-é", "f4")]


def test_extra_dimensions_of_every_type_and_name(tmp_path, checkpoint, capsys):
    source = make_las(tmp_path / "in.las", 1000, version="1.4", point_format=6, extra=EVERY_EXTRA_TYPE)
    before = (tmp_path / "in.las").read_bytes()
    status, err = segment([tmp_path / "in.las", "-o", tmp_path / "out.ply"], checkpoint, capsys)
    assert status == 0
    assert messages(err, "warning") == [
        f"pcseg: warning: {tmp_path / 'out.ply'}: PLY cannot hold every input property as it is: 'u8_dim' (uint64) "
        "written as double; 'i8_dim' (int64) written as double; 'a b/c-é' renamed 'a_b_c__'"]
    rows = ply_rows(tmp_path / "out.ply")
    assert len(rows) == 1000 and (rows["label"] < 13).all()
    for param in EVERY_EXTRA_TYPE[:10]:
        np.testing.assert_array_equal(rows[param.name], np.asarray(source[param.name]).astype(rows[param.name].dtype))
    for name in ("3u2_dim", "3f8_dim"):  # array dimensions: one property per value
        for i in range(3):
            np.testing.assert_array_equal(rows[f"{name}_{i}"], np.asarray(source[name])[:, i])
    np.testing.assert_array_equal(rows["a_b_c__"], source["a b/c-é"])
    status, err = segment([tmp_path / "in.las", "-o", tmp_path / "out.laz"], checkpoint, capsys)
    assert status == 0 and not messages(err, "warning")
    assert_labelled_las(tmp_path / "out.laz", source, 1000)  # every extra dimension bit for bit
    assert (tmp_path / "in.las").read_bytes() == before


def test_an_absurd_scale_gives_unlabelled_points_as_non_finite_ones_do(tmp_path, checkpoint, capsys):
    source = make_las(tmp_path / "in.las", 1000)
    raw = source.points.array.copy()
    raw["X"][::2] = 0  # these stay at the offset; the others land beyond 1e300 m
    source.points = laspy.ScaleAwarePointRecord(raw, source.point_format, source.header.scales, source.header.offsets)
    source.write(str(tmp_path / "in.las"))
    patch(tmp_path / "in.las", X_SCALE, "<d", 1e300)
    for output in ("out.ply", "out.las"):
        status, err = segment([tmp_path / "in.las", "-o", tmp_path / output], checkpoint, capsys)
        assert status == 0
        assert messages(err, "warning") == [f"pcseg: warning: {tmp_path / 'in.las'}: 500 of 1000 points have non-finite "
                                            "coordinates (or beyond 1e+09 m); they are kept and labelled unlabelled (255)"]
    labels = ply_rows(tmp_path / "out.ply")["label"]
    assert (labels[1::2] == UNLABELLED).all() and (labels[::2] < 13).all()
    np.testing.assert_array_equal(laspy.read(str(tmp_path / "out.las")).label, labels)
    raw["X"][::2] = 1  # now every point is beyond
    source.points = laspy.ScaleAwarePointRecord(raw, source.point_format, source.header.scales, source.header.offsets)
    source.write(str(tmp_path / "all.las"))
    patch(tmp_path / "all.las", X_SCALE, "<d", 1e300)
    status, err = segment([tmp_path / "all.las", "-o", tmp_path / "all.ply"], checkpoint, capsys)
    assert status == 2 and err == [f"pcseg: error: {tmp_path / 'all.las'}: all 1000 points have non-finite "
                                   "coordinates (or beyond 1e+09 m)"]
    assert not (tmp_path / "all.ply").exists()


@pytest.mark.parametrize("output", ["out.las", "out.laz", "out.ply", "tiled.ply"])
def test_copc_is_read_as_laz_and_written_plain(tmp_path, checkpoint, capsys, output):
    source = make_copc(tmp_path / "in.copc.laz")
    before = (tmp_path / "in.copc.laz").read_bytes()
    extra = ["--max-memory", str(tiled.BASE_BYTES + 800 * tiled.TILE_BYTES_PER_POINT)] if output == "tiled.ply" else []
    status, err = segment([tmp_path / "in.copc.laz", "-o", tmp_path / output, *extra], checkpoint, capsys)
    assert status == 0
    if output.endswith(".ply"):
        assert not messages(err, "warning")
        rows = ply_rows(tmp_path / output)
        assert len(rows) == 3000 and (rows["label"] < 13).all()
        np.testing.assert_allclose(rows["x"], source.x)
    else:
        plain = "LAZ" if output.endswith(".laz") else "LAS"
        assert messages(err, "warning") == [f"pcseg: warning: {tmp_path / 'in.copc.laz'}: a COPC file; written as a "
                                            f"plain {plain} file (its spatial index is not kept)"]
        assert_labelled_las(tmp_path / output, source, 3000)
        got = laspy.read(str(tmp_path / output))
        assert not [r for r in list(got.header.vlrs) + list(got.evlrs or []) if r.user_id == "copc"]
    assert (tmp_path / "in.copc.laz").read_bytes() == before


def test_splitting_into_more_tiles_than_open_files_allowed(tmp_path):
    make_las(tmp_path / "in.laz", 6000, side=12.0)
    reader = open_chunked(tmp_path / "in.laz")
    bounds = tile_plan.scan_bounds(reader)
    grids = [tile_plan.plan_tiles(bounds, 0.2, 20), tile_plan.plan_voting_tiles(bounds, 20)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    headroom = 16
    assert len(grids[0]) > 2 * headroom  # a small budget's many tiles
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(list(Path("/proc/self/fd").iterdir())) + headroom, hard))
    try:
        tile_plan.split_into_tiles(reader, bounds, grids, tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for g, grid in enumerate(grids):  # every point owned by exactly one tile of each grid
        owned = np.concatenate([np.fromfile(tile_plan.tile_path(tmp_path, g, t), tile_plan.TILE_RECORD)
                                for t in range(len(grid))])
        owned = owned[owned["owned"]]
        np.testing.assert_array_equal(np.sort(owned["index"]), np.arange(6000))


def test_las_1_4_with_only_its_32_bit_count_is_read_whole(tmp_path, checkpoint, capsys):
    source = make_las(tmp_path / "in.las", 900, version="1.4", point_format=1)
    patch(tmp_path / "in.las", LEGACY_COUNT, "<I", 900)
    patch(tmp_path / "in.las", WIDE_COUNT, "<Q", 0)
    status, err = segment([tmp_path / "in.las", "-o", tmp_path / "out.las"], checkpoint, capsys)
    assert status == 0 and not messages(err, "warning")
    assert_labelled_las(tmp_path / "out.las", source, 900)
