"""geomprior.uv: blue-noise parameter samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from geomprior.uv import blue_noise, farthest_point_order

COUNTS = np.array([5, 40, 1, 64, 17])


def min_spacing(points: np.ndarray) -> float:
    return float(pdist(points).min())


def test_shape_dtype_range():
    uv = blue_noise(COUNTS, seed=0)
    assert isinstance(uv, torch.Tensor)
    assert uv.shape == (len(COUNTS), COUNTS.max(), 2) and uv.dtype == torch.float32
    assert (uv >= 0).all() and (uv <= 1).all()
    wide = blue_noise(COUNTS, width=80, seed=0)
    assert wide.shape == (len(COUNTS), 80, 2)


def test_padding_repeats_sample_zero():
    uv = blue_noise(COUNTS, width=70, seed=2).numpy()
    for p, c in enumerate(COUNTS):
        np.testing.assert_array_equal(uv[p, c:], np.broadcast_to(uv[p, 0], (70 - c, 2)))
        assert len(np.unique(uv[p, :c], axis=0)) == c  # real samples are distinct


def test_sets_are_prefixes_of_one_ordering_up_to_symmetry():
    # padding aside, widening the batch changes nothing: set p is a prefix
    a = blue_noise(COUNTS, seed=3).numpy()
    b = blue_noise(COUNTS, width=64, seed=3).numpy()
    for p, c in enumerate(COUNTS):
        np.testing.assert_array_equal(a[p, :c], b[p, :c])
    # a symmetry of the square preserves all pairwise distances
    for p in np.flatnonzero(COUNTS >= 5):
        np.testing.assert_allclose(pdist(a[p, :5]), pdist(a[1, :5]), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_prefixes_are_well_spread(seed):
    k = 96
    base = farthest_point_order(k, seed=seed)
    assert base.shape == (k, 2) and (base >= 0).all() and (base <= 1).all()
    uv = blue_noise([k], seed=seed)[0].numpy()
    for n in range(2, k + 1):
        bound = 0.5 / np.sqrt(n)
        assert min_spacing(base[:n]) >= bound, n
        assert min_spacing(uv[:n]) >= bound - 1e-6, n


def test_bound_is_far_above_iid_uniform():
    # the same bound is essentially never met by i.i.d. uniform points: the test above is not vacuous
    rng = np.random.default_rng(0)
    for n in (16, 64):
        bound = 0.5 / np.sqrt(n)
        spacing = np.array([min_spacing(rng.random((n, 2))) for _ in range(200)])
        assert np.mean(spacing >= bound) < 0.02
        assert np.median(spacing) < 0.5 * bound
        assert min_spacing(farthest_point_order(n, seed=0)) > 3 * np.median(spacing)


def test_same_seed_same_samples():
    a = blue_noise(COUNTS, seed=11)
    b = blue_noise(COUNTS, seed=11)
    c = blue_noise(COUNTS, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    np.testing.assert_array_equal(farthest_point_order(20, seed=4), farthest_point_order(20, seed=4))
