"""Deep Image Prior (Ulyanov et al. 2018): the reference skip encoder–decoder and its input.

The network maps fixed noise z : (1, input_channels, Hp, Wp) to an image (1, C, Hp, Wp) in (0, 1); Hp, Wp are
the image size rounded up to a multiple of 2^scales (the output is cropped back, see :func:`padded_size`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from geomprior.errors import InputError
from geomprior.presets import check_precision, check_preset

Preset = Literal["fast", "default", "quality"]


@dataclass(frozen=True)
class DIPConfig:
    """Settings of the DIP skip network and its optimisation (defaults: the reference, "quality")."""

    channels_down: tuple[int, ...] = (128,) * 5  # encoder width per scale (its length is the number of scales)
    channels_up: tuple[int, ...] = (128,) * 5  # decoder width per scale
    channels_skip: tuple[int, ...] = (4,) * 5  # skip-connection width per scale (0 = no skip)
    kernel: int = 3  # spatial size of the encoder/decoder convolutions
    input_channels: int = 32  # channels of the noise input z
    input_scale: float = 0.1  # z ~ U(0, 1) × input_scale
    input_noise: float = 1 / 30  # std of the fresh N(0, σ²) added to z at every step (0 = fixed input)
    ema: float = 0.99  # output = exponential moving average of the outputs (0 = last output)
    lr: float = 0.01  # Adam learning rate
    padding: Literal["reflect", "zeros"] = "reflect"  # convolution padding
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    # float type of the training passes (geomprior.device.training_dtype: "auto" = bfloat16 on a CPU that computes it
    # natively); the weights, the optimiser and the returned image stay float32
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # what the network is fit to: "mse" its output to the measurements (over-parameterised: stop it early);
    # "r2r" (denoising only; Pang et al. 2021, Recorrupted-to-Recorrupted) each step draws n ~ N(0, σ²), feeds the
    # network the noisy image y + recorrupt·n and fits y − n / recorrupt: the two noises are independent, so the
    # expected loss is the error to the clean image plus a constant and nothing need stop the fit. Its input is the
    # image itself (input_channels, input_scale and input_noise are not used); it needs the noise level σ
    loss: Literal["mse", "r2r"] = "mse"
    recorrupt: float = 1.0  # r2r: α above

    def __post_init__(self):
        n = len(self.channels_down)
        if n < 1 or len(self.channels_up) != n or len(self.channels_skip) != n:
            raise InputError("channels_down, channels_up and channels_skip need one entry per scale "
                             f"(got {len(self.channels_down)}, {len(self.channels_up)}, {len(self.channels_skip)})")
        if min(self.channels_down + self.channels_up) < 1 or min(self.channels_skip) < 0:
            raise InputError("channel widths must be positive (skip widths >= 0)")
        if not 0 <= self.ema < 1:
            raise InputError(f"ema must be in [0, 1), got {self.ema}")
        check_precision(self.precision)
        if self.loss not in ("mse", "r2r"):
            raise InputError(f"unknown loss {self.loss!r}; valid: mse, r2r")
        if not self.recorrupt > 0:
            raise InputError(f"recorrupt must be > 0, got {self.recorrupt}")

    @property
    def scales(self) -> int:
        return len(self.channels_down)

    @classmethod
    def preset(cls, name: Preset = "default", **changes) -> "DIPConfig":
        """fast: 32 channels, 4 scales (CPU previews); default: 64 channels (CPU); quality: the reference 128."""
        check_preset(name)
        base = {
            "fast": cls(channels_down=(32,) * 4, channels_up=(32,) * 4, channels_skip=(4,) * 4),
            "default": cls(channels_down=(64,) * 5, channels_up=(64,) * 5, channels_skip=(4,) * 5),
            "quality": cls(),
        }[name]
        return dataclasses.replace(base, **changes)

    @classmethod
    def width(cls, channels: int, scales: int = 5, skip: int = 4, **changes) -> "DIPConfig":
        """All scales ``channels`` wide (e.g. 128 = reference, 64 or 32 for CPU)."""
        return cls(channels_down=(channels,) * scales, channels_up=(channels,) * scales,
                   channels_skip=(skip,) * scales, **changes)


def padded_size(h: int, w: int, scales: int) -> tuple[int, int]:
    """Smallest (Hp, Wp) >= (h, w) divisible by 2^scales and at least 2^(scales+1) (so reflection padding has
    two pixels at the coarsest scale)."""
    step = 2 ** scales
    return (max(math.ceil(h / step) * step, 2 * step), max(math.ceil(w / step) * step, 2 * step))


def _conv(cin: int, cout: int, k: int, stride: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2,
                     padding_mode="reflect" if padding == "reflect" and k > 1 else "zeros")


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class _Level(nn.Module):
    """One scale: concat(skip(x), up(deeper(down(x)))) -> BN -> conv -> BN -> act -> 1×1 conv -> BN -> act."""

    def __init__(self, cin: int, down: int, up: int, skip: int, up_below: int | None, cfg: DIPConfig,
                 inner: nn.Module | None):
        super().__init__()
        k, pad = cfg.kernel, cfg.padding
        self.skip = nn.Sequential(_conv(cin, skip, 1, 1, pad), nn.BatchNorm2d(skip), _act()) if skip else None
        deeper = [_conv(cin, down, k, 2, pad), nn.BatchNorm2d(down), _act(),
                  _conv(down, down, k, 1, pad), nn.BatchNorm2d(down), _act()]
        if inner is not None:
            deeper.append(inner)
        kind = cfg.upsample
        deeper.append(nn.Upsample(scale_factor=2, mode=kind, align_corners=False if kind == "bilinear" else None))
        self.deeper = nn.Sequential(*deeper)
        below = up_below if up_below is not None else down
        self.merge = nn.Sequential(
            nn.BatchNorm2d(skip + below),
            _conv(skip + below, up, k, 1, pad), nn.BatchNorm2d(up), _act(),
            _conv(up, up, 1, 1, pad), nn.BatchNorm2d(up), _act(),
        )

    def forward(self, x):
        d = self.deeper(x)
        if self.skip is not None:
            d = torch.cat([self.skip(x), d], dim=1)
        return self.merge(d)


class SkipNet(nn.Module):
    """The DIP reference ``skip`` network: x (B, input_channels, Hp, Wp) -> (B, out_channels, Hp, Wp) in (0, 1).

    Hp and Wp must be divisible by 2^scales. BatchNorm is used in training mode (batch statistics), as in the
    reference; calling ``.eval()`` is not needed and not done by the image tasks.
    """

    def __init__(self, out_channels: int = 3, config: DIPConfig | None = None):
        super().__init__()
        cfg = config or DIPConfig()
        self.config = cfg
        inner = None
        n = cfg.scales
        for i in reversed(range(n)):
            cin = cfg.input_channels if i == 0 else cfg.channels_down[i - 1]
            up_below = cfg.channels_up[i + 1] if i < n - 1 else None
            inner = _Level(cin, cfg.channels_down[i], cfg.channels_up[i], cfg.channels_skip[i], up_below, cfg, inner)
        self.body = inner
        self.head = nn.Sequential(nn.Conv2d(cfg.channels_up[0], out_channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = 2 ** self.config.scales
        if x.dim() != 4 or x.shape[1] != self.config.input_channels or x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"expected input (B, {self.config.input_channels}, H, W) with H, W divisible by {step}, "
                             f"got {tuple(x.shape)}")
        return self.head(self.body(x))


def dip_input(config: DIPConfig, size: tuple[int, int], *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
    """The fixed noise input z : (1, input_channels, *size), U(0, 1) × input_scale."""
    z = torch.rand(1, config.input_channels, *size, generator=generator) * config.input_scale
    return z.to(device)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable weights."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
