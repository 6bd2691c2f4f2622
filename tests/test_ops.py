"""pcseg.ops against naive references on random and adversarial clouds."""

import numpy as np
import pytest
import torch

from pcseg import ops

DTYPES = [torch.float32, torch.float64]


# --------------------------------------------------------------------------- naive references

def sq_dist(points: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The documented formula ((dx*dx + dy*dy) + dz*dz), in the points' dtype."""
    dx, dy, dz = points[:, 0] - q[0], points[:, 1] - q[1], points[:, 2] - q[2]
    return (dx * dx + dy * dy) + dz * dz


def naive_fps(points: np.ndarray, m: int, start: int = 0) -> np.ndarray:
    mind = np.full(len(points), np.inf, dtype=points.dtype)
    out = [start]
    for _ in range(m - 1):
        mind = np.minimum(mind, sq_dist(points, points[out[-1]]))
        out.append(int(np.argmax(mind)))  # argmax: first (lowest) index on ties
    return np.array(out)


def naive_knn(query: np.ndarray, ref: np.ndarray, k: int):
    dist = np.full((len(query), k), np.inf, dtype=ref.dtype)
    idx = np.full((len(query), k), -1, dtype=np.int64)
    for i, q in enumerate(query):
        d = sq_dist(ref, q)
        order = np.lexsort((np.arange(len(ref)), d))[:k]  # by distance, then index
        dist[i, :len(order)], idx[i, :len(order)] = d[order], order
    return dist, idx


def naive_ring(query: np.ndarray, ref: np.ndarray, k: int, r_in: float, r_out: float):
    t = ref.dtype.type
    ri2, ro2 = t(r_in) * t(r_in), t(r_out) * t(r_out)
    idx = np.empty((len(query), k), dtype=np.int64)
    count = np.empty(len(query), dtype=np.int64)
    for i, q in enumerate(query):
        d = sq_dist(ref, q)
        order = np.lexsort((np.arange(len(ref)), d))
        members = [j for j in order if ri2 <= d[j] < ro2][:k]
        count[i] = len(members)
        fill = members[0] if members else order[0]
        idx[i] = members + [fill] * (k - len(members))
    return idx, count


# --------------------------------------------------------------------------- clouds

def room_like(rng, n: int, dtype=np.float32) -> np.ndarray:
    """Floor, two walls and a box: planes with exact ties plus a random blob."""
    n4 = n // 4
    floor = np.c_[rng.random((n4, 2)) * 4, np.zeros(n4)]
    wall = np.c_[np.zeros(n4), rng.random((n4, 2)) * 3]
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), [1.0]), -1).reshape(-1, 3) * 0.1
    grid = np.tile(grid, (n4 // 100 + 1, 1))[:n4]  # many exact duplicates
    blob = rng.normal(size=(n - 3 * n4, 3)) * 0.3 + 2
    return np.concatenate([floor, wall, grid, blob]).astype(dtype)


ADVERSARIAL = {
    "duplicates": lambda rng: np.repeat(rng.random((40, 3)), 5, axis=0),
    "all_same": lambda rng: np.ones((64, 3)),
    "collinear": lambda rng: np.c_[np.arange(150) % 37, np.zeros(150), np.zeros(150)] * 0.25,
    "coplanar_grid": lambda rng: np.stack(np.meshgrid(np.arange(12), np.arange(12), [0.0]), -1).reshape(-1, 3),
    "large_coords": lambda rng: 1e5 + rng.random((300, 3)) * 10,
    "room": lambda rng: room_like(rng, 800),
    # all but one point inside one of the tree's Morton cells (side / 1024): split by midpoints
    "cluster_and_outlier": lambda rng: np.r_[rng.random((400, 3)) * 1e-3, [[1e3, 0, 0]]],
}


def as_batch(points, dtype):
    return torch.as_tensor(np.asarray(points)).to(dtype)[None]


# --------------------------------------------------------------------------- fps

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_fps_matches_naive(case, dtype, rng):
    x = as_batch(ADVERSARIAL[case](rng), dtype)
    m = min(50, x.shape[1])
    got = ops.fps(x, m, start_idx=3)
    assert got.dtype == torch.int64 and got.shape == (1, m)
    np.testing.assert_array_equal(got[0].numpy(), naive_fps(x[0].numpy(), m, 3))


def test_fps_large_cloud_all_threads(rng):
    """Enough leaves for the within-cloud parallel path."""
    x = as_batch(room_like(rng, 300_000), torch.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = ops.fps(x, 40)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(got[0].numpy(), naive_fps(x[0].numpy(), 40))


def test_fps_padded_batch(rng):
    x = torch.rand(3, 500, 3, generator=torch.Generator().manual_seed(1))
    x[1, 300:] = float("nan")  # padding is never read
    lengths = torch.tensor([500, 300, 64])
    got = ops.fps(x, 64, lengths)
    for b in range(3):
        n = int(lengths[b])
        np.testing.assert_array_equal(got[b].numpy(), naive_fps(x[b, :n].numpy(), 64))


def test_fps_takes_every_point_when_m_equals_n(rng):
    x = as_batch(rng.random((100, 3)), torch.float64)
    assert sorted(ops.fps(x, 100)[0].tolist()) == list(range(100))


# --------------------------------------------------------------------------- knn

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_knn_matches_naive(case, dtype, rng):
    ref = ADVERSARIAL[case](rng)
    query = np.concatenate([ref[::7], ref[:5] + 0.05])
    d, i = ops.knn(as_batch(query, dtype), as_batch(ref, dtype), 9)
    wd, wi = naive_knn(as_batch(query, dtype)[0].numpy(), as_batch(ref, dtype)[0].numpy(), 9)
    np.testing.assert_array_equal(i[0].numpy(), wi)
    np.testing.assert_array_equal(d[0].numpy(), wd)  # bitwise, not approximately
    assert d.dtype == dtype


def test_knn_agrees_with_ckdtree(rng):
    from scipy.spatial import cKDTree

    ref = rng.random((5000, 3))
    query = rng.random((300, 3))
    d, i = ops.knn(as_batch(query, torch.float64), as_batch(ref, torch.float64), 16)
    wd, wi = cKDTree(ref).query(query, 16)
    np.testing.assert_array_equal(i[0].numpy(), wi)
    np.testing.assert_allclose(d[0].numpy(), wd**2, rtol=1e-12)


def test_knn_of_a_cloud_with_itself(rng):
    """knn(x, x) runs leaf by leaf in tree order; results must still land in their own rows."""
    from scipy.spatial import cKDTree

    pts = room_like(rng, 4000, np.float64)
    pts += rng.random(pts.shape) * 1e-6  # no exact ties, so cKDTree's order is unambiguous
    x = as_batch(pts, torch.float64)
    d, i = ops.knn(x, x, 8)
    wd, wi = cKDTree(pts).query(pts, 8)
    np.testing.assert_array_equal(i[0].numpy(), wi)
    np.testing.assert_allclose(d[0].numpy(), wd**2, rtol=1e-9, atol=1e-18)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_knn_of_the_same_tensor_matches_naive(case, dtype, rng):
    """knn(x, x) searches a leaf's queries together; every row must equal the naive one, ties included."""
    x = as_batch(ADVERSARIAL[case](rng), dtype)
    d, i = ops.knn(x, x, 9)
    wd, wi = naive_knn(x[0].numpy(), x[0].numpy(), 9)
    np.testing.assert_array_equal(i[0].numpy(), wi)
    np.testing.assert_array_equal(d[0].numpy(), wd)


def test_knn_of_the_same_padded_batch():
    """Clouds queried whole take the leaf-by-leaf search; a prefix of queries, k > N and padding do not break it."""
    x = torch.rand(3, 300, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x[:, :100] = x[:, 100:200]  # exact duplicates
    lengths, qlen = torch.tensor([300, 150, 7]), torch.tensor([300, 60, 7])
    d, i = ops.knn(x, x, 12, qlen, lengths)
    for b in range(3):
        q, n = int(qlen[b]), int(lengths[b])
        wd, wi = naive_knn(x[b, :q].numpy(), x[b, :n].numpy(), 12)
        np.testing.assert_array_equal(i[b, :q].numpy(), wi)
        np.testing.assert_array_equal(d[b, :q].numpy(), wd)
        assert (i[b, q:] == -1).all() and torch.isinf(d[b, q:]).all()


def test_knn_k_larger_than_cloud():
    ref = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [1, 0, 0]]])
    d, i = ops.knn(ref, ref, 5)
    assert i[0, 0].tolist() == [0, 2, 1, -1, -1]
    assert d[0, 0].tolist() == [0.0, 1.0, 4.0, float("inf"), float("inf")]


def test_knn_padded_batch(rng):
    query = torch.rand(2, 40, 3, dtype=torch.float64)
    ref = torch.rand(2, 60, 3, dtype=torch.float64)
    ref[0, 25:] = float("inf")  # padding is never read
    qlen, rlen = torch.tensor([40, 10]), torch.tensor([25, 60])
    d, i = ops.knn(query, ref, 30, qlen, rlen)
    for b in range(2):
        wd, wi = naive_knn(query[b, :qlen[b]].numpy(), ref[b, :rlen[b]].numpy(), 30)
        np.testing.assert_array_equal(i[b, :qlen[b]].numpy(), wi)
        np.testing.assert_array_equal(d[b, :qlen[b]].numpy(), wd)
    assert (i[1, 10:] == -1).all() and torch.isinf(d[1, 10:]).all()


# --------------------------------------------------------------------------- ring_knn

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_ring_knn_matches_naive(case, dtype, rng):
    ref = as_batch(ADVERSARIAL[case](rng), dtype)
    query = ref[:, ::5]
    extent = max(float((ref[0].max(0).values - ref[0].min(0).values).max()), 1.0)
    r_in, r_out = 0.1 * extent, 0.3 * extent
    idx, count = ops.ring_knn(query, ref, 6, r_in, r_out)
    wi, wc = naive_ring(query[0].numpy(), ref[0].numpy(), 6, r_in, r_out)
    np.testing.assert_array_equal(count[0].numpy(), wc)
    np.testing.assert_array_equal(idx[0].numpy(), wi)


def test_ring_knn_fill_rules():
    # centre 0 at the origin; points at distance 1, 2, 2 (tie), 5
    ref = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [-2, 0, 0], [5, 0, 0]]])
    idx, count = ops.ring_knn(ref[:, :1], ref, 4, 1.5, 3.0)
    assert count.tolist() == [[2]] and idx[0, 0].tolist() == [2, 3, 2, 2]  # repeat first member
    idx, count = ops.ring_knn(ref[:, :1], ref, 3, 2.5, 4.0)
    assert count.tolist() == [[0]] and idx[0, 0].tolist() == [0, 0, 0]  # empty: the centre itself
    outside = torch.tensor([[[4.2, 0.0, 0.0]]])
    idx, count = ops.ring_knn(outside, ref, 2, 10.0, 11.0)
    assert count.tolist() == [[0]] and idx[0, 0].tolist() == [4, 4]  # empty: nearest point
    idx, count = ops.ring_knn(ref[:, :1], ref, 2, 1.0, 2.0)
    assert idx[0, 0].tolist() == [1, 1] and count.tolist() == [[1]]  # r_inner inclusive, r_outer exclusive


def test_ring_knn_padded_batch(rng):
    ref = torch.rand(2, 300, 3)
    qlen, rlen = torch.tensor([20, 0]), torch.tensor([300, 120])
    idx, count = ops.ring_knn(ref[:, :30], ref, 8, 0.1, 0.25, qlen, rlen)
    wi, wc = naive_ring(ref[0, :20].numpy(), ref[0].numpy(), 8, 0.1, 0.25)
    np.testing.assert_array_equal(idx[0, :20].numpy(), wi)
    np.testing.assert_array_equal(count[0, :20].numpy(), wc)
    assert (idx[0, 20:] == -1).all() and (idx[1] == -1).all() and (count[1] == 0).all()


# --------------------------------------------------------------------------- validation

GOOD = torch.rand(1, 10, 3)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.fps(torch.rand(10, 3), 2), "shape"),
    (lambda: ops.fps(GOOD.half(), 2), "float32 or float64"),
    (lambda: ops.fps(GOOD.int(), 2), "float32 or float64"),
    (lambda: ops.fps(torch.rand(1, 0, 3), 1), "empty"),
    (lambda: ops.fps(GOOD, 0), ">= 1"),
    (lambda: ops.fps(GOOD, 11), "exceeds"),
    (lambda: ops.fps(GOOD, 2, start_idx=10), "start_idx"),
    (lambda: ops.fps(GOOD, 2, torch.tensor([11])), r"\[1, 10\]"),
    (lambda: ops.fps(GOOD, 2, torch.tensor([5], dtype=torch.int32)), "int64"),
    (lambda: ops.fps(torch.tensor([[[0.0, 0, float("nan")]]]), 1), "non-finite"),
    (lambda: ops.knn(GOOD, GOOD, 0), "k must be >= 1"),
    (lambda: ops.knn(GOOD, GOOD.double(), 2), "dtypes differ"),
    (lambda: ops.knn(GOOD, torch.rand(2, 10, 3), 2), "batch sizes"),
    (lambda: ops.knn(GOOD, GOOD, 2, ref_lengths=torch.tensor([0])), "ref_lengths"),
    (lambda: ops.knn(GOOD, GOOD.clone().fill_(float("inf")), 2), "non-finite"),
    (lambda: ops.knn(GOOD, GOOD.to("meta"), 2), "is on"),
    (lambda: ops.ring_knn(GOOD, GOOD, 2, 0.5, 0.5), "r_inner < r_outer"),
    (lambda: ops.ring_knn(GOOD, GOOD, 2, -1.0, 0.5), "r_inner < r_outer"),
    (lambda: ops.ring_knn(GOOD, GOOD, 2, 0.0, float("inf")), "finite"),
])
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- torch.compile

def test_ops_trace_under_torch_compile_fullgraph():
    def sample_and_group(x):
        centres = torch.gather(x, 1, ops.fps(x, 16)[..., None].expand(-1, -1, 3))
        _, nn = ops.knn(centres, x, 4)
        ring, count = ops.ring_knn(centres, x, 4, 0.1, 0.4)
        return nn, ring, count

    x = torch.rand(2, 100, 3)
    compiled = torch.compile(sample_and_group, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(x), sample_and_group(x)):
        assert torch.equal(got, want)


def test_build_info_reports_openmp():
    info = ops.build_info()
    assert set(info) == {"openmp", "omp_threads", "cuda", "cuda_archs"}
    assert info["openmp"] is True and info["omp_threads"] >= 1
