"""geomprior.metrics: evaluation conventions of DESIGN.md section 6."""

from __future__ import annotations

import math

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from geomprior.errors import InputError  # noqa: E402
from geomprior.metrics import METRIC_KEYS, evaluate, point_to_mesh_distance, sample_surface  # noqa: E402
from geomprior.synthetic import noisy_scan, sphere_mesh, torus_mesh  # noqa: E402

N = 30_000  # samples: enough for these checks, fast


@pytest.fixture(scope="module")
def sphere():
    return sphere_mesh(resolution=60)


def test_keys_and_types(sphere):
    r = evaluate(sphere, sphere, n_samples=2000)
    assert tuple(r) == METRIC_KEYS == ("chamfer_l1", "hausdorff", "normal_consistency", "fscore")
    assert all(type(v) is float for v in r.values())


def test_mesh_against_itself(sphere):
    r = evaluate(sphere, sphere, n_samples=N)
    # two independent samplings of one surface: only the sampling gap remains
    assert r["chamfer_l1"] < 0.004
    assert r["hausdorff"] < 0.02
    assert r["normal_consistency"] > 0.999
    assert r["fscore"] == pytest.approx(1.0, abs=1e-3)


def test_sphere_vs_larger_sphere(sphere):
    big = sphere_mesh(radius=1.1, resolution=60)
    r = evaluate(sphere, big, n_samples=N)
    gap = 0.1 / (2 * math.sqrt(3) * 1.1)  # radius gap / reference diagonal
    assert r["chamfer_l1"] == pytest.approx(gap, rel=0.05)
    assert gap <= r["hausdorff"] < 1.3 * gap
    assert r["normal_consistency"] > 0.999
    assert r["fscore"] == 0.0  # gap (2.6% of the diagonal) > 1% threshold
    assert evaluate(sphere, big, n_samples=N, fscore_threshold=0.05)["fscore"] == pytest.approx(1.0)


def test_surfaces_that_differ_in_one_part(sphere):
    # the cap above z = 0.9 (5 % of the area) pushed out by 0.2: Hausdorff sees the bump's height, Chamfer its
    # share of the area, the F-score the share of the surface farther than the threshold
    bumped = o3d.geometry.TriangleMesh(sphere)
    v = np.asarray(bumped.vertices)
    cap = v[:, 2] > 0.9
    v[cap] *= 1.2
    bumped.vertices = o3d.utility.Vector3dVector(v)
    r = evaluate(bumped, sphere, n_samples=N)
    diag = 2 * math.sqrt(3)
    assert r["hausdorff"] == pytest.approx(0.2 / diag, rel=0.1)
    assert r["chamfer_l1"] < r["hausdorff"] / 5
    assert 0.85 < r["fscore"] < 0.99
    assert 0.9 < r["normal_consistency"] < 0.999


def test_point_set_reference_matches_mesh_reference(sphere):
    big = sphere_mesh(radius=1.1, resolution=60)
    samples = sample_surface(big, N, seed=1)
    as_mesh = evaluate(sphere, big, n_samples=N)
    as_points = evaluate(sphere, samples, n_samples=N)
    for k in METRIC_KEYS:
        assert as_points[k] == pytest.approx(as_mesh[k], rel=0.05, abs=1e-3)
    with pytest.raises(InputError):
        evaluate(sphere, (samples[0], samples[1][:10]))


def test_scaled_by_reference_diagonal(sphere):
    big = sphere_mesh(radius=1.1, resolution=60)
    r1 = evaluate(sphere, big, n_samples=5000)
    s, b = o3d.geometry.TriangleMesh(sphere), o3d.geometry.TriangleMesh(big)
    s.scale(10.0, center=(0, 0, 0))
    b.scale(10.0, center=(0, 0, 0))
    s.translate((3.0, -2.0, 5.0))
    b.translate((3.0, -2.0, 5.0))
    r10 = evaluate(s, b, n_samples=5000)
    for k in METRIC_KEYS:
        assert r10[k] == pytest.approx(r1[k], rel=1e-6, abs=1e-9)


def test_same_seed_same_numbers_other_seed_differs():
    torus = torus_mesh()
    a = evaluate(sphere_mesh(resolution=30), torus, n_samples=5000, seed=3)
    b = evaluate(sphere_mesh(resolution=30), torus, n_samples=5000, seed=3)
    c = evaluate(sphere_mesh(resolution=30), torus, n_samples=5000, seed=4)
    assert a == b
    assert a != c


def test_sample_surface_on_sphere(sphere):
    p, n = sample_surface(sphere, 1000, seed=0)
    assert p.shape == n.shape == (1000, 3)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=0.01)
    assert np.all(np.sum(p * n, axis=1) > 0.99)  # outward face normals
    p2, _ = sample_surface(sphere, 1000, seed=0)
    np.testing.assert_array_equal(p, p2)


def test_point_to_mesh_distance(sphere):
    pts = np.array([[0, 0, 2.0], [0, 0, 0], [0.5, 0.0, 0.0], [3.0, 0, 0]])
    d = point_to_mesh_distance(pts, sphere)
    assert d.shape == (4,) and d.dtype == np.float64
    np.testing.assert_allclose(d, [1.0, 1.0, 0.5, 2.0], atol=2e-3)
    scan = noisy_scan(sphere, 2000, 0.0, 0)
    assert point_to_mesh_distance(scan, sphere).max() < 1e-5


def test_noisy_scan_noise_level_and_determinism():
    torus = torus_mesh()
    a = noisy_scan(torus, 3000, 0.01, 7)
    np.testing.assert_array_equal(a, noisy_scan(torus, 3000, 0.01, 7))
    v = np.asarray(torus.vertices)
    sigma = 0.01 * np.linalg.norm(v.max(0) - v.min(0))
    d = point_to_mesh_distance(a, torus)
    # distance to the surface of isotropic noise: ≈ |normal component|, mean σ·sqrt(2/π)
    assert d.mean() == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.1)


def test_bad_inputs(sphere):
    with pytest.raises(InputError):
        evaluate(sphere, o3d.geometry.TriangleMesh())
    with pytest.raises(InputError):
        evaluate("mesh.ply", sphere)
    with pytest.raises(InputError):
        evaluate(sphere, sphere, fscore_threshold=0)
    with pytest.raises(InputError):
        point_to_mesh_distance(np.zeros((3, 2)), sphere)


def test_torus_scan_lies_on_the_torus_with_its_noise():
    from geomprior.synthetic import torus_scan

    clean, normals = torus_scan(20_000, 0.0, seed=3)
    ring = np.hypot(clean[:, 0], clean[:, 1]) - 1.0
    np.testing.assert_allclose(np.hypot(ring, clean[:, 2]), 0.3, atol=1e-9)  # on the surface
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)
    # uniform in area: the outer half (farther from the axis) holds more points, in the ratio of the areas
    outer = (ring > 0).mean()
    assert outer == pytest.approx(0.5 + 0.3 / np.pi, abs=0.01)  # (pi R + 2 r) / (2 pi R)
    noisy, _ = torus_scan(20_000, 0.005, seed=3)
    again, _ = torus_scan(20_000, 0.005, seed=3)
    np.testing.assert_array_equal(noisy, again)
    diag = np.linalg.norm([2.6, 2.6, 0.6])
    assert np.std(noisy - clean) == pytest.approx(0.005 * diag, rel=0.05)


# --------------------------------------------------------------------------------------------------------------------
# what distances do not see, and quality without a reference


def test_mesh_facts_against_open3d():
    import open3d as o3d

    from geomprior.metrics import mesh_facts

    sphere = sphere_mesh(resolution=20)
    torus = o3d.geometry.TriangleMesh.create_torus()
    assert mesh_facts(sphere) == {"components": 1, "edge_manifold": True, "boundary_edges": 0, "watertight": True,
                                  "euler": 2}
    two = sphere + o3d.geometry.TriangleMesh(sphere).translate((5, 0, 0))
    assert mesh_facts(two)["components"] == 2 and mesh_facts(two)["euler"] == 4
    assert mesh_facts(torus)["euler"] == 0
    cut = o3d.geometry.TriangleMesh(sphere)
    cut.remove_triangles_by_index([0, 1, 2])
    facts = mesh_facts(cut)
    assert not facts["watertight"] and facts["boundary_edges"] > 0
    for mesh in (sphere, torus, cut, two):  # the slow reference: open3d's own checks
        assert mesh_facts(mesh)["edge_manifold"] == mesh.is_edge_manifold(True)
        assert mesh_facts(mesh)["euler"] == mesh.euler_poincare_characteristic()
        assert mesh_facts(mesh)["components"] == len(mesh.cluster_connected_triangles()[1])
    fin = o3d.geometry.TriangleMesh(sphere)  # a third triangle on an edge
    tri = np.asarray(fin.triangles)
    fin.vertices.append([9.0, 9.0, 9.0])
    fin.triangles.append([tri[0, 0], tri[0, 1], len(fin.vertices) - 1])
    assert not mesh_facts(fin)["edge_manifold"] and not mesh_facts(fin)["watertight"]
    assert mesh_facts(o3d.geometry.TriangleMesh())["components"] == 0


def test_scan_quality_coverage_and_invented_surface():
    from geomprior.metrics import sample_surface, scan_quality

    sphere = sphere_mesh(resolution=40)
    points, _ = sample_surface(sphere, 4000, seed=0)
    full = scan_quality(sphere, points, spacing=0.05)
    assert full["coverage"] == 1.0 and full["invented"] == 0.0 and full["watertight"]
    top = points[points[:, 2] > 0]  # a scan of the upper half: the lower half of the mesh is invented
    half = scan_quality(sphere, top, spacing=0.05)
    assert half["coverage"] == 1.0 and 0.3 < half["invented"] < 0.45  # beyond 0.3 of the upper half
    off = np.concatenate([points, points[:100] * 2.0])  # 100 points far off the mesh
    assert scan_quality(sphere, off, spacing=0.05)["coverage"] == pytest.approx(4000 / 4100)
    shifted = o3d_translate(sphere, (4e6, 0, 0))  # far from the origin: the same numbers
    assert scan_quality(shifted, top + [4e6, 0, 0], spacing=0.05)["invented"] == pytest.approx(half["invented"],
                                                                                                 abs=1e-3)


def o3d_translate(mesh, offset):
    import open3d as o3d

    return o3d.geometry.TriangleMesh(mesh).translate(offset)
