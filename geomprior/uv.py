"""Blue-noise parameter samples in [0, 1]²."""

from __future__ import annotations

import numpy as np
import torch


def farthest_point_order(k: int, *, oversample: int = 16, seed: int = 0) -> np.ndarray:
    """(k, 2) points in [0, 1]² in farthest-point order: every prefix is a Poisson-disk (blue-noise) set.

    Greedy farthest-point selection from ``oversample × k`` uniform candidates; prefix n has minimum spacing
    at least its own covering radius, so the first n points are well spread for every n.
    """
    rng = np.random.default_rng(seed)
    cand = rng.random((oversample * k, 2))
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = np.argmin(np.linalg.norm(cand - 0.5, axis=1))
    dist = np.linalg.norm(cand - cand[chosen[0]], axis=1)
    for i in range(1, k):
        chosen[i] = np.argmax(dist)
        np.minimum(dist, np.linalg.norm(cand - cand[chosen[i]], axis=1), out=dist)
    return cand[chosen]


def blue_noise(counts: np.ndarray, *, width: int | None = None, seed: int = 0) -> torch.Tensor:
    """Blue-noise samples in the unit square, ``counts[p]`` of them for set p.

    counts : (P,) int
    Returns (P, K, 2) float32, K = width or max(counts). Set p is the first counts[p] points of one
    farthest-point ordering, under a random symmetry of the square per set; entries past counts[p] repeat
    sample 0 (padding, to be masked).
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = int(width or counts.max())
    base = farthest_point_order(k, seed=seed)
    rng = np.random.default_rng(seed + 1)
    sym = rng.integers(0, 8, len(counts))
    out = np.broadcast_to(base, (len(counts), k, 2)).copy()
    out[sym & 1 == 1, :, 0] = 1 - out[sym & 1 == 1, :, 0]
    out[sym & 2 == 2, :, 1] = 1 - out[sym & 2 == 2, :, 1]
    out[sym & 4 == 4] = out[sym & 4 == 4][..., ::-1]
    out = np.where(np.arange(k)[None, :, None] < counts[:, None, None], out, out[:, :1])
    return torch.from_numpy(out).float()
