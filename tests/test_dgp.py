"""geomprior.dgp end to end on small noisy spheres and tori: distances to the known true surface, seeds, options."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

pytest.importorskip("open3d")

import geomprior.dgp as dgp  # noqa: E402
import geomprior.normals as normals  # noqa: E402
import geomprior.scan as scan  # noqa: E402
from geomprior.dgp import DGPConfig, reconstruct  # noqa: E402
from geomprior.errors import InputError  # noqa: E402
from geomprior.metrics import point_to_mesh_distance  # noqa: E402
from geomprior.synthetic import noisy_scan, sphere_mesh, torus_mesh  # noqa: E402

NOISE = 0.01  # noise std per coordinate, fraction of the diagonal

# small problems: ~50 patches of <= 64 points, 2x32 hidden units
BASE = dataclasses.replace(
    DGPConfig.preset("fast"), radius=0.1, max_points=64, min_points=16, widths=(32, 32), eval_every=5, patience=3,
    max_epochs=200, poisson_depth=6,
)
# even smaller, for checks that do not need a good fit (seeds, options, orientation)
CHEAP = dataclasses.replace(BASE, max_epochs=10, early_stop="none", consistency_epochs=5)


def diagonal(mesh) -> float:
    v = np.asarray(mesh.vertices)
    return float(np.linalg.norm(v.max(0) - v.min(0)))


@pytest.fixture(scope="module")
def sphere():
    mesh = sphere_mesh(resolution=40)
    return mesh, noisy_scan(mesh, 1500, NOISE, seed=0)


@pytest.fixture(scope="module")
def torus():
    mesh = torus_mesh(radial_resolution=48, tubular_resolution=24)
    return mesh, noisy_scan(mesh, 2000, NOISE, seed=1)


@pytest.fixture(scope="module")
def sphere_rec(sphere):
    _, points = sphere
    return reconstruct(points, config=BASE, device="cpu", seed=0)


@pytest.fixture(scope="module")
def cheap_rec(sphere):
    _, points = sphere
    return reconstruct(points, config=CHEAP, device="cpu", seed=0)


def mesh_vertex_distance(rec, truth) -> np.ndarray:
    return point_to_mesh_distance(np.asarray(rec.mesh.vertices), truth) / diagonal(truth)


def test_early_stopping_fires_and_dense_points_denoise(sphere, sphere_rec):
    truth, points = sphere
    local = sphere_rec.history["local"]
    assert local["reason"].startswith("validation stopped improving"), local["reason"]
    assert local["steps"] < BASE.max_epochs
    assert local["step"][-1] == local["steps"]
    assert "validation stopped" in sphere_rec.summary
    noisy = point_to_mesh_distance(points, truth).mean()
    dense = point_to_mesh_distance(sphere_rec.points, truth).mean()
    assert dense < 0.8 * noisy, (dense, noisy)


def test_fitted_points_denoise_and_face_outward(sphere):
    truth, points = sphere
    out = dgp.fit_dense(points, config=BASE, device="cpu", seed=0)
    fitted, nrm = out.fitted_points, out.fitted_normals
    assert fitted.shape == nrm.shape == (out.inliers.sum(), 3)
    noisy = point_to_mesh_distance(points, truth).mean()
    assert point_to_mesh_distance(fitted, truth).mean() < 0.6 * noisy  # the patches' consensus, not the scan
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
    radial = np.einsum("ij,ij->i", nrm, fitted / np.linalg.norm(fitted, axis=1, keepdims=True))
    assert np.mean(radial > 0) >= 0.99 and np.median(radial) > 0.95


@pytest.mark.parametrize("source", ["fitted", "dense"])
def test_mesh_points_choose_what_is_meshed(sphere, source):
    truth, points = sphere
    rec = reconstruct(points, config=dataclasses.replace(CHEAP, mesh_points=source), device="cpu", seed=0)
    assert f"{source} points ->" in rec.summary
    assert mesh_vertex_distance(rec, truth).mean() < 0.02


def test_sphere_mesh_close_to_true_surface(sphere_rec):
    truth = sphere_mesh(resolution=80)
    assert len(sphere_rec.mesh.triangles) > 1000
    d = mesh_vertex_distance(sphere_rec, truth)
    assert d.mean() < 0.01, d.mean()
    assert np.mean(d < 0.03) >= 0.95


def test_sphere_dense_normals_point_outward(sphere_rec):
    pts, nrm = sphere_rec.points, sphere_rec.normals
    assert pts.shape == nrm.shape and pts.shape[1] == 3 and len(pts) > 1000
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
    radial = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    assert np.mean(np.einsum("ij,ij->i", nrm, radial) > 0) >= 0.95
    # and they are close to the true normals, not just on the right side
    assert np.median(np.einsum("ij,ij->i", nrm, radial)) > 0.9


def test_torus_mesh_close_to_true_surface(torus):
    truth, points = torus
    rec = reconstruct(points, config=dataclasses.replace(BASE, radius=0.1, poisson_depth=7), device="cpu", seed=0)
    d = mesh_vertex_distance(rec, truth)
    assert d.mean() < 0.01, d.mean()
    assert np.mean(d < 0.03) >= 0.9
    dense = point_to_mesh_distance(rec.points, truth) / diagonal(truth)
    assert dense.mean() < 0.01


def test_early_stopped_fit_improves_on_the_untrained_start(sphere):
    truth, points = sphere
    cfg = dataclasses.replace(BASE, consistency=False)
    start = reconstruct(points, config=dataclasses.replace(cfg, max_epochs=0), device="cpu", seed=0)
    fitted = reconstruct(points, config=cfg, device="cpu", seed=0)
    assert fitted.history["local"]["best_step"][0] > 0
    d_start = point_to_mesh_distance(start.points, truth).mean()
    d_fit = point_to_mesh_distance(fitted.points, truth).mean()
    assert d_fit < 0.9 * d_start, (d_fit, d_start)


def same_geometry(m1, m2, tol=1e-5) -> bool:
    """Same vertex set (up to order and float32 rounding) and as many triangles."""
    from scipy.spatial import cKDTree

    v1, v2 = np.asarray(m1.vertices), np.asarray(m2.vertices)
    if v1.shape != v2.shape or len(m1.triangles) != len(m2.triangles):
        return False
    return cKDTree(v2).query(v1)[0].max() <= tol and cKDTree(v1).query(v2)[0].max() <= tol


def test_same_seed_same_output(sphere, cheap_rec):
    _, points = sphere
    again = reconstruct(points, config=CHEAP, device="cpu", seed=0)
    np.testing.assert_array_equal(again.points, cheap_rec.points)
    np.testing.assert_array_equal(again.normals, cheap_rec.normals)
    np.testing.assert_array_equal(again.patches.index, cheap_rec.patches.index)
    assert again.history["local"]["loss"] == cheap_rec.history["local"]["loss"]
    assert same_geometry(again.mesh, cheap_rec.mesh)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the race needs two threads")
def test_same_seed_bit_identical_mesh(cheap_rec):
    from geomprior.mesh import mesh_surface

    rec = cheap_rec
    meshes = [mesh_surface(rec.points, rec.normals, depth=CHEAP.poisson_depth, max_distance=0.1)[0] for _ in range(3)]
    for mesh in meshes[1:]:
        np.testing.assert_array_equal(np.asarray(mesh.vertices), np.asarray(meshes[0].vertices))
        np.testing.assert_array_equal(np.asarray(mesh.triangles), np.asarray(meshes[0].triangles))


def test_a_quiet_scan_is_fitted_with_smaller_patches_unless_the_radius_is_fixed(sphere):
    """DGPConfig.adapt_radius: the sphere with a tenth of the noise gets patches scan.FINE × as wide, tiled or not;
    at the noise of the other tests, or with the radius fixed, the radius as set."""
    from geomprior.tiling import reconstruct_tiled

    mesh, noisy = sphere
    quiet = noisy_scan(mesh, 1500, NOISE / 10, seed=0)
    fixed = dataclasses.replace(CHEAP, adapt_radius=False)
    radius = {name: reconstruct(points, config=cfg, device="cpu", seed=0).history["config"]["radius"]
              for name, points, cfg in (("quiet", quiet, CHEAP), ("noisy", noisy, CHEAP), ("fixed", quiet, fixed))}
    radius["tiled"] = reconstruct_tiled(quiet, config=CHEAP, device="cpu").history["settings"]["config"]["radius"]
    small = pytest.approx(scan.FINE * CHEAP.radius)
    assert radius == {"quiet": small, "noisy": CHEAP.radius, "fixed": CHEAP.radius, "tiled": small}


def test_given_normals_are_used_and_orient_the_output(sphere, monkeypatch):
    _, points = sphere

    def no_estimation(*a, **k):
        raise AssertionError("normals were estimated although given")

    monkeypatch.setattr(dgp, "estimate_normals", no_estimation)
    radial = points / np.linalg.norm(points, axis=1, keepdims=True)
    out = reconstruct(points, radial, config=CHEAP, device="cpu", seed=0)
    assert out.history["normals_given"] is True
    up = np.einsum("ij,ij->i", out.normals, out.points / np.linalg.norm(out.points, axis=1, keepdims=True))
    assert np.mean(up > 0) >= 0.95
    # inward-pointing normals flip the output orientation
    inw = reconstruct(points, -radial * 2.0, config=CHEAP, device="cpu", seed=0)  # (any length: normalised)
    down = np.einsum("ij,ij->i", inw.normals, inw.points / np.linalg.norm(inw.points, axis=1, keepdims=True))
    assert np.mean(down < 0) >= 0.95
    # ... and the watertight mesh faces outward all the same (its enclosed volume positive, not inside out)
    for rec in (out, inw):
        v, t = np.asarray(rec.mesh.vertices), np.asarray(rec.mesh.triangles)
        volume = np.einsum("ij,ij->", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])) / 6
        assert rec.history["mesh"][0]["closed"] and volume > 0


def test_estimated_normals_flag(cheap_rec):
    assert cheap_rec.history["normals_given"] is False


def test_thin_parts_setting_reaches_the_normal_estimate(sphere, monkeypatch):
    seen = []
    plain = dgp.estimate_normals
    monkeypatch.setattr(dgp, "estimate_normals", lambda p, **kw: seen.append(kw) or plain(p, **kw))
    reconstruct(sphere[1], config=dataclasses.replace(CHEAP, thin_parts=True), device="cpu", seed=0)
    diag = float(np.linalg.norm(np.ptp(sphere[1], axis=0)))
    assert seen == [{"scale": pytest.approx(CHEAP.radius * diag), "thin_parts": True, "outward": "auto"}]


def test_normals_of_a_dense_noisy_scan_reach_past_the_noise():
    # 20,000 points on a unit square, noise 0.02: 30 neighbours reach about one noise level, and their normals are
    # mostly noise; at a patch radius of 0.25 the estimate takes the ~300 points within 0.3 radii
    rng = np.random.default_rng(0)
    points = np.c_[rng.random((20000, 2)), rng.normal(scale=0.02, size=20000)]
    assert normals.normal_neighbours(points, 0.25) > 200
    assert normals.normal_neighbours(points[:1000], 0.25) == normals.NORMAL_K  # a sparse scan keeps 30
    up = {k: normals.estimate_normals(points, k=k, scale=0.25)[:, 2] for k in (None, 30)}
    assert np.abs(up[None]).mean() > 0.99 and max(np.mean(up[None] > 0), np.mean(up[None] < 0)) > 0.999
    assert np.abs(up[30]).mean() < 0.8  # what the fixed 30 gave
    # the benchmark's 20,000-point scans keep 30 (their cached rows ran with it)
    assert normals.normal_neighbours(noisy_scan(sphere_mesh(resolution=40), 20000, 0.005, seed=0)) == normals.NORMAL_K


def test_thin_part_normals_face_away_from_each_other():
    # a 1 x 1 x 0.04 plate at 0.5 % noise: the plain tangent-plane orientation leaks across it and turns both sides
    # the same way (so every patch would straddle the plate); the thin-part estimate keeps them opposite
    import open3d as o3d

    plate = o3d.geometry.TriangleMesh.create_box(1.0, 1.0, 0.04).subdivide_midpoint(4)
    points = noisy_scan(plate, 20000, 0.005, seed=0)
    inner = (np.abs(points[:, :2] - 0.5) < 0.4).all(1)
    top, bottom = inner & (points[:, 2] > 0.02), inner & (points[:, 2] < 0.02)

    def sides_opposite(normals):  # share of each side facing the way the top side's majority faces, and away
        up = np.sign(np.median(normals[top, 2]))
        return min(np.mean(normals[top, 2] * up > 0), np.mean(normals[bottom, 2] * up < 0))

    assert sides_opposite(normals.estimate_normals(points)) < 0.1
    thin = normals.estimate_normals(points, thin_parts=True)
    assert sides_opposite(thin) > 0.95
    np.testing.assert_array_equal(normals.estimate_normals(points, thin_parts="auto"), thin)  # "auto" sees the leak
    # and on a closed smooth surface it still orients every normal consistently
    sphere = noisy_scan(sphere_mesh(resolution=40), 5000, 0.005, seed=0)
    radial = np.einsum("ij,ij->i", normals.estimate_normals(sphere, thin_parts=True), sphere)
    assert max(np.mean(radial > 0), np.mean(radial < 0)) > 0.99
    # where nothing is thin, "auto" gives exactly the plain normals
    np.testing.assert_array_equal(normals.estimate_normals(sphere, thin_parts="auto"), normals.estimate_normals(sphere))


def test_mesh_settings_reach_the_mesh_lengths_in_patch_radii(sphere, monkeypatch):
    seen = []
    plain = dgp.mesh_surface
    monkeypatch.setattr(dgp, "mesh_surface", lambda *a, **kw: seen.append(
        (kw["max_cube"], kw["fidelity"], kw["taubin"])) or plain(*a, **kw))
    cfg = dataclasses.replace(CHEAP, max_cell=0.3, fidelity=0.7, taubin=3)
    rec = reconstruct(sphere[1], config=cfg, device="cpu", seed=0)
    assert seen == [(pytest.approx(0.3 * rec.patches.radius), pytest.approx(0.7 * rec.patches.radius), 3)]
    for field, bad in (("max_cell", 0), ("fidelity", -0.1), ("taubin", -1)):
        with pytest.raises(InputError, match=field):
            dataclasses.replace(CHEAP, **{field: bad}).validate()


def test_bad_thin_parts_setting_is_input_error(sphere):
    with pytest.raises(InputError, match="thin_parts"):
        reconstruct(sphere[1], config=dataclasses.replace(CHEAP, thin_parts="yes"), device="cpu")


def _good_points(n=200):
    rng = np.random.default_rng(0)
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: np.where(np.arange(200)[:, None] == 7, np.nan, _good_points()), "NaN"),
        (lambda: np.where(np.arange(200)[:, None] == 7, np.inf, _good_points()), "infinite"),
        (lambda: np.ones((200, 3)), "identical"),
        (lambda: np.outer(np.linspace(0, 1, 200), (1.0, 2.0, 3.0)) + 5e5, "one line"),
        (lambda: _good_points()[:10], "at least 16"),
        (lambda: _good_points()[:, :2], r"\(N, 3\)"),
        (lambda: _good_points().ravel(), r"\(N, 3\)"),
    ],
    ids=["nan", "inf", "identical", "line", "too-few", "two-columns", "flat"],
)
def test_bad_points_are_input_errors(make, match):
    with pytest.raises(InputError, match=match):
        reconstruct(make(), config=CHEAP, device="cpu")


def test_wrong_normals_shape_is_input_error():
    with pytest.raises(InputError, match="normals"):
        reconstruct(_good_points(), _good_points()[:50], config=CHEAP, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_input_error():
    with pytest.raises(InputError, match="cuda"):
        reconstruct(_good_points(), config=CHEAP, device="cuda")


def test_unknown_device_and_preset_are_input_errors():
    with pytest.raises(InputError, match="valid: auto, cpu, cuda"):
        reconstruct(_good_points(), config=CHEAP, device="tpu")
    with pytest.raises(InputError, match="fast"):
        DGPConfig.preset("fastest")
    with pytest.raises(InputError, match="radius"):
        reconstruct(_good_points(), config=dataclasses.replace(CHEAP, radius=0.0), device="cpu")


@pytest.mark.parametrize(
    "option",
    [{"matching": "sinkhorn"}, {"loss": "sinkhorn", "blur": 0.05, "scaling": 0.5, "max_epochs": 40, "lr": 5e-3}],
    ids=["sinkhorn-plan", "sinkhorn-loss"],
)
def test_sinkhorn_schemes_improve_on_the_untrained_start(sphere, option):
    """The original scheme (hardened entropic plan) and the Sinkhorn divergence as loss both fit the shape."""
    truth, points = sphere
    cfg = dataclasses.replace(BASE, consistency=False, early_stop="none", max_epochs=60, refresh_every=20)
    cfg = dataclasses.replace(cfg, **option)
    start = reconstruct(points, config=dataclasses.replace(cfg, max_epochs=0), device="cpu", seed=0)
    fitted = reconstruct(points, config=cfg, device="cpu", seed=0)
    assert fitted.history["matching"] == option.get("matching", "exact")
    loss = fitted.history["local"]["loss"]
    assert loss[-1] < 0.8 * loss[0], loss
    d_start = point_to_mesh_distance(start.points, truth).mean()
    d_fit = point_to_mesh_distance(fitted.points, truth).mean()
    assert d_fit < 0.95 * d_start, (d_fit, d_start)


@pytest.fixture(scope="module")
def sphere_with_outliers(sphere):
    """The sphere scan (radius 1) and 40 outliers in a shell 1.8-2 from its centre: farther from the surface than
    a patch's reach at OUTLYING's radius (padding × radius × diagonal ≈ 0.72), and too sparse to hold 16
    neighbours within it."""
    truth, points = sphere
    rng = np.random.default_rng(3)
    d = rng.normal(size=(40, 3))
    far = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(1.8, 2.0, size=(40, 1))
    return truth, np.concatenate([points, far]), len(points)


OUTLYING = dataclasses.replace(CHEAP, radius=0.08)


def test_outliers_are_dropped_and_indices_refer_to_the_input(sphere_with_outliers):
    from geomprior.patches import point_labels

    _, points, n_surface = sphere_with_outliers
    out = dgp.fit_dense(points, config=OUTLYING, device="cpu", seed=0)
    assert out.inliers[:n_surface].all() and not out.inliers[n_surface:].any()
    assert out.history["outliers_dropped"] == 40 and out.history["points"] == len(points)
    assert "40 outlying points dropped" in out.summary
    members = out.patches.index[out.patches.mask]
    assert members.max() < n_surface  # patch members index the input points, never an outlier
    assert (point_labels(out.patches, points)[n_surface:] == -1).all()
    assert np.allclose(np.linalg.norm(out.input_normals[:n_surface], axis=1), 1)
    assert not out.input_normals[n_surface:].any()


def test_inliers_keep_a_sparse_region_and_drop_points_off_the_surface():
    """Half a plane 10× sparser than the other half is a sparse region, not outliers; points above the plane are
    outliers, even where they are as sparse as each other (a cloud that fills a volume, not a surface)."""
    rng = np.random.default_rng(0)
    dense = np.c_[rng.uniform(0, 0.5, 8000), rng.uniform(0, 1, 8000), np.zeros(8000)]
    sparse = np.c_[rng.uniform(0.5, 1, 800), rng.uniform(0, 1, 800), np.zeros(800)]
    off = rng.uniform([0, 0, 0.2], [1, 1, 0.4], size=(40, 3))
    points = np.concatenate([dense, sparse, off])
    keep = scan.find_inliers(points, reach=0.04, min_points=16)
    assert keep[:8000].all() and keep[8000:8800].mean() > 0.9 and not keep[8800:].any()
    by_count = scan.find_inliers(points, reach=0.04, min_points=16, ratio=0, curved=0)  # the neighbour count alone
    assert by_count[:8000].all() and by_count[8000:8800].mean() < 0.1 and not by_count[8800:].any()
    not_flat = scan.find_inliers(points, reach=0.04, min_points=16, flatness=1.0, curved=0)  # sparseness alone
    assert not_flat[8800:].any()  # keeps part of the outlier cloud


def test_inliers_keep_a_sparse_curved_region():
    """A noisy sphere with one hemisphere 27× sparser than the other: part of the sparse side bends too much within
    16 neighbours to pass as flat, yet lies within its noise of a quadric through the kept points near it and is
    kept; points scattered around the sphere stay dropped."""
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(40000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    sphere = np.concatenate([sphere[sphere[:, 0] < 0][:8000], sphere[sphere[:, 0] >= 0][:300]])
    sphere += rng.normal(scale=0.01, size=sphere.shape)
    off = rng.uniform(-1.5, 1.5, size=(4000, 3))
    points = np.concatenate([sphere, off[np.abs(np.linalg.norm(off, axis=1) - 1) > 0.1][:200]])
    flat_only = scan.find_inliers(points, reach=0.15, min_points=16, curved=0)
    keep = scan.find_inliers(points, reach=0.15, min_points=16)
    assert keep[:8300][flat_only[:8300]].all() and keep[:8000].mean() > 0.999
    added = keep & ~flat_only
    assert added[8000:8300].sum() >= 20 and not added[8300:].any(), (added[8000:8300].sum(), added[8300:].sum())


def test_inliers_drop_strays_near_a_surface_but_keep_a_crease():
    """A noisy steep roof (two planes meeting at a 37° crease) with stray points 10-20 noise σ above it, within a
    patch's reach of it, and a few far ones: the near strays have neighbours enough, yet lie off the quadric through
    theirs and are dropped; along the crease no quadric fits the neighbours, and its points are kept."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, size=(6000, 2))
    roof = np.c_[xy, 3 * np.abs(xy[:, 0] - 0.5) + rng.normal(scale=0.002, size=6000)]
    near = np.c_[rng.uniform(0.1, 0.9, size=(30, 2)), np.zeros(30)]
    near[:, 2] = 3 * np.abs(near[:, 0] - 0.5) + rng.uniform(0.02, 0.04, size=30)
    far = rng.uniform(0, 1, size=(5, 3)) + [0, 0, 2]
    points = np.concatenate([roof, near, far])
    keep = scan.find_inliers(points, reach=0.05, min_points=16)
    crease = np.abs(xy[:, 0] - 0.5) < 0.02
    assert keep[:6000][crease].all() and keep[:6000].mean() > 0.999, keep[:6000].mean()
    assert (~keep[6000:6030]).sum() >= 25 and not keep[6030:].any(), keep[6000:6030].sum()
    plain = scan.find_inliers(points, reach=0.05, min_points=16, curved=0)
    assert plain[6000:6030].all() and not plain[6030:].any()  # the neighbour count alone keeps the near strays


def test_inliers_drop_a_cloud_of_strays_close_to_a_dense_surface():
    """300 strays 5-20 noise σ above a dense noisy plane, within a patch's reach of it: each has neighbours enough
    (the plane's), and other strays among its nearest spoil the quadric through them; yet most are sparser than the
    plane points around them, and once the plane is judged without them, those 8 σ above it go."""
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(0, 1, size=(20000, 2)), rng.normal(scale=0.002, size=20000)]
    strays = np.c_[rng.uniform(0, 1, size=(300, 2)), rng.uniform(0.01, 0.04, size=300)]
    far = rng.uniform(0, 1, size=(5, 3)) + [0, 0, 2]
    keep = scan.find_inliers(np.concatenate([plane, strays, far]), reach=0.05, min_points=16)
    high = np.r_[np.zeros(20000, bool), strays[:, 2] > 0.016, np.zeros(5, bool)]
    assert keep[:20000].all() and not keep[-5:].any()
    assert keep[high].sum() <= 0.02 * high.sum(), (keep[high].sum(), high.sum())


def test_inliers_drop_a_cloud_of_strays_with_neighbours_enough():
    """A dense plane under a cloud of 2,400 strays, each with a median 22 others within reach (more than
    ``min_points``) but ~1/27 of a plane point's count: the cloud goes, the plane stays; counting against
    ``min_points`` alone (``fewer`` infinite) keeps most of the cloud. With 10x the noise, strays of the cloud fit a
    quadric within it, and the surface grown from the kept points must not take them back."""
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(0, 1, size=(20000, 2)), rng.normal(scale=0.002, size=20000)]
    cloud = rng.uniform([0, 0, 0.1], [1, 1, 0.5], size=(2400, 3))
    far = rng.uniform(0, 1, size=(5, 3)) + [0, 0, 2]
    points = np.concatenate([plane, cloud, far])
    keep = scan.find_inliers(points, reach=0.1, min_points=16)
    assert keep[:20000].all() and keep[20000:].sum() <= 0.05 * 2400, keep[20000:].sum()
    assert scan.find_inliers(points, reach=0.1, min_points=16, fewer=np.inf)[20000:22400].mean() > 0.5
    points[:20000, 2] *= 10
    points[20000:22400, 2] += 0.05
    keep = scan.find_inliers(points, reach=0.1, min_points=16)
    assert keep[:20000].all() and keep[20000:].sum() <= 0.15 * 2400, keep[20000:].sum()


def test_outlier_filter_keeps_the_patches_on_the_surface(sphere_with_outliers):
    truth, points, _ = sphere_with_outliers
    far = {}
    for drop in (True, False):
        rec = reconstruct(points, config=dataclasses.replace(OUTLYING, drop_outliers=drop), device="cpu", seed=0)
        far[drop] = np.mean(point_to_mesh_distance(rec.points, truth) / diagonal(truth) > 0.1)
        if drop:
            assert np.mean(mesh_vertex_distance(rec, truth) > 0.1) < 0.01
    assert far[True] < 0.01 and far[False] > 0.05, far  # without the filter, patches float around the outliers


def test_sparse_scan_keeps_its_points():
    """Where a patch's reach holds fewer than min_points neighbours of the typical point, only points far sparser
    than the rest are outliers: a sparse scan is not dropped."""
    points = noisy_scan(sphere_mesh(resolution=20), 120, NOISE, seed=0)
    out = dgp.fit_dense(points, config=dataclasses.replace(CHEAP, radius=0.05, min_points=8), device="cpu")
    assert out.inliers.all() and out.history["outliers_dropped"] == 0


def flat_patches():
    """Two flat patch surfaces (the planar square alone) and the validation lattice over them."""
    surf = dgp._PatchSurfaces(2, (16,), True, torch.Generator().manual_seed(0), "cpu")
    with torch.no_grad():
        surf.mlp.weights[-1].zero_()
        surf.mlp.biases[-1].zero_()
    return surf, dgp._grid(dgp.VAL_GRID, 0.0, "cpu").expand(2, -1, -1)


def test_surface_score_is_the_offset_over_each_points_own_position():
    """The validation score of a flat patch is the mean squared height of the points above it, wherever they lie in
    the plane (padded slots aside); a rippled surface scores the mean square of its height below each point, though
    its crests come closer in space to the points over its troughs (a surface crumpled into the noise must not
    score better on held-out points)."""
    surf, grid = flat_patches()
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.8 * dgp.PLANAR, 0.8 * dgp.PLANAR, size=(2, 50, 2))
    h = rng.normal(scale=0.05, size=(2, 50, 1))
    target = torch.tensor(np.concatenate([xy, h], -1), dtype=torch.float32)
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 25:] = False  # padded slots do not count
    score = dgp._surface_offset(surf, grid, target, mask, 1)
    np.testing.assert_allclose(score.numpy(), [np.mean(h[0] ** 2), np.mean(h[1, :25] ** 2)], rtol=1e-4)

    ripple = 0.15  # amplitude; 2 waves along u

    class Rippled:
        def __call__(self, uv):
            zero = torch.zeros_like(uv[..., 0])
            return surf(uv) + torch.stack([zero, zero, ripple * torch.sin(4 * torch.pi * uv[..., 0])], -1)

    level = target.clone()
    level[..., 2] = ripple  # all points at the crests' height
    u = (level[..., 0] / dgp.PLANAR + 1) / 2  # the points' own u on the flat square
    slope = ripple * 4 * torch.pi * torch.cos(4 * torch.pi * u) / (2 * dgp.PLANAR)
    below = (ripple - ripple * torch.sin(4 * torch.pi * u)) ** 2 / (1 + slope**2)  # along the normal there
    expected = (below * mask).sum(1) / mask.sum(1)
    # not less (the crests do not count; measured from the nearest sample in space, it is ~24 % less); the coarse
    # lattice's tangent planes overestimate it a little
    ratio = dgp._surface_offset(Rippled(), grid, level, mask, 1) / expected
    assert bool(((ratio > 0.95) & (ratio < 1.25)).all()), ratio


def test_wrinkles_at_the_lattice_scale_cannot_hide_the_offsets():
    """A surface wrinkled at the lattice's scale (a surface fitting the noise) over held-out points: measured along
    each cell's own normal, tilted by the wrinkles, the offsets read ~25 % low; along the normals the default
    averages over several cells, the score is the offset over each point's own position at its nearest sample."""
    surf, grid = flat_patches()
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.8 * dgp.PLANAR, 0.8 * dgp.PLANAR, size=(2, 200, 2))
    target = torch.tensor(np.concatenate([xy, rng.normal(scale=0.05, size=(2, 200, 1))], -1), dtype=torch.float32)
    mask = torch.ones(2, 200, dtype=torch.bool)

    def wrinkled(uv):  # 3 waves across the patch each way: a period of 5 lattice cells
        height = 0.15 * torch.sin(6 * torch.pi * uv[..., 0]) * torch.sin(6 * torch.pi * uv[..., 1])
        zero = torch.zeros_like(height)
        return surf(uv) + torch.stack([zero, zero, height], -1)

    with torch.no_grad():
        y = wrinkled(grid)
    near = torch.cdist(target[..., :2], y[..., :2]).argmin(2)
    vertical = ((target[..., 2] - torch.gather(y[..., 2], 1, near)) ** 2).mean(1)
    cells = DGPConfig().val_normal_cells
    ratio = dgp._surface_offset(wrinkled, grid, target, mask, cells) / vertical
    assert bool(((ratio > 0.95) & (ratio < 1.05)).all()), ratio
    assert bool((dgp._surface_offset(wrinkled, grid, target, mask, 1) / vertical < 0.8).all())
    flat = dgp._surface_offset(surf, grid, target, mask, cells) / (target[..., 2] ** 2).mean(1)
    np.testing.assert_allclose(flat.numpy(), 1.0, rtol=1e-4)  # a plane: the averaged normal is its own


def test_automatic_stop_keeps_a_step_near_the_oracle(sphere):
    """The stop (replayed on a run to the cap) keeps weights within 5 % of the best distance to the true surface seen
    along the run. Patches of at most 64 points, 6 of them held out: the former transport score kept step 70, at
    +21 % (the oracle: step 120)."""
    truth, points = sphere
    cfg = dataclasses.replace(BASE, consistency=False, patience=10**6)

    def oracle(dense, normals):
        return {"true": float(point_to_mesh_distance(dense, truth).mean())}

    local = reconstruct(points, config=cfg, device="cpu", seed=0, monitor=oracle).history["local"]
    stop, kept = BASE.stopper("run").replay(local["step"], local["val"])
    true = dict(zip(local["step"], local["true"]))
    assert stop is not None, "the stop did not fire before the cap"
    assert true[kept] <= 1.05 * min(true.values()), (kept, true)


# --------------------------------------------------------------------------------------------------------------------
# real scans: stray clusters, large coordinates, colours, closed and open meshes


def test_a_far_stray_cluster_is_set_aside_and_spans_nothing(sphere):
    truth, points = sphere
    rng = np.random.default_rng(0)
    # two clusters of 12 points (small: under 1 % of the scan's 1,500) 3 and 4 radii off the unit sphere
    strays = np.concatenate([c + rng.normal(scale=0.01, size=(12, 3)) for c in ((4.0, 0, 0), (0, 0, -5.0))])
    rec = reconstruct(np.concatenate([points, strays]), config=BASE, device="cpu", seed=0)
    clean = reconstruct(points, config=BASE, device="cpu", seed=0)
    assert rec.history["quality"]["set_aside"] == 24 and len(rec.history["scan"]["set_aside_clusters"]) == 2
    assert "24 points in 2 far clusters set aside" in rec.summary
    assert rec.patches.radius == pytest.approx(clean.patches.radius)  # the extent is the sphere's
    v = np.asarray(rec.mesh.vertices)
    assert np.abs(v).max() < 1.2  # no surface out to the strays
    d = mesh_vertex_distance(rec, truth)
    assert np.median(d) < 1.5 * np.median(mesh_vertex_distance(clean, truth)) + 1e-4


def test_large_coordinates_give_the_same_mesh_up_to_the_shift(sphere):
    _, points = sphere
    shift = np.array([3.2e6, -1.7e6, 4.1e5])  # UTM-like offsets
    cfg = dataclasses.replace(CHEAP, edge_filter=0)  # its weights and folds amplify rounding (tests/test_mesh.py)
    here = reconstruct(points, config=cfg, device="cpu", seed=0)
    there = reconstruct(points + shift, config=cfg, device="cpu", seed=0)
    back = there.mesh.translate(-shift)
    # the same mesh up to the float64 rounding of the shifted input (1e-10 here), which the fit can amplify a little;
    # in float32 at these offsets a coordinate would be rounded to a quarter of the sphere's radius
    for a, b in ((back, here.mesh), (here.mesh, back)):
        assert point_to_mesh_distance(np.asarray(a.vertices), b).max() < 1e-3
    assert len(back.triangles) == pytest.approx(len(here.mesh.triangles), rel=0.01)


def test_colours_reach_the_mesh_vertices(sphere):
    _, points = sphere
    colors = np.where(points[:, 2:3] > 0, [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]])  # red top, blue bottom
    rec = reconstruct(points, config=CHEAP, colors=colors, device="cpu", seed=0)
    v, c = np.asarray(rec.mesh.vertices), np.asarray(rec.mesh.vertex_colors)
    assert c.shape == v.shape
    top, bottom = v[:, 2] > 0.2, v[:, 2] < -0.2
    assert (c[top, 0] > 0.9).all() and (c[bottom, 2] > 0.9).all()
    with pytest.raises(InputError, match="colors"):
        reconstruct(points, config=CHEAP, colors=colors[:10], device="cpu")


def test_closed_scans_give_watertight_meshes_and_open_ones_stay_open(sphere):
    truth, points = sphere
    rec = reconstruct(points, config=BASE, device="cpu", seed=0)
    q = rec.history["quality"]
    assert (q["components"], q["edge_manifold"], q["watertight"], q["euler"]) == (1, True, True, 2)
    assert q["coverage"] > 0.95 and q["invented"] < 0.05 and rec.history["mesh"][0]["closed"]
    cap = points[points[:, 2] < 0.2]  # the lower part of the sphere only: a bowl, open
    bowl = reconstruct(cap, config=BASE, device="cpu", seed=0)
    assert not bowl.history["mesh"][0]["closed"] and bowl.history["quality"]["boundary_edges"] > 0
    assert np.asarray(bowl.mesh.vertices)[:, 2].max() < 0.35


def test_two_separate_objects_are_two_closed_meshes_with_nothing_between(sphere):
    _, points = sphere
    scene = np.concatenate([points, points * 0.5 + [5.0, 0.0, 0.0]])  # a second, smaller sphere far away
    # closed=True: the patch radius is a share of the whole scene, coarse for either sphere, and "auto" may judge
    # the coarse fit open (mesh_surface's own tests check "auto")
    rec = reconstruct(scene, config=dataclasses.replace(BASE, closed=True), device="cpu", seed=0)
    assert rec.history["scan"]["objects"] == 2 and rec.history["quality"]["set_aside"] == 0
    assert [m["closed"] for m in rec.history["mesh"]] == [True, True]
    q = rec.history["quality"]
    assert (q["components"], q["watertight"], q["euler"]) == (2, True, 4)
    x = np.asarray(rec.mesh.vertices)[:, 0]
    assert not ((x > 1.3) & (x < 4.3)).any()


def test_the_consistency_refit_moves_the_patches_towards_their_consensus(sphere):
    # the same local fit with and without the refit: the refit lowers its own loss (the distance of every patch to
    # the mean of the overlapping predictions) and moves the dense points, but only by a nudge
    _, points = sphere
    cfg = dataclasses.replace(BASE, consistency_epochs=30)
    without = dgp.fit_dense(points, config=dataclasses.replace(cfg, consistency=False), device="cpu", seed=0)
    out = dgp.fit_dense(points, config=cfg, device="cpu", seed=0)
    assert out.history["local"]["loss"] == without.history["local"]["loss"]  # the same local fit (times differ)
    loss = out.history["consistency"]["loss"]
    assert out.history["consistency"]["steps"] == 30 and loss[-1] < 0.95 * loss[0]
    from scipy.spatial import cKDTree

    moved = cKDTree(without.points).query(out.points)[0]  # (which grid points stay within a patch may change)
    diag = 2 * np.sqrt(3)
    assert moved.mean() > 1e-4 * diag and np.median(moved) < 0.01 * diag


def test_the_consensus_weighs_a_patch_less_toward_its_edge():
    # two patches share the points p0 = 0 and p1 = (1, 0, 0); p0 is the first patch's origin and lies 0.95 from
    # the second's. The first predicts p0 where it is, the second 0.2 above it: the partition of unity (1 − |x|²)
    # moves p0 by 0.2 · 0.0975 / 1.0975, the plain mean by 0.1
    from geomprior.patches import Patches

    pts = np.array([[0.0, 0, 0], [1, 0, 0]])
    origin = np.array([[0.0, 0, 0], [0.95, 0, 0]])
    patches = Patches(centers=origin.copy(), index=np.array([[0, 1], [0, 1]]), mask=np.ones((2, 2), bool),
                      origin=origin, scale=np.ones(2), rotation=np.stack([np.eye(3)] * 2), radius=1.0)
    target = torch.from_numpy(patches.to_local(pts)).float()
    predicted = target.clone()
    predicted[1, 0, 2] = 0.2

    class Surfaces:
        def with_normals(self, uv):
            return predicted, torch.tensor([0.0, 0, 1]).expand(2, 2, 3)

    up = np.tile([0.0, 0, 1], (2, 1))
    mask = torch.ones(2, 2, dtype=torch.bool)
    fitted = {b: dgp._consensus(Surfaces(), None, target, mask, patches, pts, up, b)[0] for b in ("partition", "mean")}
    np.testing.assert_allclose(fitted["mean"][0], [0, 0, 0.1], atol=1e-6)
    np.testing.assert_allclose(fitted["partition"][0], [0, 0, 0.2 * 0.0975 / 1.0975], atol=1e-6)
    np.testing.assert_allclose(fitted["partition"][1], pts[1], atol=1e-6)  # both patches predict p1 where it is


def test_bfloat16_steps_fit_as_close_as_float32(torus):
    """The training passes in bfloat16 (weights, optimiser and outputs in float32) fit the torus as well."""
    truth, points = torus
    dist = {}
    for precision in ("float32", "bfloat16"):
        rec = reconstruct(points, config=dataclasses.replace(BASE, precision=precision), device="cpu", seed=0)
        assert rec.points.dtype == np.float64 and rec.history["config"]["precision"] == precision
        dist[precision] = float(np.mean(point_to_mesh_distance(rec.points, truth))) / diagonal(truth)
    assert dist["bfloat16"] < 1.1 * dist["float32"], dist


def test_auto_precision_uses_bfloat16_only_where_the_cpu_computes_it(monkeypatch):
    import geomprior.device as device

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(device, "_cpu_has_bf16", lambda: False)
    assert device.training_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(device, "_cpu_has_bf16", lambda: True)
    assert device.training_dtype("auto", cpu) == torch.bfloat16
    assert device.training_dtype("auto", cuda) == torch.float32
    assert device.training_dtype("bfloat16", cuda) == torch.bfloat16
    with pytest.raises(InputError, match="precision"):
        DGPConfig(precision="half").validate()


def test_local_fit_loss_is_the_matched_distance_over_every_training_slot():
    """The steps leave out trailing slots no patch trains on: the loss at step 0 must still be the mean squared
    matched distance over all training slots, wherever they lie (held-out and padding slots interleaved)."""
    gen = torch.Generator().manual_seed(0)
    p, k = 3, 40
    surf = dgp._PatchSurfaces(p, (16,), True, gen, "cpu")
    uv, target = torch.rand(p, k, 2, generator=gen), torch.randn(p, k, 3, generator=gen) * 0.3
    train = torch.rand(p, k, generator=gen) < 0.6
    train[:, 30:] = False
    train[1, 29] = True  # the last training slot of all
    cfg = dataclasses.replace(BASE, precision="float32", refresh_every=1)
    res = dgp._local_fit(surf, uv, target, train, torch.zeros_like(train), cfg, stage="t", epochs=0, lr=1e-3,
                         stopper=dgp.EarlyStopping(mode="none"), progress=None, monitor=None)
    with torch.no_grad():
        pred = surf(uv)
        idx = dgp.assign(pred, target, train)
        d = ((pred - torch.gather(target, 1, idx[..., None].expand(-1, -1, 3))) ** 2).sum(-1)
    expected = float(((d * train).sum(1) / train.sum(1)).sum())
    assert res.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_an_open_scans_mesh_keeps_its_sparse_half_whole():
    """The open mesh's trim grows with the scan's local spacing (DGPConfig.gap): a 10× sparser half is no hole."""
    from geomprior.metrics import sample_surface

    sphere = sphere_mesh(resolution=30)
    pts, nrm = sample_surface(sphere, 12000, seed=0)
    rng = np.random.default_rng(7)  # not sample_surface's seed: its stream picks the faces
    keep = ((pts[:, 0] < 0) | (rng.random(len(pts)) < 0.1)) & (pts[:, 2] > -0.7)  # a sphere without its bottom
    pts, nrm = pts[keep], nrm[keep]
    truth, _ = sample_surface(sphere, 4000, seed=1)
    truth = truth[(truth[:, 2] > -0.6) & (truth[:, 0] > 0.1)]  # the sparse half, away from the scan's edge
    missing = {}
    for gap in (0.0, DGPConfig().gap):
        cfg = dataclasses.replace(DGPConfig(), poisson_depth=7, gap=gap)
        layout = dgp.scan_layout(pts, cfg)
        local = pts - layout.center  # a perfect fit: its points are the scan's, its dense points too
        mesh, report, _ = dgp.finish(local, nrm, layout, cfg, cfg.radius * layout.diagonal, pts, dense=local)
        assert [m["closed"] for m in report["mesh"]] == [False]
        missing[gap] = np.mean(point_to_mesh_distance(truth, mesh) > 0.02)
    assert missing[DGPConfig().gap] < 0.01 < 0.1 < missing[0.0]


def test_a_scan_in_one_plane_becomes_one_flat_open_piece():
    """Every point at z = 0 (a synthetic sheet, a flat-bed scan): no Qhull error, a flat disc-like mesh."""
    rng = np.random.default_rng(0)
    points = np.c_[rng.random((3000, 2)), np.zeros(3000)]
    rec = reconstruct(points, config=CHEAP, device="cpu", seed=0)
    v = np.asarray(rec.mesh.vertices)
    assert len(rec.mesh.triangles) and np.abs(v[:, 2]).max() < 0.01
    assert rec.history["quality"]["components"] == 1 and not rec.history["mesh"][0]["closed"]


def test_the_trimmed_loss_keeps_the_surface_off_near_outliers(sphere):
    """A fifth of the points pushed 10-20 % outward, within a patch's reach: a one-to-one matching pulls a sample to
    each, so the plain fit bulges toward them; the trimmed loss (DGPConfig.loss_trim) leaves them out, and the other
    points' fitted positions stay on the sphere."""
    truth, points = sphere
    rng = np.random.default_rng(5)
    pushed = rng.random(len(points)) < 0.2
    scan = points * np.where(pushed, 1 + rng.uniform(0.1, 0.2, len(points)), 1.0)[:, None]
    bulge = {}
    for trim in (0.0, 4.0):
        out = dgp.fit_dense(scan, None, dataclasses.replace(BASE, loss_trim=trim), device="cpu", seed=0)
        bulge[trim] = (np.linalg.norm(out.fitted_points[~pushed[out.inliers]], axis=1) - 1).mean()
    assert bulge[0.0] > 0.2 * NOISE * diagonal(truth) and abs(bulge[4.0]) < 0.3 * bulge[0.0], bulge
