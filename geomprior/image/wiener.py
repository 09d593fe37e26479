"""Empirical Wiener filtering of a noisy image guided by a pilot estimate of it: the second step of BM3D (Dabov et
al. 2007) without its block matching.

In every ``block`` × ``block`` window (all of them: stride 1) the noisy image's DCT coefficients Y are shrunk by
w = P² / (P² + σ²), P the pilot's coefficients in the same window; the overlapping windows are averaged with the
weight 1 / Σ w² (the inverse of the window's estimated noise variance). Where the pilot says the image has energy,
the noisy coefficient is kept; where it has little, it is dropped: the pilot's own errors do not pass into the
result, only its judgement of where the signal is. Colour images are filtered in an opponent colour space (mean,
red − blue, red + blue − 2 green), where most of the energy lies in the first channel.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from geomprior.errors import InputError

OPPONENT = ((1 / 3, 1 / 3, 1 / 3), (1 / 2, 0.0, -1 / 2), (1 / 4, -1 / 2, 1 / 4))
"""RGB -> opponent colour channels (rows), as BM3D's colour version uses."""


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (n, n), float64: coefficients = D @ x."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def wiener_refine(noisy: np.ndarray, pilot: np.ndarray, sigma: float, *, block: int = 8) -> np.ndarray:
    """The noisy image (H, W, C) in [0, 1] filtered by the empirical Wiener filter of ``pilot`` (same shape), for
    white noise of standard deviation ``sigma`` on the [0, 1] scale; (H, W, C) float32 in [0, 1]."""
    y = torch.as_tensor(np.asarray(noisy), dtype=torch.float64).permute(2, 0, 1)
    p = torch.as_tensor(np.asarray(pilot), dtype=torch.float64).permute(2, 0, 1)
    if y.shape != p.shape:
        raise InputError(f"the pilot is {tuple(p.shape)} (C, H, W), the noisy image {tuple(y.shape)}")
    if not sigma > 0:
        raise InputError(f"sigma must be > 0, got {sigma}")
    c, h, w = y.shape
    noise = torch.full((c,), float(sigma), dtype=torch.float64)
    if c == 3:
        m = torch.tensor(OPPONENT, dtype=torch.float64)
        y, p = torch.einsum("dc,chw->dhw", m, y), torch.einsum("dc,chw->dhw", m, p)
        noise = noise * m.norm(dim=1)  # white noise stays white, its variance scaled by each row's norm²
    b = min(block, h, w)
    d = dct_matrix(b)
    out, weight = torch.zeros_like(y), torch.zeros_like(y)
    var = (noise**2)[:, None, None, None, None]
    for oy in range(b):
        for ox in range(b):
            nh, nw = (h - oy) // b, (w - ox) // b
            if nh == 0 or nw == 0:
                continue
            window = (slice(None), slice(oy, oy + nh * b), slice(ox, ox + nw * b))

            def blocks(x: torch.Tensor) -> torch.Tensor:  # (C, nh, nw, b, b) DCT coefficients
                x = x[window].reshape(c, nh, b, nw, b).transpose(2, 3)
                return torch.einsum("ki,cnmij,lj->cnmkl", d, x, d)

            pc = blocks(p) ** 2
            shrink = pc / (pc + var)
            est = torch.einsum("ki,cnmkl,lj->cnmij", d, shrink * blocks(y), d)
            wt = 1 / (shrink**2).sum((-2, -1), keepdim=True).clamp_min(1e-12)
            out[window] += (est * wt).transpose(2, 3).reshape(c, nh * b, nw * b)
            weight[window] += wt.expand(-1, -1, -1, b, b).transpose(2, 3).reshape(c, nh * b, nw * b)
    out = out / weight
    if c == 3:
        out = torch.einsum("dc,chw->dhw", torch.linalg.inv(m), out)
    return out.permute(1, 2, 0).clamp(0, 1).float().numpy()
