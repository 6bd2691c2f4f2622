"""Plane voting: the points of one flat, connected surface share their class probabilities.

The models label a point from the 1 m block around it, so one long wall can come out part wall,
part clutter, part door. This step finds the flat, connected patches of a cloud (walls, floors,
ceilings, table tops) and gives every point of a large patch the patch's mean probabilities;
points off such patches (chairs, clutter, edges) keep their own. It runs after the model, on the
probabilities :func:`pcseg.infer.predict_probabilities` returns (``pcseg segment`` and
``pcseg eval`` do it where the model asks for it, :func:`model_refines`). Its thresholds were
chosen on the real validation rooms of ``datasets/REAL.md``.

All lengths are metres, in the cloud's z-up frame:

1. points are grouped in cubes of :data:`VOXEL` counted from ``origin``; a voxel stands for its
   points by their centroid and their mean probabilities;
2. each voxel's neighbourhood is every voxel whose centroid lies within :data:`RADIUS`; its
   normal is the direction of least spread of that neighbourhood, its *surface variation* the
   least eigenvalue of the spread over their sum (0 on a plane, 1/3 when isotropic). A voxel with
   at least :data:`MIN_NEIGHBOURS` neighbours and a variation under :data:`MAX_VARIATION` is flat;
3. two flat neighbours are joined when their normals differ by less than ``arccos(MIN_COS)``, the
   second lies within :data:`MAX_OFFSET` of the first's plane, and both are in the same
   :data:`CELL`-wide square column of the grid that starts at ``origin``;
4. a patch is a connected set of joined voxels. Joins compare neighbours only, so a chain of
   small turns can carry a patch round a rounded corner; a patch whose normals disagree
   (:data:`MIN_COHERENCE`) is cut along its main direction (see :func:`_unbent_components`);
5. the points of a patch of at least :data:`MIN_VOXELS` voxels get its mean probabilities (the
   mean over its voxels).

A patch never leaves its cell, so the results in a cell (:func:`cell_of`) depend only on the
points within :data:`CELL_HALO` (0.2 m) of it, and a point's on those within :data:`REACH`
(3.2 m): a tile of whole cells with that much halo, or any tile with 3.2 m, gets the whole cloud's
result, to the bit (every sum is taken in the order of the voxels' grid keys, whatever the tile).
``pcseg segment --max-memory`` votes its tiles so (:mod:`pcseg.tiled`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .config import DATA_DEFAULTS
from .data.voxels import voxel_subsample

#: Side of the voxels the patches are made of, metres.
VOXEL = 0.04
#: Neighbourhood radius of a voxel (normal, flatness, joins), metres.
RADIUS = 0.12
#: Fewest neighbours (itself included) a flat voxel needs.
MIN_NEIGHBOURS = 6
#: Largest surface variation of a flat voxel.
MAX_VARIATION = 0.03
#: Smallest |cosine| between the normals of two joined voxels (about 18 degrees).
MIN_COS = 0.95
#: Largest distance of a joined neighbour from a voxel's plane, metres.
MAX_OFFSET = 0.05
#: Smallest agreement of a patch's normals (1: all parallel; 0.95: about 13 degrees apart, root mean square).
MIN_COHERENCE = 0.95
#: Times a bent patch is cut in two before what is left bent is given up.
SPLIT_ROUNDS = 3
#: Side of the square columns a patch stays in, metres.
CELL = 3.0
#: Side of the cells in voxels.
CELL_VOXELS = round(CELL / VOXEL)
#: Fewest voxels of a patch whose points share its probabilities.
MIN_VOXELS = 20
#: Voxels beyond its cell's edge whose planes a cell reads (those within RADIUS of its edge voxels).
HALO_VOXELS = int(np.ceil(RADIUS / VOXEL)) + 1
#: How far beyond its cell a cell's result looks, metres (the halo voxels and one more, for rounding).
CELL_HALO = (HALO_VOXELS + 1) * VOXEL
#: How far a point's result reaches, metres: across its cell and the cell's halo.
REACH = CELL + CELL_HALO


def refine_probabilities(xyz: np.ndarray, probs: np.ndarray, valid: Optional[np.ndarray] = None,
                         origin: Optional[np.ndarray] = None) -> np.ndarray:
    """Plane-voted probabilities (see the module), written over ``probs``.

    Args:
        xyz: (N, 3) float32/float64 coordinates, metres, z up.
        probs: (N, K) float32 class probabilities (rows of invalid points are ignored);
            the rows of patch points are replaced in place.
        valid: (N,) bool, points to use (default all).
        origin: (3,) where the voxel and cell grids start, at most every valid point
            (default the valid points' minimum; a tile passes its whole cloud's).
    Returns ``probs``. Besides it, memory peaks at about a hundred bytes per point (the voxel grid).
    """
    points = np.arange(len(xyz)) if valid is None else np.flatnonzero(valid)
    if len(points) == 0:
        return probs
    origin = np.asarray(xyz[points].min(axis=0) if origin is None else origin, dtype=np.float64)
    representatives, voxel_of = voxel_subsample(xyz, VOXEL, valid, origin)
    voxel_of = voxel_of[points]
    voxels = len(representatives)
    grid = _voxel_coordinates(xyz[representatives], origin)
    centroids = _group_means(lambda a: np.asarray(xyz[points, a], dtype=np.float64) - origin[a], 3,
                             voxel_of, voxels)
    voxel_probs = _group_means(lambda c: probs[points, c], probs.shape[1], voxel_of, voxels)
    patch = planar_patches(centroids, grid)
    sizes = np.bincount(patch)
    patch_probs = _group_means(lambda c: voxel_probs[:, c], probs.shape[1], patch, len(sizes))
    in_patch = sizes[patch[voxel_of]] >= MIN_VOXELS
    probs[points[in_patch]] = patch_probs[patch[voxel_of[in_patch]]]
    return probs


def cell_of(xy: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(n, 2) int64 the :data:`CELL` column holding each point of ``xy`` (n, 2), metres, counted
    from ``origin`` (2,) as the voting counts them (through the point's voxel)."""
    return _voxel_coordinates(xy, origin) // CELL_VOXELS


def _voxel_coordinates(xyz: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(n, d) int64 integer coordinates of the :data:`VOXEL` holding each point of ``xyz`` (n, d),
    metres, counted from ``origin`` (d,): the one arithmetic the voxel grid and :func:`cell_of` share."""
    return np.floor((np.asarray(xyz, dtype=np.float64) - origin) / VOXEL).astype(np.int64)


def planar_patches(centroids: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(M,) int64 patch of each voxel, from voxel centroids (M, 3) float64 and integer voxel
    coordinates (M, 3) int64, both about the grid origin, in grid-key order (x, then y, then z,
    as :func:`pcseg.data.voxels.voxel_subsample` orders voxels). Cells are processed one at a
    time with their halo, so memory follows the largest cell, not the cloud."""
    m = len(centroids)
    normals_all = np.zeros((m, 3))
    first_all, second_all = [], []
    for members, owned in _cells_with_halo(grid):
        first, second = _neighbour_pairs(centroids[members])
        normals, flat = _local_planes(centroids[members], first, second)
        both = owned[first] & owned[second]
        first, second = first[both], second[both]
        offset = np.abs(np.einsum("ij,ij->i", centroids[members[second]] - centroids[members[first]],
                                  normals[first]))
        joined = (flat[first] & flat[second] & (offset <= MAX_OFFSET)
                  & (np.abs(np.einsum("ij,ij->i", normals[first], normals[second])) >= MIN_COS))
        first_all.append(members[first[joined]])
        second_all.append(members[second[joined]])
        normals_all[members[owned]] = normals[owned]
    first, second = np.concatenate(first_all), np.concatenate(second_all)
    return _unbent_components(m, first, second, normals_all)


def _unbent_components(m: int, first: np.ndarray, second: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Connected components of the joins (first, second), split where they bend.

    Joins compare neighbours only, so a chain of small turns can carry a patch round a rounded
    corner (a floor into its wall). A patch is straight when its voxels' normals agree: the
    largest eigenvalue of their mean outer product is at least ``MIN_COHERENCE``. A bent patch
    is cut into the voxels whose normal lies within ``arccos(MIN_COS)`` of its main direction and
    the rest, up to ``SPLIT_ROUNDS`` times; what is still bent then is left as single voxels.
    """
    side = np.zeros(m, dtype=np.int64)
    for _ in range(SPLIT_ROUNDS + 1):
        kept = side[first] == side[second]
        first, second = first[kept], second[kept]
        graph = coo_matrix((np.ones(len(first), dtype=np.int8), (first, second)), shape=(m, m))
        patch = connected_components(graph, directed=False)[1].astype(np.int64)
        direction, coherence = _main_normals(patch, normals)
        bent = (coherence < MIN_COHERENCE)[patch]
        if not bent.any():
            return patch
        along = np.abs(np.einsum("ij,ij->i", normals, direction[patch])) >= MIN_COS
        side = 2 * patch + (bent & along)
    patch[bent] = patch.max() + 1 + np.flatnonzero(bent)
    return np.unique(patch, return_inverse=True)[1].astype(np.int64)


def _main_normals(patch: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per patch, (main direction (P, 3) of its voxels' normals, coherence (P,): the largest
    eigenvalue of their mean outer product, 1 when all are parallel)."""
    groups = int(patch.max()) + 1
    scatter = _outer_sums(patch, normals, groups) / np.bincount(patch, minlength=groups)[:, None, None]
    eigenvalues, eigenvectors = np.linalg.eigh(scatter)
    return eigenvectors[:, :, 2], eigenvalues[:, 2]


def _cells_with_halo(grid: np.ndarray):
    """Per occupied cell: (members (n,) int64 ascending: the voxels within a neighbourhood of the
    cell, its own included; owned (n,) bool: which members are the cell's)."""
    side, halo = CELL_VOXELS, HALO_VOXELS
    ix, iy = grid[:, 0], grid[:, 1]
    strip = ix // side
    for s in np.unique(strip):
        lo, hi = np.searchsorted(ix, [s * side - halo, (s + 1) * side + halo])
        band = np.arange(lo, hi)
        order = np.argsort(iy[band], kind="stable")
        band_y = iy[band][order]
        for cy in np.unique(iy[band][strip[band] == s] // side):
            a, b = np.searchsorted(band_y, [cy * side - halo, (cy + 1) * side + halo])
            members = np.sort(band[order[a:b]])
            yield members, (strip[members] == s) & (iy[members] // side == cy)


def _neighbour_pairs(centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (i, j), i != j, of voxels within ``RADIUS``, sorted by (i, j): two
    (P,) int64 arrays."""
    pairs = cKDTree(centroids).query_pairs(RADIUS, output_type="ndarray").astype(np.int64)
    first = np.concatenate([pairs[:, 0], pairs[:, 1]])
    second = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((second, first))
    return first[order], second[order]


def _local_planes(centroids: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normals (M, 3) unit, flat (M,) bool) from each voxel's neighbourhood (itself and its pairs)."""
    m = len(centroids)
    count = np.bincount(first, minlength=m).astype(np.float64) + 1
    centred = centroids[second] - centroids[first]  # about the voxel itself: small numbers, no cancellation
    mean = np.stack([np.bincount(first, centred[:, a], m) for a in range(3)], axis=1) / count[:, None]
    spread = _outer_sums(first, centred, m) / count[:, None, None] - mean[:, :, None] * mean[:, None, :]
    eigenvalues, eigenvectors = np.linalg.eigh(spread)
    variation = eigenvalues[:, 0] / np.maximum(eigenvalues.sum(axis=1), 1e-18)
    flat = (count >= MIN_NEIGHBOURS) & (variation < MAX_VARIATION)
    return eigenvectors[:, :, 0], flat


def _outer_sums(group: np.ndarray, vectors: np.ndarray, groups: int) -> np.ndarray:
    """(groups, 3, 3) float64 sum of the outer products of the rows of ``vectors`` (n, 3) in each group."""
    sums = np.empty((groups, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            sums[:, a, b] = sums[:, b, a] = np.bincount(group, vectors[:, a] * vectors[:, b], groups)
    return sums


def _group_means(column, columns: int, group: np.ndarray, groups: int) -> np.ndarray:
    """(groups, columns) float64 mean in each group (every group non-empty) of the columns
    ``column(0) ... column(columns - 1)``, each (n,): one column at a time, so a wide array is
    never copied whole."""
    count = np.bincount(group, minlength=groups).astype(np.float64)
    sums = np.stack([np.bincount(group, column(c), groups) for c in range(columns)], axis=1)
    return sums / count[:, None]


def model_refines(data: dict, refine: Optional[bool] = None) -> bool:
    """Whether flat patches are voted: ``refine`` when given, else the model's own setting (its
    checkpoint's ``data.refine``, true where it says nothing)."""
    return bool(data.get("refine", DATA_DEFAULTS["refine"]) if refine is None else refine)


def add_refine_arguments(parser, on: str = "the points of each large flat patch (a wall, a floor, a table "
                         "top) share the patch's label (default: as the model says; the bundled real "
                         "models do not)",
                         off: str = "keep the model's own label on every point") -> None:
    """``--refine`` / ``--no-refine`` (``pcseg segment``, ``eval``, ``export``), with help texts
    ``on`` and ``off``; neither given (``refine`` None) keeps the model's own setting (its
    checkpoint's ``data.refine``)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--refine", dest="refine", action="store_true", default=None, help=on)
    group.add_argument("--no-refine", dest="refine", action="store_false", help=off)
