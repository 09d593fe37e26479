"""Images as functions: a coordinate MLP [0,1]² → (0,1)^C per tile, all tiles one :class:`BatchedMLP`.

The image is cut into overlapping tiles of equal size (:class:`Tiling`); tile p is the function
φ_p(u, v) = sigmoid(MLP_p(γ(2u−1, 2v−1))) on the tile's own unit square, where γ is the identity or, with
``fourier = L``, the coordinates followed by sin/cos(2^j π ·) for j < L. The tiles are one batch of
independent networks (P = number of tiles), fitted together by :func:`geomprior.fit.fit`; the image is their
blend with smooth weights (raised-cosine ramps across each overlap), so seams do not show.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from geomprior.errors import InputError
from geomprior.presets import check_preset
from geomprior.nets import BatchedMLP

Preset = Literal["fast", "default", "quality"]


@dataclass(frozen=True)
class MLPConfig:
    """Settings of the tiled coordinate MLP and its optimisation."""

    widths: tuple[int, ...] = (64, 64, 64)  # hidden layer widths of each tile's MLP
    tile: int = 16  # tile side in pixels (tiles are min(tile, H) × min(tile, W))
    overlap: int = 4  # pixels shared by neighbouring tiles, blended with smooth weights
    fourier: int = 0  # octaves of Fourier positional encoding per coordinate (0 = off: raw coordinates)
    lr: float = 2e-3  # Adam learning rate
    last_scale: float = 1.0  # scale of the last layer's initial weights

    def __post_init__(self):
        if not self.widths or min(self.widths) < 1:
            raise InputError(f"widths must be positive, got {self.widths}")
        if self.tile < 2 or not 0 <= self.overlap < self.tile:
            raise InputError(f"need tile >= 2 and 0 <= overlap < tile, got tile {self.tile}, overlap {self.overlap}")
        if self.fourier < 0:
            raise InputError(f"fourier must be >= 0, got {self.fourier}")

    @classmethod
    def preset(cls, name: Preset = "default", **changes) -> "MLPConfig":
        """fast: 2×32 hidden units; default: 3×64; quality: 3×128 (all on 16-pixel tiles overlapping by 4)."""
        check_preset(name)
        base = {
            "fast": cls(widths=(32, 32)),
            "default": cls(),
            "quality": cls(widths=(128, 128, 128)),
        }[name]
        return dataclasses.replace(base, **changes)


def _starts(n: int, t: int, overlap: int) -> list[int]:
    if t >= n:
        return [0]
    step = t - overlap
    starts = list(range(0, n - t, step))
    starts.append(n - t)
    return sorted(set(starts))


def _ramp(t: int, overlap: int) -> torch.Tensor:
    """(t,) weights: raised-cosine ramps over ``overlap`` pixels at both ends, 1 in between (all > 0)."""
    w = torch.ones(t, dtype=torch.float64)
    if overlap > 0:
        i = torch.arange(min(overlap, t), dtype=torch.float64)
        r = torch.sin(0.5 * math.pi * (i + 0.5) / overlap) ** 2
        w[: len(r)] = torch.minimum(w[: len(r)], r)
        w[t - len(r):] = torch.minimum(w[t - len(r):], r.flip(0))
    return w


class Tiling:
    """Overlapping equal tiles covering an H × W image, with blending weights.

    origins : (P, 2) long, top-left (row, column) of each tile
    index   : (P, M) long, flat pixel index (row·W + column) of each tile pixel, M = th·tw, row-major in the tile
    weight  : (M,) float64 blending weight of each tile pixel
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int):
        if height < 1 or width < 1:
            raise InputError(f"image must be at least 1x1, got {width}x{height}")
        self.height, self.width = int(height), int(width)
        self.th, self.tw = min(tile, self.height), min(tile, self.width)
        oy = overlap if self.th == tile else 0
        ox = overlap if self.tw == tile else 0
        ys, xs = _starts(self.height, self.th, oy), _starts(self.width, self.tw, ox)
        self.origins = torch.tensor([(y, x) for y in ys for x in xs], dtype=torch.long)
        dy, dx = torch.meshgrid(torch.arange(self.th), torch.arange(self.tw), indexing="ij")
        rows = self.origins[:, :1] + dy.reshape(1, -1)
        cols = self.origins[:, 1:] + dx.reshape(1, -1)
        self.index = rows * self.width + cols
        self.weight = (_ramp(self.th, oy)[:, None] * _ramp(self.tw, ox)[None, :]).reshape(-1)

    @property
    def n(self) -> int:
        """Number of tiles P."""
        return self.origins.shape[0]

    def coordinates(self, device=None) -> torch.Tensor:
        """(M, 2) pixel-centre coordinates (u, v) in [0, 1]² of a tile's pixels (u along columns)."""
        v, u = torch.meshgrid((torch.arange(self.th) + 0.5) / self.th, (torch.arange(self.tw) + 0.5) / self.tw,
                              indexing="ij")
        return torch.stack([u.reshape(-1), v.reshape(-1)], dim=1).to(device=device, dtype=torch.float32)

    def split(self, image: torch.Tensor) -> torch.Tensor:
        """image (H, W, C) -> tiles (P, M, C)."""
        if image.dim() != 3 or image.shape[:2] != (self.height, self.width):
            raise ValueError(f"expected an image ({self.height}, {self.width}, C), got {tuple(image.shape)}")
        return image.reshape(self.height * self.width, -1)[self.index.to(image.device)]

    def blend(self, tiles: torch.Tensor) -> torch.Tensor:
        """tiles (P, M, C) -> image (H, W, C): weighted mean of the tiles covering each pixel."""
        if tiles.dim() != 3 or tiles.shape[:2] != self.index.shape:
            raise ValueError(f"expected tiles ({self.n}, {self.index.shape[1]}, C), got {tuple(tiles.shape)}")
        c = tiles.shape[2]
        idx = self.index.to(tiles.device).reshape(-1)
        w = self.weight.to(device=tiles.device, dtype=tiles.dtype)
        num = torch.zeros(self.height * self.width, c, device=tiles.device, dtype=tiles.dtype)
        num.index_add_(0, idx, (tiles * w[None, :, None]).reshape(-1, c))
        den = torch.zeros(self.height * self.width, device=tiles.device, dtype=tiles.dtype)
        den.index_add_(0, idx, w.expand(self.n, -1).reshape(-1))
        return (num / den[:, None]).reshape(self.height, self.width, c)


def encode(uv: torch.Tensor, fourier: int) -> torch.Tensor:
    """uv (M, 2) in [0, 1]² -> (M, 2 + 4·fourier): p = 2·uv − 1, then sin/cos(2^j π p) for j < fourier."""
    p = 2 * uv - 1
    if fourier <= 0:
        return p
    freqs = (2.0 ** torch.arange(fourier, device=uv.device, dtype=uv.dtype)) * math.pi
    angles = (p[:, :, None] * freqs).reshape(p.shape[0], -1)
    return torch.cat([p, torch.sin(angles), torch.cos(angles)], dim=1)


class CoordinateMLP(nn.Module):
    """P tile functions [0,1]² -> (0,1)^C as one BatchedMLP; forward(uv (M, 2)) -> (P, M, C)."""

    def __init__(self, n_tiles: int, out_channels: int, config: MLPConfig | None = None, *,
                 generator: torch.Generator | None = None, device=None):
        super().__init__()
        self.config = cfg = config or MLPConfig()
        self.mlp = BatchedMLP(n_tiles, 2 + 4 * cfg.fourier, out_channels, cfg.widths, last_scale=cfg.last_scale,
                              generator=generator, device=device)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        x = encode(uv, self.config.fourier)
        return torch.sigmoid(self.mlp(x.expand(self.mlp.n, -1, -1)))

    def network(self, i: int) -> nn.Sequential:
        """Tile i as a plain ``nn.Sequential`` (Linear/ReLU ... Sigmoid) on encoded coordinates (a slow reference)."""
        return nn.Sequential(*self.mlp.network(i), nn.Sigmoid())
