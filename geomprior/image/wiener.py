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
    """For reference windows of ``guide`` (H, W) every ``stride`` pixels (and the last row and column), the origins
    (R, K, 2) (y, x) of the K = ``group`` windows (the reference first) with the least squared difference to it
    among those whose origin lies within ``radius`` pixels in y and in x, nearest first. K is smaller where the
    image has fewer windows in reach."""
    h, w = guide.shape
    lh, lw = h - block + 1, w - block + 1
    ry, rx = _grid(lh, stride), _grid(lw, stride)
    ref_y, ref_x = (g.flatten() for g in torch.meshgrid(ry, rx, indexing="ij"))  # (R,)
    offsets = torch.arange(-radius, radius + 1)
    k = min(group, min(lh, radius + 1) * min(lw, radius + 1))  # every reference has this many in reach
    padded = F.pad(guide[None, None], (radius,) * 4)[0, 0]
    best = torch.full((len(ref_y), 0), -1.0, dtype=guide.dtype), torch.zeros(len(ref_y), 0, 2, dtype=torch.long)
    for dy in offsets.tolist():  # a running top k over rows of offsets: memory O(R (K + 2 radius + 1))
        shifted = torch.stack([padded[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
                               for dx in offsets.tolist()])
        ssd = F.avg_pool2d(((shifted - guide) ** 2)[:, None], block, stride=1)[:, 0]  # (O, lh, lw)
        dist = ssd[:, ref_y, ref_x].T  # (R, O)
        cy, cx = (ref_y + dy)[:, None].expand_as(dist), ref_x[:, None] + offsets[None]
        dist = dist.masked_fill((cy < 0) | (cy >= lh) | (cx < 0) | (cx >= lw), math.inf)
        if dy == 0:
            dist[:, radius] = -1  # the reference itself comes first
        dist, origins = torch.cat([best[0], dist], 1), torch.cat([best[1], torch.stack([cy, cx], -1)], 1)
        pick = torch.topk(dist, min(k, dist.shape[1]), dim=1, largest=False).indices
        best = dist.gather(1, pick), origins.gather(1, pick[:, :, None].expand(-1, -1, 2))
    return best[1]


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
    stacks = match_blocks(p[0], b, group, radius, stride)  # (R, K, 2)
    d2 = torch.kron(dct_matrix(b), dct_matrix(b))  # 2-D DCT of a flattened window
    dk = dct_matrix(stacks.shape[1])
    inside = (torch.arange(b)[:, None] * w + torch.arange(b)[None]).flatten()  # a window's pixels from its origin
    y, p = y.flatten(1), p.flatten(1)
    out, weight = torch.zeros_like(y), torch.zeros_like(y)
    var = (noise**2)[:, None, None, None]
    for s in range(0, len(stacks), CHUNK):
        pixels = ((stacks[s:s + CHUNK, :, 0] * w + stacks[s:s + CHUNK, :, 1])[..., None] + inside).flatten()
        shape = (c, -1, stacks.shape[1], b * b)  # (C, r, K, b²)
        coef_y, coef_p = (torch.einsum("ab,crkb,lk->crla", d2, x[:, pixels].view(shape), dk) for x in (y, p))
        shrink = coef_p**2 / (coef_p**2 + var)
        est = torch.einsum("ab,crla,lk->crkb", d2, shrink * coef_y, dk)
        wt = 1 / (shrink**2).sum((2, 3), keepdim=True).clamp_min(1e-12)  # (C, r, 1, 1)
        out.index_add_(1, pixels, (est * wt).flatten(1))
        weight.index_add_(1, pixels, wt.expand_as(est).flatten(1))
    out = (out / weight).view(c, h, w)
    if c == 3:
        out = torch.einsum("dc,chw->dhw", torch.linalg.inv(m), out)
    return out.permute(1, 2, 0).clamp(0, 1).float().numpy()
