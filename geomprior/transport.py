"""Optimal transport between point sets, batched over patches: geomloss Sinkhorn and exact matching.

All functions take padded batches ``x`` (P, K, D), ``y`` (P, K, D) with one ``mask`` (P, K) bool of real
entries shared by both (each patch matches as many samples as it has points). Padding gets zero weight.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

Method = Literal["exact", "sinkhorn"]
METHODS = ("exact", "sinkhorn")


@contextmanager
def _grad_mode_kept():
    """geomloss switches grad mode on globally, even under no_grad: restore it afterwards."""
    enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_grad_enabled(enabled)


def _weights(mask: torch.Tensor, dtype) -> torch.Tensor:
    w = mask.to(dtype)
    return w / w.sum(1, keepdim=True).clamp_min(1)


def _samples_loss(*, blur: float, scaling: float, diameter: float, debias: bool, potentials: bool):
    from geomloss import SamplesLoss

    return SamplesLoss(
        "sinkhorn", p=2, blur=blur, scaling=scaling, diameter=diameter, debias=debias,
        potentials=potentials, backend="tensorized",
    )


def sinkhorn_divergence(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *, blur: float = 0.01, scaling: float = 0.7,
    diameter: float = 2.0,
) -> torch.Tensor:
    """Debiased Sinkhorn divergence S_ε(x, y) per patch, cost ½|x−y|², ε = blur². Returns (P,); differentiable."""
    w = _weights(mask, x.dtype)
    with _grad_mode_kept():
        return _samples_loss(blur=blur, scaling=scaling, diameter=diameter, debias=True, potentials=False)(w, x, w, y)


def sinkhorn_potentials(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *, blur: float = 0.01, scaling: float = 0.7,
    diameter: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dual potentials F (P, K) on x and G (P, K) on y of entropic OT (not debiased)."""
    w = _weights(mask, x.dtype)
    with _grad_mode_kept(), torch.no_grad():
        f, g = _samples_loss(blur=blur, scaling=scaling, diameter=diameter, debias=False, potentials=True)(
            w, x.detach(), w, y.detach()
        )
    return f, g


def log_plan(x, y, mask, f, g, *, blur: float) -> torch.Tensor:
    """log π_ij = log a_i + log b_j + (F_i + G_j − ½|x_i − y_j|²)/ε, (P, K, K); −inf where j is padding."""
    eps = blur**2
    w = _weights(mask, x.dtype)
    cost = 0.5 * torch.cdist(x, y) ** 2
    return w.log()[:, :, None] + w.log()[:, None, :] + (f[:, :, None] + g[:, None, :] - cost) / eps


def assign(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *, method: Method = "exact", blur: float = 0.01,
    scaling: float = 0.7, diameter: float = 2.0,
) -> torch.Tensor:
    """Correspondence of each x_i to one y_j, per patch: (P, K) long (padding maps to itself).

    method "exact": a one-to-one minimum-cost matching (scipy's linear_sum_assignment, one call per patch).
    method "sinkhorn": the entropic plan from geomloss's potentials, hardened by a row argmax in the log domain
    (not one-to-one: several x may take the same y).
    """
    if method not in METHODS:
        raise ValueError(f"unknown matching method {method!r}; valid: {', '.join(METHODS)}")
    x, y = x.detach(), y.detach()
    k = x.shape[1]
    out = torch.arange(k, device=x.device).expand(x.shape[0], k).clone()
    if method == "sinkhorn":
        f, g = sinkhorn_potentials(x, y, mask, blur=blur, scaling=scaling, diameter=diameter)
        best = log_plan(x, y, mask, f, g, blur=blur).argmax(2)
        return torch.where(mask, best, out)
    cost = (torch.cdist(x, y) ** 2).cpu().numpy()
    m = mask.cpu().numpy()
    res = out.cpu().numpy()

    def solve(p):  # scipy releases the GIL: patches run in parallel threads
        real = np.flatnonzero(m[p])
        rows, cols = linear_sum_assignment(cost[p][np.ix_(real, real)])
        res[p, real[rows]] = real[cols]

    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        list(pool.map(solve, range(len(cost))))
    return torch.from_numpy(res).to(x.device)


@torch.no_grad()
def trimmed_weights(sq_dist: torch.Tensor, mask: torch.Tensor, factor: float) -> torch.Tensor:
    """Per-patch loss weights (P, K) of matched pairs: 1 / count for the masked pairs whose squared distance
    ``sq_dist`` (P, K) is at most ``factor`` × the median over the patch's masked pairs, 0 for the others (outliers
    within a patch, which a one-to-one matching would otherwise pull a sample to)."""
    median = torch.nanmedian(torch.where(mask, sq_dist, torch.nan), dim=1, keepdim=True).values
    return _weights(mask & (sq_dist <= factor * median), sq_dist.dtype)
