"""geomprior.patches: covering a cloud by patches, their frames, and a brute-force reference for membership."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from geomprior.errors import InputError
from geomprior.patches import Patches, bbox_diagonal, cover


def sphere_points(n: int, seed: int = 0, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """n points on (near) the unit sphere and their outward unit normals."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * (1 + noise * rng.normal(size=(n, 1))), d


def plate(n_side: int, gap: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two parallel unit squares ``gap`` apart in z, normals -z (bottom) and +z (top); returns points, normals, side."""
    rng = np.random.default_rng(seed)
    bottom = np.c_[rng.random((n_side, 2)), np.zeros(n_side)]
    top = np.c_[rng.random((n_side, 2)), np.full(n_side, gap)]
    points = np.concatenate([bottom, top])
    side = np.r_[np.zeros(n_side, int), np.ones(n_side, int)]
    normals = np.zeros_like(points)
    normals[:, 2] = np.where(side == 1, 1.0, -1.0)
    return points, normals, side


def centre_ids(points: np.ndarray, patches: Patches) -> np.ndarray:
    """Index of each patch centre among the points (centres are input points)."""
    d = cdist(patches.centers, points)
    ids = d.argmin(1)
    assert np.allclose(d[np.arange(len(ids)), ids], 0)
    return ids


def members(patches: Patches, p: int) -> np.ndarray:
    return patches.index[p][patches.mask[p]]


@pytest.fixture(scope="module")
def sphere():
    return sphere_points(600, noise=0.01)


@pytest.fixture(scope="module")
def sphere_patches(sphere):
    points, normals = sphere
    return cover(points, radius=0.08, padding=1.3, min_points=12, max_points=40, normals=normals)


def test_bbox_diagonal():
    pts = np.array([[0.0, 0, 0], [1, 2, 2], [0.5, 0.5, 0.5]])
    assert bbox_diagonal(pts) == pytest.approx(3.0)


def test_every_point_covered(sphere, sphere_patches):
    points, _ = sphere
    hit = np.bincount(sphere_patches.index[sphere_patches.mask], minlength=len(points))
    assert (hit >= 1).all()


def test_counts_within_bounds(sphere_patches):
    counts = sphere_patches.counts
    assert counts.min() >= 12
    assert counts.max() <= 40
    np.testing.assert_array_equal(counts, sphere_patches.mask.sum(1))
    assert len(sphere_patches) == len(sphere_patches.centers) == len(sphere_patches.index)


def test_members_near_centre_or_nearest_neighbours(sphere, sphere_patches):
    points, _ = sphere
    pt = sphere_patches
    reach = 1.3 * pt.radius
    assert pt.radius == pytest.approx(0.08 * bbox_diagonal(points))
    ids = centre_ids(points, pt)
    d = cdist(points[ids], points)
    order = np.argsort(d, axis=1)
    for p in range(len(pt)):
        mem = members(pt, p)
        near = set(order[p, :12].tolist())
        for j in mem:
            assert d[p, j] <= reach * (1 + 1e-9) or j in near, (p, j, d[p, j], reach)


def test_mask_and_index_padding_consistent(sphere, sphere_patches):
    points, _ = sphere
    pt = sphere_patches
    P, K = pt.index.shape
    assert pt.mask.shape == (P, K) and pt.mask.dtype == bool
    assert np.issubdtype(pt.index.dtype, np.integer)
    assert (pt.index >= 0).all() and (pt.index < len(points)).all()
    # real members first, then padding; the widest patch uses every column
    slot = np.arange(K)[None]
    np.testing.assert_array_equal(pt.mask, slot < pt.counts[:, None])
    assert pt.counts.max() == K
    for p in range(P):
        mem = members(pt, p)
        assert len(set(mem.tolist())) == len(mem), "a point appears twice in one patch"
        pad = pt.index[p][~pt.mask[p]]
        assert np.isin(pad, mem).all(), "padding must repeat a real member"


def test_local_frames(sphere, sphere_patches):
    points, _ = sphere
    pt = sphere_patches
    local = pt.to_local(points)
    assert local.shape == pt.index.shape + (3,)
    m = pt.mask
    r = np.linalg.norm(local, axis=2)
    assert (r[m] <= 1 + 1e-9).all()
    # scale is the radius of the members around the origin: the farthest member is on the unit sphere
    np.testing.assert_allclose(np.where(m, r, 0).max(1), 1.0, atol=1e-9)
    centroid = (local * m[..., None]).sum(1) / pt.counts[:, None]
    np.testing.assert_allclose(centroid, 0, atol=1e-9)
    rot = pt.rotation
    np.testing.assert_allclose(np.einsum("pij,pkj->pik", rot, rot), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)
    # PCA: local coordinates are decorrelated with variance in decreasing order
    for p in range(len(pt)):
        x = local[p][m[p]]
        cov = x.T @ x / len(x)
        np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-9)
        assert cov[0, 0] >= cov[1, 1] - 1e-12 and cov[1, 1] >= cov[2, 2] - 1e-12


def test_to_world_inverts_to_local(sphere, sphere_patches):
    points, _ = sphere
    pt = sphere_patches
    local = pt.to_local(points)
    np.testing.assert_allclose(pt.to_world(local), points[pt.index], atol=1e-12)
    # per-point form with patch ids
    P, K = pt.index.shape
    pid = np.repeat(np.arange(P), K)
    np.testing.assert_allclose(pt.to_world(local.reshape(-1, 3), pid), points[pt.index].reshape(-1, 3), atol=1e-12)
    # directions: rotate_to_world undoes the rotation
    v = np.random.default_rng(1).normal(size=(P, 3))
    local_v = np.einsum("pij,pj->pi", pt.rotation, v)
    np.testing.assert_allclose(pt.rotate_to_world(local_v, np.arange(P)), v, atol=1e-12)


def test_third_axis_agrees_with_normals(sphere, sphere_patches):
    points, normals = sphere
    pt = sphere_patches
    mean_n = (normals[pt.index] * pt.mask[..., None]).sum(1)
    assert (np.einsum("pi,pi->p", pt.rotation[:, 2], mean_n) > 0).all()
    # on a sphere the patch normal points outward, close to the radial direction at the centroid
    radial = pt.origin / np.linalg.norm(pt.origin, axis=1, keepdims=True)
    assert (np.einsum("pi,pi->p", pt.rotation[:, 2], radial) > 0.9).all()


def test_third_axis_follows_flipped_normals(sphere):
    points, normals = sphere
    out = cover(points, radius=0.08, min_points=12, max_points=40, normals=normals)
    inw = cover(points, radius=0.08, min_points=12, max_points=40, normals=-normals)
    np.testing.assert_array_equal(out.index, inw.index)
    np.testing.assert_allclose(inw.rotation[:, 2], -out.rotation[:, 2], atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(inw.rotation), 1.0, atol=1e-9)


def _plate_cover(n_side, with_normals):
    points, normals, side = plate(n_side, gap=0.0)
    points[side == 1, 2] = 0.01 * bbox_diagonal(points)  # two sides 1% of the diagonal apart
    kw = dict(radius=0.06, padding=1.3, min_points=12, max_points=64)
    return cover(points, normals=normals if with_normals else None, **kw), points, side


def _mixed(pt, side):
    return np.array([len(set(side[members(pt, p)].tolist())) > 1 for p in range(len(pt))])


def test_thin_plate_sides_never_mix():
    # without normals the patches do see both sides (so the check below is meaningful)
    blind, _, side = _plate_cover(2000, with_normals=False)
    assert _mixed(blind, side).mean() > 0.5
    # with normals they never do, and every point is still covered
    pt, points, side = _plate_cover(2000, with_normals=True)
    assert not _mixed(pt, side).any()
    assert (np.bincount(pt.index[pt.mask], minlength=len(points)) >= 1).all()
    # and each patch's normal axis is its side's normal
    s = side[pt.index[:, 0]]
    np.testing.assert_allclose(pt.rotation[:, 2, 2], np.where(s == 1, 1.0, -1.0), atol=1e-6)


def test_sparse_thin_plate_sides_never_mix():
    pt, _, side = _plate_cover(500, with_normals=True)
    mixed = _mixed(pt, side)
    assert not mixed.any(), f"{mixed.sum()} of {len(pt)} patches mix both sides (counts {pt.counts[mixed]})"


def brute_force_members(points, normals, centre, *, reach, min_points, max_points, max_angle=90.0):
    """Reference membership of one patch, straight from the docstring of ``cover``."""
    d = np.linalg.norm(points - points[centre], axis=1)
    ok = d <= reach
    if normals is not None:
        ok &= normals @ normals[centre] >= np.cos(np.radians(max_angle))
    cand = np.flatnonzero(ok)
    if len(cand) < min_points:
        return set(np.argsort(d)[:min_points].tolist())
    cand = cand[np.argsort(d[cand])][:max_points]
    return set(cand.tolist())


@pytest.mark.parametrize("with_normals", [False, True])
def test_cover_matches_brute_force(with_normals):
    points, normals = sphere_points(300, seed=3, noise=0.02)
    # a sparse blob far away forces the "nearest min_points" branch for its centres
    blob = np.random.default_rng(4).normal(scale=0.3, size=(8, 3)) + [4.0, 0, 0]
    points = np.concatenate([points, blob])
    normals = np.concatenate([normals, np.tile([1.0, 0, 0], (8, 1))]) if with_normals else None
    kw = dict(radius=0.05, padding=1.3, min_points=10, max_points=10_000)
    pt = cover(points, normals=normals, **kw)
    ids = centre_ids(points, pt)
    assert len(set(ids.tolist())) == len(ids)
    reach = 1.3 * pt.radius
    n_few = 0
    for p, c in enumerate(ids):
        ref = brute_force_members(points, normals, c, reach=reach, min_points=10, max_points=10_000)
        assert set(members(pt, p).tolist()) == ref, f"patch {p} (centre {c})"
        n_few += pt.counts[p] == 10
    assert n_few > 0  # the fallback branch was exercised


def test_cover_matches_brute_force_when_capped():
    points, normals = sphere_points(400, seed=5)
    pt = cover(points, radius=0.1, padding=1.3, min_points=8, max_points=20, normals=normals)
    ids = centre_ids(points, pt)
    reach = 1.3 * pt.radius
    for p, c in enumerate(ids):
        ref = brute_force_members(points, normals, c, reach=reach, min_points=8, max_points=20)
        assert set(members(pt, p).tolist()) == ref


def test_too_few_points():
    points, _ = sphere_points(10)
    with pytest.raises(InputError, match="16"):
        cover(points, radius=0.1, min_points=16)


def test_identical_points():
    with pytest.raises(InputError, match="identical"):
        cover(np.ones((50, 3)), radius=0.1, min_points=16)


def test_max_points_below_min_points_is_input_error():
    points, _ = sphere_points(200)
    with pytest.raises(InputError):
        cover(points, radius=0.1, min_points=16, max_points=8)


def dense_square(n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.c_[rng.random((n, 2)), 0.001 * rng.normal(size=n)]


def test_dense_cloud_small_cap_still_covers_everything():
    points = dense_square()
    pt = cover(points, radius=0.15, min_points=8, max_points=16, spread=0)  # the nearest members only
    assert pt.counts.max() <= 16 and pt.counts.min() >= 8
    hit = np.bincount(pt.index[pt.mask], minlength=len(points))
    assert (hit >= 1).all()
    assert pt.counts.max() == 16  # the cap is active: ~370 points lie within reach of each centre


def test_dense_patches_spread_over_their_reach(caplog):
    """~370 points within reach of each centre, 16 kept: the nearest 16 span 0.15 of the reach, spread ones all
    of it; every point lies within the reach of a patch, and there are far fewer patches."""
    points = dense_square()
    nearest = cover(points, radius=0.15, min_points=8, max_points=16, spread=0)
    with caplog.at_level("INFO", logger="geomprior.patches"):
        spread = cover(points, radius=0.15, min_points=8, max_points=16)
    assert f"{len(spread)} spread over their reach" in caplog.text
    reach = 1.3 * spread.radius

    def extent(pt):  # farthest member from its centre, per patch, in reaches
        return np.linalg.norm(points[pt.index] - pt.centers[:, None], axis=2).max(1) / reach

    assert (spread.counts == 16).all()
    assert np.median(extent(spread)) > 0.9 and np.median(extent(nearest)) < 0.4
    assert np.median(spread.scale) > 2 * np.median(nearest.scale)
    assert len(spread) < len(nearest) / 5
    d, _ = cKDTree(spread.centers).query(points)
    assert (d <= reach).all()
    for p in range(len(spread)):  # distinct members within reach
        m = members(spread, p)
        assert len(set(m.tolist())) == len(m)
        assert (np.linalg.norm(points[m] - spread.centers[p], axis=1) <= reach).all()


def test_deterministic(sphere):
    points, normals = sphere
    a = cover(points, radius=0.08, min_points=12, max_points=40, normals=normals)
    b = cover(points, radius=0.08, min_points=12, max_points=40, normals=normals)
    for f in ("centers", "index", "mask", "origin", "scale", "rotation"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
