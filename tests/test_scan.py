"""geomprior.scan: spacing, clusters, what is set aside, objects and the extent, on small synthetic scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geomprior.errors import InputError
from geomprior.scan import FINE, NOISE_K, QUIET, layout, noise_level, quiet_radius, spacing, voxel_components

SETTINGS = dict(radius=0.05, padding=1.3, min_points=16)


def sphere(n: int, centre=(0.0, 0.0, 0.0), radius: float = 0.5, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return np.asarray(centre) + radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def bumpy(n: int, seed: int = 0) -> np.ndarray:
    """Points on a curved height field over the unit square."""
    xy = np.random.default_rng(seed).random((n, 2))
    return np.c_[xy, 0.1 * np.sin(3 * xy[:, 0]) * np.cos(3 * xy[:, 1])]


def noisy(points: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    return points + np.random.default_rng(seed).normal(scale=sigma, size=points.shape)


def clusters(rng, centres, size: int = 30, spread: float = 0.01) -> np.ndarray:
    return np.concatenate([c + rng.normal(scale=spread, size=(size, 3)) for c in centres])


def test_spacing_of_a_grid_is_its_eighth_neighbour_distance():
    g = np.arange(30) * 0.1
    grid = np.stack(np.meshgrid(g, g, [0.0], indexing="ij"), -1).reshape(-1, 3)
    # on a square grid of step 0.1 the 8th nearest neighbour is a diagonal one: 0.1 * sqrt(2)
    assert spacing(grid) == pytest.approx(0.1 * np.sqrt(2))
    assert spacing(grid[:5]) == 0.0


@pytest.mark.parametrize("size", [0.02, 0.05])
def test_voxel_components_lie_between_two_link_distances(size):
    """The voxel components against the slow reference, graphs of all pairs: points closer than ``size`` are always
    joined, points joined only by steps longer than 2√3 × size never."""
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.random((300, 3)) * [1, 1, 0.05], rng.random((40, 3)) + [2, 0, 0]])
    label = voxel_components(points, size)
    tree = cKDTree(points)
    for reach, finer in ((size, True), (2 * np.sqrt(3) * size, False)):
        _, ref = connected_components(tree.sparse_distance_matrix(tree, reach, output_type="coo_matrix"),
                                      directed=False)
        # finer: every reference component lies within one voxel component; else the other way round
        a, b = (ref, label) if finer else (label, ref)
        for c in np.unique(a):
            assert len(np.unique(b[a == c])) == 1
    assert label[0] == 0  # numbered by their first point


def test_a_far_cluster_is_set_aside_and_the_extent_is_the_surface_s():
    rng = np.random.default_rng(0)
    body = sphere(4000)
    strays = clusters(rng, [(3.0, 0, 0), (0, -4.0, 0.5)])
    out = layout(np.concatenate([body, strays]), **SETTINGS)
    assert out.kept[:4000].all() and not out.kept[4000:].any()
    assert out.diagonal == pytest.approx(layout(body, **SETTINGS).diagonal)
    assert [s["points"] for s in out.set_aside] == [30, 30]
    assert min(s["distance"] for s in out.set_aside) > 2
    assert out.summary()["set_aside_points"] == 60 and out.n_objects == 1
    np.testing.assert_allclose(out.center, (body.min(0) + body.max(0)) / 2)


def test_uniform_outliers_far_away_go_and_those_near_the_surface_stay_for_the_outlier_filter():
    rng = np.random.default_rng(2)
    body = sphere(4000)
    box = rng.uniform(-1.5, 1.5, size=(400, 3))
    box = box[cKDTree(body).query(box)[0] > 0.4][:40]  # beyond 2√3 × half a patch's reach (0.11) of the sphere
    near = sphere(5, radius=0.52, seed=3)  # within a patch's reach of the surface
    out = layout(np.concatenate([body, box, near]), **SETTINGS)
    assert len(box) == 40 and not out.kept[4000:4040].any()
    assert out.kept[4040:].all()


def test_several_large_objects_all_stay_as_separate_objects():
    scene = np.concatenate([sphere(3000), sphere(2000, centre=(5.0, 0, 0), seed=1), sphere(1000, (0, 6.0, 0), seed=2)])
    out = layout(scene, **SETTINGS)
    assert out.kept.all() and out.n_objects == 3
    assert len(np.unique(out.objects[:3000])) == 1 and len(np.unique(out.objects[3000:5000])) == 1
    assert out.diagonal == pytest.approx(np.linalg.norm(np.ptp(scene, axis=0)))


def test_kept_small_clusters_become_objects_of_their_own_without_widening_the_extent():
    rng = np.random.default_rng(0)
    body = sphere(4000)
    strays = clusters(rng, [(3.0, 0, 0)])
    speck = np.array([[0.0, 9.0, 0.0]])  # one point: can never carry a patch
    out = layout(np.concatenate([body, strays, speck]), **SETTINGS, keep_small=True)
    assert out.kept[:4030].all() and not out.kept[4030] and out.n_objects == 2
    assert out.diagonal == pytest.approx(layout(body, **SETTINGS).diagonal)


def test_a_scan_of_stray_points_only_is_refused():
    rng = np.random.default_rng(0)
    specks = clusters(rng, rng.uniform(size=(20, 3)) * 100, size=10)  # clusters too small to carry a patch
    with pytest.raises(InputError, match="no surface to fit"):
        layout(specks, **SETTINGS)
    with pytest.raises(InputError, match="at least 16 points"):
        layout(rng.uniform(size=(10, 3)), **SETTINGS)


def _noise_level_slow(points, reach, samples, seed=0):
    """noise_level one neighbourhood at a time, with numpy's least squares and medians."""
    low, high = NOISE_K
    tree = cKDTree(points)
    spreads = []
    for i in np.random.default_rng(seed).choice(len(points), min(len(points), samples), replace=False):
        dist, near = tree.query(points[i], min(high, len(points)))
        around = points[near[(dist <= reach) | (np.arange(len(near)) < low)]]
        centred = around - around.mean(0)
        height, u, v = (centred @ np.linalg.eigh(centred.T @ centred)[1]).T
        design = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], 1)
        residual = height - design @ np.linalg.lstsq(design, height, rcond=None)[0]
        mad = np.median(np.abs(residual - np.median(residual)))
        spreads.append(1.4826 * mad * np.sqrt(len(around) / (len(around) - 6)))
    return float(np.median(spreads))


def test_noise_level_is_the_one_neighbourhood_at_a_time_estimate():
    points = noisy(bumpy(3000), 0.004)
    for reach in (0.03, 0.08):  # a few neighbours (the fewest allowed) and many
        assert noise_level(points, reach, samples=200) == pytest.approx(_noise_level_slow(points, reach, 200), rel=1e-5)


@pytest.mark.parametrize("surface", [sphere, bumpy])
@pytest.mark.parametrize("sigma", [0.002, 0.005, 0.01])
def test_noise_level_reads_the_noise_of_a_curved_scan_with_stray_points_in_it(surface, sigma):
    points = noisy(surface(5000), sigma)
    stray = np.random.default_rng(2).uniform(points.min(0), points.max(0), size=(100, 3))
    reach = 0.03 * np.linalg.norm(np.ptp(points, axis=0))
    for scan in (points, np.concatenate([points, stray])):
        assert noise_level(scan, reach) == pytest.approx(sigma, rel=0.15)
    assert noise_level(points[:NOISE_K[0]], reach) == 0.0


def test_noise_level_of_a_dense_scan_is_its_noise_too():
    """300,000 points: the nearest NOISE_K[1] would span about the noise (read as 0.6 of it without NOISE_POINTS)."""
    points = noisy(bumpy(300_000), 0.01)
    assert noise_level(points, 0.03 * np.linalg.norm(np.ptp(points, axis=0))) == pytest.approx(0.01, rel=0.15)


def test_a_quiet_scan_gets_smaller_patches_and_a_noisy_one_the_radius_as_set():
    points = bumpy(5000)
    diagonal = np.linalg.norm(np.ptp(points, axis=0))
    assert quiet_radius(noisy(points, 0.001 * diagonal), 0.05, diagonal) == pytest.approx(FINE * 0.05)
    between = quiet_radius(noisy(points, 0.8 * QUIET * diagonal), 0.05, diagonal)
    assert FINE * 0.05 < between < 0.05
    for sigma in (1.2 * QUIET, 3 * QUIET):  # exactly as set: a fit at this noise is the fit without the rule
        assert quiet_radius(noisy(points, sigma * diagonal), 0.05, diagonal) == 0.05
