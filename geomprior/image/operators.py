"""Linear forward operators A shared by every image prior: min_θ ‖A(g_θ) − y‖².

Each operator is a small ``nn.Module`` (so ``.to(device)`` moves its tensors) acting on image batches
``x : (B, C, H, W)``:

- :class:`Identity`            denoising, fitting, compression       y : (B, C, H, W)
- :class:`Mask`                inpainting (known pixels)              y : (B, C, H, W), zero where missing
- :class:`Downsample`          super-resolution (Lanczos / box)      y : (B, C, H/f, W/f)
- :class:`GaussianMeasurement` compressed sensing, Gaussian matrix    y : (B, m) dense, (B, C, blocks, m_b) blocked
- :class:`SubsampledFourier`   compressed sensing, DFT coefficients  y : (B, C, m, 2) (real, imaginary)

``adjoint(y)`` is the exact transpose (⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for the real inner product); ``A @ B`` composes
(B first). ``output_shape((C, H, W))`` gives the shape of ``A(x)[0]``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geomprior.errors import InputError

Kernel = Literal["lanczos2", "lanczos3", "box"]
KERNELS = ("lanczos2", "lanczos3", "box")
Density = Literal["variable", "uniform"]
DENSITIES = ("variable", "uniform")
MAX_DENSE_ENTRIES = 1 << 27
"""Largest dense Gaussian matrix (entries, ≈ 512 MB in float32); larger problems must use blocks."""


def _check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not (math.isfinite(ratio) and 0 < ratio <= 1):
        raise InputError(f"measurement ratio must be in (0, 1], got {ratio:g}")
    return ratio


def _check_x(x: torch.Tensor, shape: tuple[int, int, int] | None = None) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected an image batch (B, C, H, W), got shape {tuple(x.shape)}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"expected images of shape (B, {shape[0]}, {shape[1]}, {shape[2]}), got {tuple(x.shape)}")


class Operator(nn.Module):
    """A linear map on image batches (B, C, H, W). Subclasses define forward, adjoint and output_shape."""

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no adjoint")

    def output_shape(self, shape: tuple[int, int, int]) -> tuple[int, ...]:
        raise NotImplementedError

    def __matmul__(self, other: "Operator") -> "Compose":
        return Compose(self, other)


class Compose(Operator):
    """``outer ∘ inner``: x -> outer(inner(x)); adjoint inner.adjoint(outer.adjoint(y))."""

    def __init__(self, outer: Operator, inner: Operator):
        super().__init__()
        self.outer, self.inner = outer, inner

    def forward(self, x):
        return self.outer(self.inner(x))

    def adjoint(self, y):
        return self.inner.adjoint(self.outer.adjoint(y))

    def output_shape(self, shape):
        return self.outer.output_shape(self.inner.output_shape(shape))


class Identity(Operator):
    """A x = x."""

    def forward(self, x):
        _check_x(x)
        return x

    def adjoint(self, y):
        return y

    def output_shape(self, shape):
        return tuple(shape)


class Mask(Operator):
    """A x = m ⊙ x for a known-pixel mask m : (H, W) or (C, H, W) bool (True = known). Self-adjoint."""

    def __init__(self, mask):
        super().__init__()
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if m.dim() not in (2, 3):
            raise InputError(f"mask must be (H, W) or (C, H, W), got shape {tuple(m.shape)}")
        m = m.to(torch.float32)
        self.register_buffer("mask", m if m.dim() == 3 else m[None])

    def forward(self, x):
        _check_x(x)
        if x.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(f"mask is {tuple(self.mask.shape[-2:])} but images are {tuple(x.shape[-2:])}")
        return x * self.mask

    def adjoint(self, y):
        return y * self.mask

    def keep_known(self, x, y):
        """x with its known pixels replaced by the measurements y: the image closest to x with A x = y."""
        return x * (1 - self.mask) + self.adjoint(y)  # = x + Aᵀ(y − A x), exact on the known pixels

    def output_shape(self, shape):
        return tuple(shape)


def _kernel_1d(kernel: str, factor: int) -> np.ndarray:
    """Antialiasing filter taps for downsampling by ``factor`` (sum 1, symmetric, pixel-centre aligned)."""
    if kernel == "box":
        return np.full(factor, 1.0 / factor)
    a = {"lanczos2": 2, "lanczos3": 3}[kernel]
    size = 2 * a * factor + (factor % 2)  # size - factor even: the taps centre on each output pixel
    t = (np.arange(size) - (size - 1) / 2) / factor
    w = np.sinc(t) * np.sinc(t / a)
    w[np.abs(t) >= a] = 0
    return w / w.sum()


class Downsample(Operator):
    """Antialiased downsampling by an integer ``factor``: separable filter, stride ``factor``.

    kernel : "lanczos2" (default, as the DIP reference's super-resolution; close to PIL's bicubic shrink), "lanczos3"
             (PIL's LANCZOS shrink) or "box" (block mean, area averaging).
    The image border is extended by replication (the adjoint folds it back). H and W must be divisible by
    ``factor``: y : (B, C, H/factor, W/factor).
    """

    def __init__(self, factor: int, kernel: Kernel = "lanczos2"):
        super().__init__()
        if int(factor) != factor or factor < 1:
            raise InputError(f"downsampling factor must be a positive integer, got {factor!r}")
        if kernel not in KERNELS:
            raise InputError(f"unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")
        self.factor, self.kernel = int(factor), kernel
        k = torch.as_tensor(_kernel_1d(kernel, self.factor), dtype=torch.float32)
        self.register_buffer("weight", (k[:, None] * k[None, :])[None, None])
        extra = k.numel() - self.factor
        self.pad = (extra // 2, extra - extra // 2)

    def _check(self, x):
        _check_x(x)
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise InputError(f"image size {w}x{h} is not divisible by the factor {self.factor}")

    def forward(self, x):
        self._check(x)
        b, c, h, w = x.shape
        lo, hi = self.pad
        z = x.reshape(b * c, 1, h, w)
        if lo or hi:
            z = F.pad(z, (lo, hi, lo, hi), mode="replicate")
        y = F.conv2d(z, self.weight.to(x.dtype), stride=self.factor)
        return y.reshape(b, c, h // self.factor, w // self.factor)

    def adjoint(self, y):
        b, c, hs, ws = y.shape
        lo, hi = self.pad
        z = F.conv_transpose2d(y.reshape(b * c, 1, hs, ws), self.weight.to(y.dtype), stride=self.factor)
        # fold the replicated border back onto the edge pixels (adjoint of replicate padding)
        z = _fold_replicate(z, lo, hi, dim=2)
        z = _fold_replicate(z, lo, hi, dim=3)
        return z.reshape(b, c, hs * self.factor, ws * self.factor)

    def output_shape(self, shape):
        c, h, w = shape
        if h % self.factor or w % self.factor:
            raise InputError(f"image size {w}x{h} is not divisible by the factor {self.factor}")
        return (c, h // self.factor, w // self.factor)

    def extra_repr(self):
        return f"factor={self.factor}, kernel={self.kernel!r}"


def _fold_replicate(z: torch.Tensor, lo: int, hi: int, dim: int) -> torch.Tensor:
    if not (lo or hi):
        return z
    n = z.shape[dim] - lo - hi
    core = z.narrow(dim, lo, n).clone()
    if lo:
        first = core.narrow(dim, 0, 1)
        first += z.narrow(dim, 0, lo).sum(dim, keepdim=True)
    if hi:
        last = core.narrow(dim, n - 1, 1)
        last += z.narrow(dim, lo + n, hi).sum(dim, keepdim=True)
    return core


class GaussianMeasurement(Operator):
    """Compressed sensing with i.i.d. Gaussian matrices, entries N(0, 1/m).

    shape : (C, H, W) of the images measured
    ratio : measurements / pixel values, in (0, 1]
    block : None = one dense (m, C·H·W) matrix with m = round(ratio·C·H·W), y : (B, m);
            b = the image (zero-padded to multiples of b) is cut into b×b blocks per channel and every block
            is measured by the same (m_b, b²) matrix, m_b = round(ratio·b²) ("block compressed sensing"),
            y : (B, C, blocks, m_b). Use blocks for large images (a dense matrix grows as n²).
    seed  : the matrix is drawn from ``torch.Generator().manual_seed(seed)``.
    """

    def __init__(self, shape: tuple[int, int, int], ratio: float, *, block: int | None = None, seed: int = 0):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        ratio = _check_ratio(ratio)
        c, h, w = self.shape
        g = torch.Generator().manual_seed(seed)
        if block is None:
            n = c * h * w
            m = max(1, round(ratio * n))
            if m * n > MAX_DENSE_ENTRIES:
                raise InputError(f"a dense Gaussian matrix for {w}x{h}x{c} images at ratio {ratio:g} has "
                                 f"{m * n:.3g} entries; measure in blocks instead")
            self.block = None
        else:
            if int(block) != block or block < 1:
                raise InputError(f"block size must be a positive integer, got {block!r}")
            self.block = int(block)
            n = self.block ** 2
            m = max(1, round(ratio * n))
            self.padded = (math.ceil(h / self.block) * self.block, math.ceil(w / self.block) * self.block)
        self.m, self.n = m, n
        self.ratio = m / n
        self.register_buffer("matrix", torch.randn(m, n, generator=g) / math.sqrt(m))

    def forward(self, x):
        _check_x(x, self.shape)
        if self.block is None:
            return x.reshape(x.shape[0], -1) @ self.matrix.T
        return self._blocks(x) @ self.matrix.T

    def adjoint(self, y):
        z = y @ self.matrix
        if self.block is None:
            return z.reshape(y.shape[0], *self.shape)
        return self._unblocks(z)

    def _blocks(self, x):
        b = self.block
        c, h, w = self.shape
        hp, wp = self.padded
        x = F.pad(x, (0, wp - w, 0, hp - h))
        x = x.reshape(x.shape[0], c, hp // b, b, wp // b, b).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(x.shape[0], c, (hp // b) * (wp // b), b * b)

    def _unblocks(self, z):
        b = self.block
        c, h, w = self.shape
        hp, wp = self.padded
        z = z.reshape(z.shape[0], c, hp // b, wp // b, b, b).permute(0, 1, 2, 4, 3, 5)
        return z.reshape(z.shape[0], c, hp, wp)[:, :, :h, :w]

    def output_shape(self, shape):
        if tuple(shape) != self.shape:
            raise ValueError(f"operator built for images {self.shape}, got {tuple(shape)}")
        if self.block is None:
            return (self.m,)
        c = self.shape[0]
        return (c, (self.padded[0] // self.block) * (self.padded[1] // self.block), self.m)

    def extra_repr(self):
        return f"shape={self.shape}, m={self.m}, n={self.n}, block={self.block}"


class SubsampledFourier(Operator):
    """Compressed sensing with a random subset of 2-D DFT coefficients (orthonormal DFT, per channel).

    Frequencies are drawn from one half of the spectrum (a real image's DFT is conjugate-symmetric, so the other
    half holds no new information), DC always included; m = round(ratio·H·W/2) complex coefficients per channel,
    i.e. ≈ ratio·H·W real numbers (real and imaginary parts). ``density="variable"`` favours low frequencies
    (probability ∝ 1/(1 + (r/0.1)²), r the normalised frequency radius), "uniform" does not.
    y : (B, C, m, 2).
    """

    def __init__(self, shape: tuple[int, int, int], ratio: float, *, density: Density = "variable", seed: int = 0):
        super().__init__()
        if density not in DENSITIES:
            raise InputError(f"unknown sampling density {density!r}; valid: {', '.join(DENSITIES)}")
        self.shape = tuple(int(s) for s in shape)
        ratio = _check_ratio(ratio)
        _, h, w = self.shape
        ky, kx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        flat = ky * w + kx
        conj = ((-ky) % h) * w + ((-kx) % w)
        candidates = flat[flat <= conj]  # one of each conjugate pair (self-conjugate ones included)
        fy = torch.where(ky > h // 2, ky - h, ky).float() / h
        fx = torch.where(kx > w // 2, kx - w, kx).float() / w
        radius = torch.sqrt(fy ** 2 + fx ** 2).reshape(-1)[candidates]
        weight = 1 / (1 + (radius / 0.1) ** 2) if density == "variable" else torch.ones_like(radius)
        weight[0] = 0  # DC is added below
        m = min(max(1, round(ratio * h * w / 2)), candidates.numel())
        g = torch.Generator().manual_seed(seed)
        picked = torch.multinomial(weight, m - 1, replacement=False, generator=g) if m > 1 else torch.zeros(0, dtype=torch.long)
        index = torch.cat([candidates[:1], candidates[picked]]).sort().values
        self.m, self.density = m, density
        self.ratio = 2 * m / (h * w)
        self.register_buffer("index", index)

    def forward(self, x):
        _check_x(x, self.shape)
        f = torch.fft.fft2(x, norm="ortho").reshape(*x.shape[:2], -1)[:, :, self.index]
        return torch.stack([f.real, f.imag], dim=-1)

    def adjoint(self, y):
        b, c = y.shape[:2]
        _, h, w = self.shape
        z = torch.zeros(b, c, h * w, dtype=torch.complex64 if y.dtype != torch.float64 else torch.complex128,
                        device=y.device)
        z[:, :, self.index] = torch.complex(y[..., 0], y[..., 1])
        return torch.fft.ifft2(z.reshape(b, c, h, w), norm="ortho").real

    def output_shape(self, shape):
        if tuple(shape) != self.shape:
            raise ValueError(f"operator built for images {self.shape}, got {tuple(shape)}")
        return (self.shape[0], self.m, 2)

    def extra_repr(self):
        return f"shape={self.shape}, m={self.m}, density={self.density!r}"
