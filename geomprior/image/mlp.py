"""Images as functions: a coordinate network [0,1]² → R^C per tile, all tiles one :class:`BatchedMLP`.

The image is cut into overlapping tiles of equal size (:class:`Tiling`); tile p is the function
φ_p(u, v) = ½ + MLP_p(γ_p(u, v)) on the tile's own unit square (a linear output: a sigmoid would slow the fit
of dark and bright pixels). The encoding γ (``MLPConfig.encoding``):

- ``relu``: the coordinates p = (2u−1, 2v−1) into a ReLU MLP;
- ``fourier``: p followed by sin/cos(2^j π p) for j < L (Fourier features, Tancik et al. 2020), ReLU MLP;
- ``siren``: p into an MLP with sine activations and SIREN's initialisation (Sitzmann et al. 2020);
- ``grid``: per-tile multiresolution dense grids of learned features, bilinearly interpolated and concatenated
  with p (the dense-grid form of Instant-NGP's encoding, Müller et al. 2022), into a small ReLU MLP.

The tiles are one batch of independent networks (P = number of tiles), fitted together by
:func:`geomprior.fit.fit`; the image is their blend with smooth weights (raised-cosine ramps across each overlap,
none at the image border), so seams do not show. :class:`ImageFunction` evaluates the blend and its gradient at
any point of the image, renders it at any scale, and saves and loads it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geomprior.errors import InputError
from geomprior.image import ENCODINGS
from geomprior.nets import BatchedMLP

Preset = Literal["fast", "default", "quality", "compact"]


@dataclass(frozen=True)
class MLPConfig:
    """Settings of the tiled coordinate network and its optimisation."""

    widths: tuple[int, ...] = (64, 64)  # hidden layer widths of each tile's MLP
    tile: int = 16  # tile side in pixels (tiles are min(tile, H) × min(tile, W))
    overlap: int = 4  # pixels shared by neighbouring tiles, blended with smooth weights
    encoding: str = "siren"  # relu, fourier, siren or grid (module docstring)
    fourier: int = 6  # encoding "fourier": octaves L per coordinate
    # encoding "siren": ω0, the frequency factor of every sine layer; SIREN's 30 fits a 16-pixel tile with
    # frequencies above the pixel grid's, which oscillate between the pixels when the function is rendered larger
    omega: float = 10.0
    grid: tuple[int, ...] = (2, 4, 8, 16)  # encoding "grid": cells per tile side of each level
    features: int = 2  # encoding "grid": learned features per grid vertex and level
    lr: float | None = None  # Adam learning rate (None: 0.01 for the grid encoding, 0.001 for the others)
    lr_decay: str = "cosine"  # "cosine": the rate falls to 0 at the iteration cap (geomprior.fit.fit); or "none"
    last_scale: float = 1.0  # scale of the last layer's initial weights

    def __post_init__(self):
        if not self.widths or min(self.widths) < 1:
            raise InputError(f"widths must be positive, got {self.widths}")
        if self.tile < 2 or not 0 <= self.overlap < self.tile:
            raise InputError(f"need tile >= 2 and 0 <= overlap < tile, got tile {self.tile}, overlap {self.overlap}")
        if self.encoding not in ENCODINGS:
            raise InputError(f"unknown encoding {self.encoding!r}; valid: {', '.join(ENCODINGS)}")
        if self.encoding == "fourier" and self.fourier < 1:
            raise InputError(f"the fourier encoding needs at least 1 octave, got {self.fourier}")
        if self.encoding == "grid" and (not self.grid or min(self.grid) < 1 or self.features < 1):
            raise InputError(f"grid levels and features must be positive, got {self.grid}, {self.features}")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"lr must be > 0, got {self.lr}")
        if not self.omega > 0:
            raise InputError(f"omega must be > 0, got {self.omega}")

    @classmethod
    def preset(cls, name: Preset = "default", **changes) -> "MLPConfig":
        """All SIREN; fast: 2×32 hidden units per 16-pixel tile; default: 2×64; quality: 3×64; compact: 2×16 per
        32-pixel tile (overlapping by 8, ω0 doubled with the tile side), fewer weights than a gray or colour image
        has values."""
        base = {
            "fast": cls(widths=(32, 32)),
            "default": cls(),
            "quality": cls(widths=(64, 64, 64)),
            "compact": cls(widths=(16, 16), tile=32, overlap=8, omega=20.0),
        }
        if name not in base:
            raise InputError(f"unknown preset {name!r}; valid: {', '.join(base)}")
        return dataclasses.replace(base[name], **changes)

    @classmethod
    def restoring(cls, name: Preset = "default") -> "MLPConfig":
        """The settings for restoring an image (denoise, inpaint) under an early stop: ReLU networks (fast 2×32,
        default 3×64, quality 3×128) at a constant learning rate 0.002. They fit the image before its noise; a
        SIREN fits the noise within a few dozen iterations, before a held-out stop can catch the image."""
        widths = {"fast": (32, 32), "default": (64, 64, 64), "quality": (128, 128, 128)}
        if name not in widths:
            raise InputError(f"unknown preset {name!r} for restoring; valid: {', '.join(widths)}")
        return cls(widths=widths[name], encoding="relu", lr=2e-3, lr_decay="none")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the encoding's own rate when it is None."""
        return self.lr if self.lr is not None else (1e-2 if self.encoding == "grid" else 1e-3)

    def architecture(self) -> dict:
        """What rebuilds the network (every field but the optimisation's), JSON-safe."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self) if f.name not in ("lr", "lr_decay", "last_scale")}


def _starts(n: int, t: int, overlap: int) -> list[int]:
    if t >= n:
        return [0]
    step = t - overlap
    starts = list(range(0, n - t, step))
    starts.append(n - t)
    return sorted(set(starts))


def _ramp(a: torch.Tensor, t: int, overlap: int, lead: torch.Tensor, trail: torch.Tensor) -> torch.Tensor:
    """Blending weight at tile-local positions a ∈ [0, t] (pixels from the tile's first edge): sin² ramps from 0 to 1
    over ``overlap`` pixels at the leading edge where ``lead`` and at the trailing edge where ``trail`` (bool, like
    a), 1 elsewhere: C¹, and > 0 inside the tile."""
    w = torch.ones_like(a)
    if overlap <= 0:
        return w
    w = torch.where(lead & (a < overlap), torch.sin(0.5 * math.pi * a / overlap) ** 2, w)
    return torch.where(trail & (t - a < overlap), torch.minimum(w, torch.sin(0.5 * math.pi * (t - a) / overlap) ** 2),
                       w)


class Tiling:
    """Overlapping equal tiles covering an H × W image, with blending weights.

    origins : (P, 2) long, top-left (row, column) of each tile
    index   : (P, M) long, flat pixel index (row·W + column) of each tile pixel, M = th·tw, row-major in the tile
    weight  : (P, M) float64 blending weight of each tile pixel (:meth:`weights` at the pixel centres)
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int):
        if height < 1 or width < 1:
            raise InputError(f"image must be at least 1x1, got {width}x{height}")
        self.height, self.width = int(height), int(width)
        self.th, self.tw = min(tile, self.height), min(tile, self.width)
        self.oy = overlap if self.th == tile else 0
        self.ox = overlap if self.tw == tile else 0
        self.ys = torch.tensor(_starts(self.height, self.th, self.oy), dtype=torch.long)
        self.xs = torch.tensor(_starts(self.width, self.tw, self.ox), dtype=torch.long)
        self.origins = torch.cartesian_prod(self.ys, self.xs)
        dy, dx = torch.meshgrid(torch.arange(self.th), torch.arange(self.tw), indexing="ij")
        rows = self.origins[:, :1] + dy.reshape(1, -1)
        cols = self.origins[:, 1:] + dx.reshape(1, -1)
        self.index = rows * self.width + cols
        tiles = torch.arange(self.n)[:, None].expand(-1, self.index.shape[1])
        self.weight = self.weights(tiles, (rows + 0.5).double(), (cols + 0.5).double())

    @property
    def n(self) -> int:
        """Number of tiles P."""
        return self.origins.shape[0]

    def weights(self, tiles: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Blending weight of tile ``tiles`` at image positions (y, x) in pixels from the top-left corner (pixel
        centres at half-integers); edges on the image border are not ramped."""
        oy, ox = self.origins[tiles, 0], self.origins[tiles, 1]
        wy = _ramp(y - oy.to(y), self.th, self.oy, oy > 0, oy + self.th < self.height)
        wx = _ramp(x - ox.to(x), self.tw, self.ox, ox > 0, ox + self.tw < self.width)
        return wy * wx

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
        return _weighted_mean(tiles.reshape(-1, tiles.shape[2]), self.weight.to(tiles).reshape(-1),
                              self.index.to(tiles.device).reshape(-1), self.height * self.width
                              ).reshape(self.height, self.width, -1)

    def covering(self, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (point, tile) pair with the point (y, x) (pixels, (N,) each) inside the tile, edges included:
        (point indices (Q,), tile indices (Q,))."""
        def axis(c, starts, t):
            lo = torch.searchsorted(starts + t, c.contiguous(), right=False)
            hi = torch.searchsorted(starts, c.contiguous(), right=True) - 1
            return lo, hi

        (ly, hy), (lx, hx) = axis(y, self.ys.to(y), self.th), axis(x, self.xs.to(x), self.tw)
        ky, kx = int((hy - ly).max()) + 1, int((hx - lx).max()) + 1
        points, tiles = [], []
        for i in range(ky):
            for j in range(kx):
                ok = (ly + i <= hy) & (lx + j <= hx)
                points.append(torch.nonzero(ok).reshape(-1))
                tiles.append(((ly + i) * len(self.xs) + lx + j)[ok])
        return torch.cat(points), torch.cat(tiles)


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """values (Q, C) with weights (Q,) averaged into n bins by ``index`` (Q,) -> (n, C)."""
    num = torch.zeros(n, values.shape[1], device=values.device, dtype=values.dtype)
    num = num.index_add(0, index, values * weight[:, None])
    den = torch.zeros(n, device=values.device, dtype=values.dtype).index_add(0, index, weight)
    return num / den[:, None]


def encode(uv: torch.Tensor, fourier: int) -> torch.Tensor:
    """uv (..., 2) in [0, 1]² -> (..., 2 + 4·fourier): p = 2·uv − 1, then sin/cos(2^j π p) for j < fourier."""
    p = 2 * uv - 1
    if fourier <= 0:
        return p
    freqs = (2.0 ** torch.arange(fourier, device=uv.device, dtype=uv.dtype)) * math.pi
    angles = (p[..., None] * freqs).flatten(-2)
    return torch.cat([p, torch.sin(angles), torch.cos(angles)], dim=-1)


class GridEncoding(nn.Module):
    """Per-tile multiresolution dense grids: level l has (r_l + 1)² vertices of ``features`` learned values, read by
    bilinear interpolation (``grid_sample``); forward(uv (P, M, 2)) -> (P, M, levels·features)."""

    def __init__(self, n_tiles: int, levels: tuple[int, ...], features: int, *,
                 generator: torch.Generator | None = None, device=None):
        super().__init__()
        self.levels = tuple(int(r) for r in levels)
        self.tables = nn.ParameterList(
            nn.Parameter(((torch.rand(n_tiles, features, r + 1, r + 1, generator=generator) * 2 - 1) * 1e-4)
                         .to(device)) for r in self.levels)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        g = (2 * uv - 1)[:, :, None, :]  # (P, M, 1, 2): x = u across, y = v down, corners at the grid's vertices
        out = [F.grid_sample(t, g, mode="bilinear", padding_mode="border", align_corners=True)[..., 0]
               for t in self.tables]  # (P, features, M) each
        return torch.cat(out, dim=1).transpose(1, 2)


class CoordinateMLP(nn.Module):
    """P tile functions [0,1]² -> R^C (images in [0, 1]); forward(uv (M, 2) shared by all tiles, or (P, M, 2))
    -> (P, M, C)."""

    def __init__(self, n_tiles: int, out_channels: int, config: MLPConfig | None = None, *,
                 generator: torch.Generator | None = None, device=None):
        super().__init__()
        self.config = cfg = config or MLPConfig()
        self.grid = (GridEncoding(n_tiles, cfg.grid, cfg.features, generator=generator, device=device)
                     if cfg.encoding == "grid" else None)
        in_dim = 2 + (4 * cfg.fourier if cfg.encoding == "fourier" else 0) + (
            len(cfg.grid) * cfg.features if cfg.encoding == "grid" else 0)
        self.mlp = BatchedMLP(n_tiles, in_dim, out_channels, cfg.widths, last_scale=cfg.last_scale,
                              activation="sine" if cfg.encoding == "siren" else "relu", omega=cfg.omega,
                              generator=generator, device=device)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        x = encode(uv, self.config.fourier if self.config.encoding == "fourier" else 0)
        x = x.expand(self.mlp.n, -1, -1) if x.dim() == 2 else x
        if self.grid is not None:
            uv = uv.expand(self.mlp.n, -1, -1) if uv.dim() == 2 else uv
            x = torch.cat([x, self.grid(uv)], dim=2)
        return self.mlp(x) + 0.5

    def network(self, i: int) -> nn.Sequential:
        """Tile i after its encoding as a plain ``nn.Sequential`` (Linear/activation ... Linear, + ½): a slow
        reference."""
        return nn.Sequential(*self.mlp.network(i), _Shift(0.5))


class _Shift(nn.Module):
    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


class ImageFunction:
    """A fitted image as a function of continuous coordinates: the tiles' networks, blended.

    Coordinates (u, v) ∈ [0, 1]²: u across the width (left to right), v down the height; the centre of pixel
    (row i, column j) of the fitted H × W image is ((j + 0.5)/W, (i + 0.5)/H), where the function equals the
    fitted image. Values are (C,), those of a fitted image about [0, 1] (:meth:`render` clips to it).
    """

    def __init__(self, model: CoordinateMLP, tiling: Tiling):
        self.model, self.tiling = model, tiling

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the fitted image."""
        return self.tiling.height, self.tiling.width, self.model.mlp.weights[-1].shape[2]

    def _values(self, uv: torch.Tensor) -> torch.Tensor:
        """uv (N, 2) float64 -> (N, C), differentiable in uv: each covering tile at its local coordinates,
        weighted by its blending weight."""
        t = self.tiling
        y, x = uv[:, 1] * t.height, uv[:, 0] * t.width
        point, tile = t.covering(y.detach(), x.detach())
        oy, ox = t.origins[tile, 0].to(uv), t.origins[tile, 1].to(uv)
        local = torch.stack([(x[point] - ox) / t.tw, (y[point] - oy) / t.th], dim=1)
        order = torch.argsort(tile, stable=True)
        point, tile, local = point[order], tile[order], local[order]
        counts = torch.bincount(tile, minlength=t.n)
        slot = torch.arange(len(tile)) - (torch.cumsum(counts, 0) - counts)[tile]
        dev = self.model.mlp.weights[0].device
        padded = torch.full((t.n, int(counts.max()), 2), 0.5, dtype=torch.float32, device=dev)
        padded = padded.index_put((tile.to(dev), slot.to(dev)), local.to(dev, torch.float32))
        out = self.model(padded)[tile.to(dev), slot.to(dev)].to(uv)
        return _weighted_mean(out, t.weights(tile, y[point], x[point]), point, len(uv))

    @staticmethod
    def _points(uv) -> torch.Tensor:
        uv = torch.as_tensor(np.asarray(uv, dtype=np.float64))
        if uv.dim() != 2 or uv.shape[1] != 2:
            raise InputError(f"points must be an (N, 2) array of (u, v), got shape {tuple(uv.shape)}")
        if not bool(torch.isfinite(uv).all()) or bool((uv < 0).any() | (uv > 1).any()):
            raise InputError("points must lie in [0, 1]^2 (u across the width, v down the height)")
        return uv

    def evaluate(self, uv, *, chunk: int = 65536) -> np.ndarray:
        """Values (N, C) float32 of the function at points uv (N, 2) in [0, 1]²."""
        with torch.no_grad():
            return self._chunked(self._points(uv), chunk, self._values, (self.shape[2],))

    def gradient(self, uv, *, chunk: int = 16384) -> np.ndarray:
        """Spatial gradient (N, C, 2) float32 at points uv (N, 2): ∂value/∂u and ∂value/∂v, per unit of u
        (the image width) and of v (its height). Tile edges and the blending weights are included."""
        def grad(part):
            part = part.clone().requires_grad_(True)
            values = self._values(part)
            return torch.stack([torch.autograd.grad(values[:, c].sum(), part, retain_graph=c + 1 < values.shape[1])[0]
                                for c in range(values.shape[1])], dim=1)

        return self._chunked(self._points(uv), chunk, grad, (self.shape[2], 2))

    @staticmethod
    def _chunked(uv: torch.Tensor, chunk: int, func, shape: tuple[int, ...]) -> np.ndarray:
        """func over chunks of about ``chunk`` points, each taking every k-th point (k chunks), so that every
        chunk spreads over all tiles and none pads a few tiles' many points."""
        out = torch.zeros(len(uv), *shape, dtype=torch.float32)
        k = math.ceil(len(uv) / chunk)
        for i in range(k):
            out[i::k] = func(uv[i::k]).float()
        return out.numpy()

    def render(self, scale: float = 1.0) -> np.ndarray:
        """The function sampled at the pixel centres of an image ``scale`` times the fitted one's size (each side
        rounded, at least 1 pixel), clipped to [0, 1]: (round(H·scale), round(W·scale), C) float32."""
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise InputError(f"scale must be a number > 0, got {scale!r}")
        h, w, c = self.shape
        hs, ws = max(1, round(h * scale)), max(1, round(w * scale))
        v, u = np.meshgrid((np.arange(hs) + 0.5) / hs, (np.arange(ws) + 0.5) / ws, indexing="ij")
        return self.evaluate(np.stack([u.ravel(), v.ravel()], axis=1)).reshape(hs, ws, c).clip(0, 1)

    def save(self, path: str | os.PathLike, *, atomic: bool = True) -> None:
        """Write the function to a code file (.npz, no pickles; :meth:`load` reads it back, bit for bit)."""
        from geomprior.image.io import write_code

        weights = {name: p.detach().cpu() for name, p in self.model.named_parameters()}
        write_code(path, weights, shape=self.shape, config=self.model.config, seed=0, atomic=atomic)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device=None) -> "ImageFunction":
        """The function of a code file written by :meth:`save` (``geomprior image fit --code``)."""
        from geomprior.image.io import read_code

        code = read_code(path)
        if code["kind"] != "mlp":
            raise InputError(f"{path}: a Deep Decoder code, not a fitted function (use decompress)")
        return cls.from_code(code, device=device)

    @classmethod
    def from_code(cls, code: dict, *, device=None) -> "ImageFunction":
        """The function of a code read by :func:`geomprior.image.io.read_code` (kind "mlp")."""
        h, w, c = code["shape"]
        try:
            config = MLPConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in code["config"].items()})
            tiling = Tiling(h, w, config.tile, config.overlap)
            model = CoordinateMLP(tiling.n, c, config, device=device)
            state = {k: torch.as_tensor(v) for k, v in code["weights"].items()}
            model.load_state_dict(state, strict=True)
        except (TypeError, RuntimeError, InputError) as e:
            raise InputError(f"damaged code file (its weights do not match its header): {str(e).splitlines()[0]}"
                             ) from None
        return cls(model.requires_grad_(False), tiling)
