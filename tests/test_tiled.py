"""pcseg segment --max-memory: clouds over the budget are read, segmented, flat-patch voted and
written in tiles, and the output is the untiled run's, labels on tile borders included."""

import numpy as np
import plyfile
import pytest

from conftest import untrained_checkpoint
from pcseg.classes import UNLABELLED
from pcseg.cli import main
from pcseg.data.synthetic import generate_room
from pcseg.errors import PcsegError
from pcseg.io import write_ply
from pcseg.io.chunked import open_chunked
from pcseg import refine, tile_plan, tiled

#: A budget that leaves room for about this many points per haloed tile.
SMALL_TILE_POINTS = 4000


def budget_for(points):
    return tiled.BASE_BYTES + points * tiled.TILE_BYTES_PER_POINT


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt"))


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A generated office of about 9,000 points with a few NaN rows, as a binary PLY."""
    cloud = generate_room(3, kind="office", density=60)
    xyz = cloud.xyz.astype(np.float64)
    xyz[::997] = np.nan
    path = tmp_path_factory.mktemp("room") / "office.ply"
    write_ply(path, xyz, cloud.rgb)
    return path


def _rows(path):
    return plyfile.PlyData.read(str(path))["vertex"].data


def _assert_same_rows(a, b):
    """Every field equal (NaN rows too); confidences to float rounding (votes summed in another order)."""
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        if name == "confidence":
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-5)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_parse_size():
    assert tiled.parse_size("6G") == 6 * 2**30
    assert tiled.parse_size("512M") == 512 * 2**20
    assert tiled.parse_size("2.5GB") == int(2.5 * 2**30)
    assert tiled.parse_size("1GiB") == 2**30
    assert tiled.parse_size("123456") == 123456
    for bad in ("", "-1G", "lots", "0"):
        with pytest.raises(PcsegError, match="--max-memory"):
            tiled.parse_size(bad)


def test_tiles_give_the_untiled_output(room, tmp_path, capsys):
    """The bundled PointNet (labels that vary, unlike an untrained model's) on about 7 tiles, with
    --no-refine: the model tiles alone give the labels."""
    reader = open_chunked(room)
    grid = tile_plan.plan_tiles(tile_plan.scan_bounds(reader), tile_plan.halo_width(1.0, 0.5, 0.02), SMALL_TILE_POINTS)
    assert len(grid) >= 6                                    # really tiled, with borders between tiles
    whole, parts = tmp_path / "whole.ply", tmp_path / "tiled.ply"
    common = ["--model", "pointnet_synthetic", "--device", "cpu", "--no-refine"]
    assert main(["segment", str(room), "-o", str(whole), *common]) == 0
    capsys.readouterr()
    assert main(["segment", str(room), "-o", str(parts), *common, "--max-memory", str(budget_for(SMALL_TILE_POINTS))]) == 0
    out = capsys.readouterr().out
    assert ", in tiles)" in out and "flat patches voted" not in out
    expected, got = _rows(whole), _rows(parts)
    _assert_same_rows(expected, got)
    assert (got["label"][::997] == UNLABELLED).all() and len(np.unique(got["label"])) > 4
    assert not list(tmp_path.glob(".pcseg_tiles_*"))        # scratch files removed


def test_tiled_runs_vote_flat_patches_as_whole_runs(tmp_path, capsys, monkeypatch):
    """A room dense enough for flat patches (about 30,000 points) in one model tile (the model tiles
    are checked above) and, with the voting's memory per point made four times larger, several
    voting tiles (3 m cells): together they give the whole-cloud run's voted labels, and that
    voting changes labels."""
    cloud = generate_room(3, kind="office", density=250)
    room = tmp_path / "office.ply"
    write_ply(room, cloud.xyz, cloud.rgb)
    budget = budget_for(len(cloud.xyz))
    monkeypatch.setattr(tiled, "VOTE_BYTES_PER_POINT", 4 * tiled.TILE_BYTES_PER_POINT)
    bounds = tile_plan.scan_bounds(open_chunked(room))
    assert len(tile_plan.plan_tiles(bounds, tile_plan.halo_width(1.0, 0.5, 0.02), len(cloud.xyz))) == 1
    assert len(tile_plan.plan_voting_tiles(bounds, len(cloud.xyz) // 4)) >= 4
    whole, parts, own = tmp_path / "whole.ply", tmp_path / "tiled.ply", tmp_path / "own.ply"
    common = ["--model", "pointnet_synthetic", "--device", "cpu"]
    assert main(["segment", str(room), "-o", str(whole), *common]) == 0
    capsys.readouterr()
    assert main(["segment", str(room), "-o", str(parts), *common, "--max-memory", str(budget)]) == 0
    assert "flat patches voted, in tiles)" in capsys.readouterr().out
    assert main(["segment", str(room), "-o", str(own), *common, "--no-refine"]) == 0
    _assert_same_rows(_rows(whole), _rows(parts))
    assert (_rows(whole)["label"] != _rows(own)["label"]).mean() > 0.01
    assert not list(tmp_path.glob(".pcseg_tiles_*"))


def test_voting_tiles_are_whole_cells_of_the_voting():
    """A voting tile owns exactly the points whose voting cell (pcseg.refine.cell_of) it holds, points
    on and about the cells' edges included, and reads every point within the cells' halo."""
    rng = np.random.default_rng(0)
    origin = np.array([0.123, -4.56])
    edges = origin[0] + refine.CELL * np.arange(4)
    xy = np.concatenate([rng.uniform(origin, origin + 10, (5000, 2)),
                         np.stack([np.repeat(edges, 3) + np.tile([-1e-7, 0, 1e-7], 4), np.full(12, 1.0)], axis=1)])
    grid = tile_plan.TileGrid(origin, 2 * refine.CELL, (2, 2), refine.CELL_HALO, voting_cells=2)
    cells = np.clip(refine.cell_of(xy, origin) // 2, 0, 1)
    np.testing.assert_array_equal(grid.owner(xy), cells[:, 0] * 2 + cells[:, 1])
    read = dict(grid.reading(xy))
    for tile, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        low = origin + np.array([i, j]) * grid.side - refine.CELL_HALO
        near = ((xy >= low) & (xy < low + grid.side + 2 * refine.CELL_HALO)).all(axis=1)
        assert (read[tile] >= near).all() and (read[tile] >= (grid.owner(xy) == tile)).all()


def test_las_input_in_tiles(checkpoint, real_scans, tmp_path):
    scan = real_scans / "laspy_simple.las"
    whole, parts = tmp_path / "whole.ply", tmp_path / "tiled.ply"
    assert main(["segment", str(scan), "-o", str(whole), "--model", checkpoint, "--device", "cpu"]) == 0
    assert main(["segment", str(scan), "-o", str(parts), "--model", checkpoint, "--device", "cpu",
                 "--max-memory", str(budget_for(200))]) == 0
    _assert_same_rows(_rows(whole), _rows(parts))


@pytest.mark.parametrize("case", ["render", "ascii", "mesh", "pcd"])
def test_what_cannot_be_tiled_fails_before_any_work(checkpoint, room, tmp_path, capsys, case):
    source, extra = room, []
    if case == "render":
        extra = ["--render", str(tmp_path / "p.png")]
    elif case == "ascii":
        source = tmp_path / "ascii.ply"
        plyfile.PlyData([plyfile.PlyElement.describe(_rows(room), "vertex")], text=True).write(str(source))
    elif case == "mesh":
        source = tmp_path / "mesh.ply"
        faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
        plyfile.PlyData([plyfile.PlyElement.describe(_rows(room), "vertex"),
                         plyfile.PlyElement.describe(faces, "face")]).write(str(source))
    else:
        source = tmp_path / "cloud.pcd"
        source.write_text("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\n"
                          "POINTS 3\nDATA ascii\n0 0 0\n1 0 0\n0 1 0\n")
    out = tmp_path / "out.ply"
    status = main(["segment", str(source), "-o", str(out), "--model", checkpoint, "--device", "cpu",
                   "--max-memory", str(budget_for(100)), *extra])
    message = capsys.readouterr().err
    if case == "pcd":  # a format without a header count is read whole
        assert status == 0 and out.exists()
        return
    assert status == 2 and message.startswith("pcseg: error: ") and "max-memory" in message
    assert not out.exists()
