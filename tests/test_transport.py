"""geomprior.transport: batched, padded OT against per-patch calls, scipy and geomloss on unpadded sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch.testing import assert_close

from geomprior.transport import METHODS, assign, log_plan, sinkhorn_divergence, sinkhorn_potentials, trimmed_weights

COUNTS = [12, 5, 9, 1, 7, 12, 3]
K = max(COUNTS)


def ragged(seed: int = 0, dtype=torch.float32, spread: float = 0.5):
    """x, y (P, K, 3) inside the unit ball with a prefix mask of COUNTS real entries; padding is junk."""
    g = torch.Generator().manual_seed(seed)
    P = len(COUNTS)
    x = (torch.rand(P, K, 3, generator=g, dtype=dtype) * 2 - 1) * spread
    y = (torch.rand(P, K, 3, generator=g, dtype=dtype) * 2 - 1) * spread
    mask = torch.arange(K)[None] < torch.tensor(COUNTS)[:, None]
    junk = (torch.rand(P, K, 3, generator=g, dtype=dtype) * 2 - 1) * spread
    x = torch.where(mask[..., None], x, junk)
    y = torch.where(mask[..., None], y, junk.flip(1))
    return x, y, mask


def test_exact_is_a_permutation_and_matches_scipy():
    x, y, mask = ragged(dtype=torch.float64)
    idx = assign(x, y, mask, method="exact")
    assert idx.shape == mask.shape and idx.dtype == torch.long
    for p, c in enumerate(COUNTS):
        real = idx[p, :c].numpy()
        assert sorted(real.tolist()) == list(range(c)), "not a permutation of the real slots"
        assert idx[p, c:].tolist() == list(range(c, K)), "padding must map to itself"
        xp, yp = x[p, :c].numpy(), y[p, :c].numpy()
        cost = ((xp[:, None] - yp[None]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        np.testing.assert_array_equal(real[rows], cols)


def test_exact_minimises_total_cost():
    # against every permutation, for a patch small enough to enumerate
    import itertools

    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(1, 6, 3, generator=g, dtype=torch.float64), torch.rand(1, 6, 3, generator=g, dtype=torch.float64)
    idx = assign(x, y, torch.ones(1, 6, dtype=torch.bool), method="exact")[0]
    cost = ((x[0, :, None] - y[0, None]) ** 2).sum(-1)
    best = min(float(cost[range(6), list(perm)].sum()) for perm in itertools.permutations(range(6)))
    assert float(cost[range(6), idx].sum()) == pytest.approx(best, rel=1e-12)


def test_padded_batch_equals_per_patch_calls_exact():
    x, y, mask = ragged(seed=1)
    idx = assign(x, y, mask, method="exact")
    for p, c in enumerate(COUNTS):
        one = assign(x[p : p + 1, :c], y[p : p + 1, :c], torch.ones(1, c, dtype=torch.bool), method="exact")
        assert idx[p, :c].tolist() == one[0].tolist(), f"patch {p}"
        assert idx[p, c:].tolist() == list(range(c, K))


def test_padded_batch_equals_per_patch_calls_sinkhorn():
    x, y, mask = ragged(seed=1)
    blur = 0.01
    f, g = sinkhorn_potentials(x, y, mask, blur=blur)
    idx = assign(x, y, mask, method="sinkhorn", blur=blur)
    for p, c in enumerate(COUNTS):
        xp, yp, m1 = x[p : p + 1, :c], y[p : p + 1, :c], torch.ones(1, c, dtype=torch.bool)
        f1, g1 = sinkhorn_potentials(xp, yp, m1, blur=blur)
        assert_close(f[p, :c], f1[0], rtol=0, atol=1e-6)
        assert_close(g[p, :c], g1[0], rtol=0, atol=1e-6)
        one = assign(xp, yp, m1, method="sinkhorn", blur=blur)[0]
        # same choice up to ties (the entropic plan often splits a row's mass evenly between two columns):
        # the batched pick is a row maximiser of the per-patch plan
        lp1 = log_plan(xp, yp, m1, f1, g1, blur=blur)[0]
        chosen = lp1[torch.arange(c), idx[p, :c]]
        assert (chosen >= lp1.max(1).values - 1e-2).all(), f"patch {p}"
        assert (idx[p, :c] == one).float().mean() >= 0.8
        assert idx[p, c:].tolist() == list(range(c, K))


@pytest.mark.parametrize("method", METHODS)
def test_well_separated_points_recover_identity(method):
    # y = a shuffled grid (spacing 0.4), x = y slightly perturbed: the best matching undoes the shuffle
    g = torch.Generator().manual_seed(3)
    t = torch.tensor([-0.4, 0.0, 0.4])
    grid = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)[:K]
    P = len(COUNTS)
    perm = torch.stack([torch.randperm(K, generator=g) for _ in range(P)])
    y = grid[perm]
    x = y + 0.02 * torch.randn(P, K, 3, generator=g)
    mask = torch.arange(K)[None] < torch.tensor(COUNTS)[:, None]
    idx = assign(x, y, mask, method=method)
    assert torch.equal(idx, torch.arange(K).expand(P, K))


def test_sinkhorn_plan_is_nearly_a_coupling():
    x, y, mask = ragged(seed=4, spread=0.3)
    blur = 0.05
    f, g = sinkhorn_potentials(x, y, mask, blur=blur, scaling=0.9)
    lp = log_plan(x, y, mask, f, g, blur=blur)
    assert lp.shape == (len(COUNTS), K, K)
    assert torch.isneginf(lp[~mask[:, None, :].expand_as(lp)]).all()  # padding columns get no mass
    assert torch.isneginf(lp[~mask[:, :, None].expand_as(lp)]).all()  # nor padding rows
    plan = lp.double().exp()
    w = mask.double() / mask.sum(1, keepdim=True)
    # geomloss's eps-scaling stops after one pass per eps, so the marginals are only approximate
    assert_close(plan.sum((1, 2)), torch.ones(len(COUNTS), dtype=torch.float64), atol=0.05, rtol=0)
    assert_close(plan.sum(1), w, atol=0.05, rtol=0)
    assert_close(plan.sum(2), w, atol=0.05, rtol=0)


def _per_patch_geomloss(x, y, blur, scaling, diameter):
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, diameter=diameter, debias=True,
                       backend="tensorized")
    return loss(x, y)


@pytest.mark.parametrize("blur,scaling", [(0.01, 0.7), (0.05, 0.9)])
def test_sinkhorn_divergence_equals_per_patch_geomloss(blur, scaling):
    x, y, mask = ragged(seed=5)
    x.requires_grad_(True)
    s = sinkhorn_divergence(x, y, mask, blur=blur, scaling=scaling, diameter=2.0)
    assert s.shape == (len(COUNTS),)
    s.sum().backward()
    for p, c in enumerate(COUNTS):
        xp = x[p, :c].detach().clone().requires_grad_(True)
        ref = _per_patch_geomloss(xp, y[p, :c], blur, scaling, 2.0)
        ref.backward()
        assert_close(s[p].detach(), ref.detach(), rtol=1e-4, atol=1e-6)
        assert_close(x.grad[p, :c], xp.grad, rtol=1e-3, atol=1e-6)
        if c < K:  # zero-weight padding gets no gradient
            assert x.grad[p, c:].abs().max() == 0
    assert (s.detach() > -1e-5).all()


def test_sinkhorn_divergence_of_a_set_with_itself_is_zero():
    x, _, mask = ragged(seed=6)
    s = sinkhorn_divergence(x, x.clone(), mask)
    assert_close(s, torch.zeros_like(s), atol=1e-5, rtol=0)


def test_grad_mode_restored_under_no_grad():
    x, y, mask = ragged(seed=7)
    with torch.no_grad():
        sinkhorn_divergence(x, y, mask)
        assert not torch.is_grad_enabled()
        sinkhorn_potentials(x, y, mask)
        assert not torch.is_grad_enabled()
        assign(x, y, mask, method="sinkhorn")
        assert not torch.is_grad_enabled()
        assign(x, y, mask, method="exact")
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    # and grad mode stays on when it was on
    sinkhorn_potentials(x, y, mask)
    assert torch.is_grad_enabled()


def test_unknown_method_lists_valid_ones():
    x, y, mask = ragged()
    with pytest.raises(ValueError, match="unknown") as err:
        assign(x, y, mask, method="hungarian")
    assert "exact" in str(err.value) and "sinkhorn" in str(err.value) and "hungarian" in str(err.value)


def test_trimmed_weights_match_a_per_patch_median_rule():
    gen = torch.Generator().manual_seed(0)
    sq = torch.rand(4, 30, generator=gen) ** 3
    mask = torch.rand(4, 30, generator=gen) < 0.7
    mask[3] = False  # a patch with no pairs: all weights zero
    w = trimmed_weights(sq, mask, 4.0)
    for p in range(4):
        real = mask[p].numpy()
        vals = np.sort(sq[p].numpy()[real])
        lower_median = vals[(len(vals) - 1) // 2] if len(vals) else np.inf  # torch's median of an even count
        keep = real & (sq[p].numpy() <= 4.0 * lower_median)
        expected = keep / max(keep.sum(), 1)
        np.testing.assert_allclose(w[p].numpy(), expected, rtol=1e-6)
    assert float(w[:3].sum()) == pytest.approx(3.0) and (w[:3] > 0).sum() < mask[:3].sum()
