"""Empirical Wiener filtering of a noisy image guided by a pilot estimate of it: the second step of BM3D (Dabov et
al. 2007), the pilot being an untrained prior's output instead of BM3D's first step.

For reference ``block`` × ``block`` windows every ``stride`` pixels, the ``group`` windows most like it in the pilot
(least squared difference, within ``radius`` pixels of it) are stacked; the stack of noisy windows is taken to a 3-D
transform (a 2-D DCT of each window, a DCT along the stack) and its coefficients Y shrunk by w = P² / (P² + σ²),
P the pilot's coefficients of the same stack; the filtered windows go back where they came from, averaged with the
weight 1 / Σ w² (the inverse of the stack's estimated noise variance). Where the pilot says the image has energy,
the noisy coefficient is kept; where it has little, it is dropped: the pilot's own errors do not pass into the
result, only its judgement of where the signal is. Stacking alike windows gives each coefficient several noisy
looks at the same signal. Colour images are matched on the pilot's mean channel and filtered in an opponent colour
space (mean, red − blue, red + blue − 2 green), where most of the energy lies in the first channel.
``group=1, stride=1`` is the filter without block matching: every window on its own.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from geomprior.errors import InputError

OPPONENT = ((1 / 3, 1 / 3, 1 / 3), (1 / 2, 0.0, -1 / 2), (1 / 4, -1 / 2, 1 / 4))
"""RGB -> opponent colour channels (rows), as BM3D's colour version uses."""

CHUNK = 2048  # reference windows filtered at once (bounds the memory of the stacks)


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (n, n), float64: coefficients = D @ x."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def _grid(length: int, stride: int) -> torch.Tensor:
    """Window origins 0, stride, 2·stride, ... and always the last one, length - 1."""
    return torch.unique(torch.cat([torch.arange(0, length, stride), torch.tensor([length - 1])]))


def match_blocks(guide: torch.Tensor, block: int, group: int, radius: int, stride: int) -> torch.Tensor:
    """For reference windows of ``guide`` (H, W) every ``stride`` pixels (and the last row and column), the indices
    (R, K) of the K = ``group`` windows (the reference first) with the least squared difference to it whose origin
    lies within ``radius`` pixels in y and in x; indices into the (H - block + 1) × (W - block + 1) window
    origins, row-major. K is smaller where the image has fewer windows in reach."""
    h, w = guide.shape
    lh, lw = h - block + 1, w - block + 1
    ry, rx = _grid(lh, stride), _grid(lw, stride)
    offsets = torch.arange(-radius, radius + 1)
    k = min(group, min(lh, radius + 1) * min(lw, radius + 1))  # every reference has this many in reach
    padded = F.pad(guide[None, None], (radius,) * 4)[0, 0]
    dist = []
    for dy in offsets.tolist():
        shifted = torch.stack([padded[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
                               for dx in offsets.tolist()])
        ssd = F.avg_pool2d(((shifted - guide) ** 2)[:, None], block, stride=1)[:, 0]  # (O, lh, lw)
        dist.append(ssd[:, ry][:, :, rx].flatten(1))
    dist = torch.cat(dist)  # (O², R), offsets dy-major
    oy = (ry[:, None] + offsets.repeat_interleave(len(offsets))[None]).repeat_interleave(len(rx), 0)
    ox = (rx[:, None] + offsets.repeat(len(offsets))[None]).repeat(len(ry), 1)
    outside = (oy < 0) | (oy >= lh) | (ox < 0) | (ox >= lw)  # (R, O²)
    dist = dist.T.masked_fill(outside, math.inf)
    dist[:, len(offsets) ** 2 // 2] = -1  # the reference itself comes first
    pick = torch.topk(dist, k, dim=1, largest=False).indices
    return oy.gather(1, pick) * lw + ox.gather(1, pick)


def wiener_refine(noisy: np.ndarray, pilot: np.ndarray, sigma: float, *, block: int = 8, group: int = 16,
                  radius: int = 19, stride: int = 3) -> np.ndarray:
    """The noisy image (H, W, C) in [0, 1] filtered by the empirical Wiener filter of ``pilot`` (same shape), for
    white noise of standard deviation ``sigma`` on the [0, 1] scale, over stacks of ``group`` alike windows
    (module docstring); (H, W, C) float32 in [0, 1]."""
    y = torch.as_tensor(np.asarray(noisy), dtype=torch.float64).permute(2, 0, 1)
    p = torch.as_tensor(np.asarray(pilot), dtype=torch.float64).permute(2, 0, 1)
    if y.shape != p.shape:
        raise InputError(f"the pilot is {tuple(p.shape)} (C, H, W), the noisy image {tuple(y.shape)}")
    if not sigma > 0:
        raise InputError(f"sigma must be > 0, got {sigma}")
    if min(block, group, stride) < 1 or radius < 0:
        raise InputError(f"block, group and stride must be >= 1 and radius >= 0, got {block}, {group}, {stride}, "
                         f"{radius}")
    c, h, w = y.shape
    noise = torch.full((c,), float(sigma), dtype=torch.float64)
    if c == 3:
        m = torch.tensor(OPPONENT, dtype=torch.float64)
        y, p = torch.einsum("dc,chw->dhw", m, y), torch.einsum("dc,chw->dhw", m, p)
        noise = noise * m.norm(dim=1)  # white noise stays white, its variance scaled by each row's norm²
    b = min(block, h, w)
    stacks = match_blocks(p[0], b, group, radius, stride)  # (R, K)
    d2 = torch.kron(dct_matrix(b), dct_matrix(b))  # 2-D DCT of a flattened window
    dk = dct_matrix(stacks.shape[1])
    windows_y, windows_p = (F.unfold(x[None], b)[0].view(c, b * b, -1) for x in (y, p))
    out = torch.zeros_like(windows_y)
    weight = torch.zeros(c, 1, windows_y.shape[2], dtype=torch.float64)
    var = (noise**2)[:, None, None, None]
    for s in range(0, len(stacks), CHUNK):
        idx = stacks[s:s + CHUNK]  # (r, K)
        coef_y, coef_p = (torch.einsum("ab,cbrk,lk->carl", d2, x[:, :, idx], dk) for x in (windows_y, windows_p))
        shrink = coef_p**2 / (coef_p**2 + var)
        est = torch.einsum("ab,carl,lk->cbrk", d2, shrink * coef_y, dk)
        wt = 1 / (shrink**2).sum((1, 3)).clamp_min(1e-12)  # (C, r)
        out.index_add_(2, idx.flatten(), (est * wt[:, None, :, None]).flatten(2))
        weight.index_add_(2, idx.flatten(), wt[:, None, :, None].expand(-1, -1, -1, idx.shape[1]).flatten(2))
    fold = lambda x: F.fold(x.reshape(1, -1, x.shape[2]), (h, w), b)[0]  # noqa: E731  windows summed in place
    out = fold(out) / fold(weight.expand(-1, b * b, -1))
    if c == 3:
        out = torch.einsum("dc,chw->dhw", torch.linalg.inv(m), out)
    return out.permute(1, 2, 0).clamp(0, 1).float().numpy()
