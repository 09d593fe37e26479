"""Deep Decoder (Heckel & Hand 2019): an under-parameterised decoder that cannot fit noise.

d+1 blocks of 1×1 conv (k→k, no bias) → bilinear ×2 (all but the last block) → ReLU → channel-wise
normalisation (per channel over the pixels, with a learned scale and shift), then a 1×1 conv (k→c_out, no bias)
and a sigmoid. Input: fixed noise (1, k, H/2^d, W/2^d), U(0, 1) × 0.1. Weights:
N = (d+1)(k² + 2k) + k·c_out  (k² per conv, 2k per normalisation's scale and shift, k·c_out for the output).

Two knobs change neither the weights nor their count: ``input="gaussian"`` (zero-mean N(0, 1) × 0.1 noise) and
``norm_before_relu`` (the reference code's ``bn_before_act``: normalise, then ReLU). Compression uses both
(:func:`geomprior.image.tasks.compress_config`): they fit more of an image with the same weights.
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
class DDConfig:
    """Settings of the Deep Decoder and its optimisation."""

    channels: int = 64  # k: channels of every block
    depth: int = 5  # d: number of ×2 upsamplings (d+1 blocks)
    input_scale: float = 0.1  # z ~ U(0, 1) × input_scale
    ema: float = 0.99  # output = exponential moving average of the outputs (0 = last output)
    lr: float = 0.005  # Adam learning rate (0.01 oscillates, see DESIGN.md §5)
    lr_decay: Literal["none", "cosine"] = "none"  # cosine: the rate falls to 0 at the cap (compress uses it)
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    average: Literal["outputs", "weights"] = "outputs"  # what the EMA averages; "weights": the result is g(EMA of θ)
    input: Literal["uniform", "gaussian"] = "uniform"  # z ~ U(0, 1) or N(0, 1), × input_scale
    norm_before_relu: bool = False  # block order conv → up → norm → ReLU (default: conv → up → ReLU → norm)
    # float type of the training passes, as DIPConfig.precision ("auto": bfloat16 on a CPU that computes it natively)
    precision: Literal["auto", "float32", "bfloat16"] = "auto"

    def __post_init__(self):
        if self.channels < 1 or self.depth < 0:
            raise InputError(f"channels must be >= 1 and depth >= 0, got {self.channels}, {self.depth}")
        if not 0 <= self.ema < 1:
            raise InputError(f"ema must be in [0, 1), got {self.ema}")
        if self.lr_decay not in ("none", "cosine"):
            raise InputError(f"lr_decay must be 'none' or 'cosine', got {self.lr_decay!r}")
        if self.average not in ("outputs", "weights"):
            raise InputError(f"average must be 'outputs' or 'weights', got {self.average!r}")
        if self.input not in ("uniform", "gaussian"):
            raise InputError(f"input must be 'uniform' or 'gaussian', got {self.input!r}")
        check_precision(self.precision)

    @classmethod
    def preset(cls, name: Preset = "default", **changes) -> "DDConfig":
        """fast: k = 32; default: k = 64; quality: k = 128 (the paper's denoising width)."""
        check_preset(name)
        k = {"fast": 32, "default": 64, "quality": 128}[name]
        return dataclasses.replace(cls(channels=k), **changes)


def dd_parameter_count(channels: int, depth: int, out_channels: int) -> int:
    """N = (d+1)(k² + 2k) + k·c_out: the weights of a :class:`DeepDecoder`."""
    k, d = channels, depth
    return (d + 1) * (k * k + 2 * k) + k * out_channels


def padded_size(h: int, w: int, depth: int) -> tuple[int, int]:
    """Smallest (Hp, Wp) >= (h, w) divisible by 2^depth (the decoder's output size; it is cropped to (h, w))."""
    step = 2 ** depth
    return (math.ceil(h / step) * step, math.ceil(w / step) * step)


class DeepDecoder(nn.Module):
    """z (B, k, h, w) -> image (B, out_channels, h·2^d, w·2^d) in (0, 1)."""

    def __init__(self, out_channels: int = 3, config: DDConfig | None = None):
        super().__init__()
        cfg = config or DDConfig()
        self.config = cfg
        k, d = cfg.channels, cfg.depth
        layers: list[nn.Module] = []
        for i in range(d + 1):
            layers.append(nn.Conv2d(k, k, 1, bias=False))
            if i < d:
                layers.append(nn.Upsample(scale_factor=2, mode=cfg.upsample,
                                          align_corners=False if cfg.upsample == "bilinear" else None))
            block = [nn.ReLU(), nn.InstanceNorm2d(k, affine=True)]  # channel-wise normalisation
            layers += block[::-1] if cfg.norm_before_relu else block
        layers += [nn.Conv2d(k, out_channels, 1, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 4 or z.shape[1] != self.config.channels:
            raise ValueError(f"expected input (B, {self.config.channels}, h, w), got {tuple(z.shape)}")
        return self.net(z)

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """Noise size (h', w') whose output covers an h × w image."""
        hp, wp = padded_size(h, w, self.config.depth)
        return hp // 2 ** self.config.depth, wp // 2 ** self.config.depth


def dd_input(config: DDConfig, size: tuple[int, int], *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> torch.Tensor:
    """The fixed noise input z : (1, k, *size), U(0, 1) or N(0, 1) (``config.input``) × input_scale."""
    draw = torch.randn if config.input == "gaussian" else torch.rand
    return (draw(1, config.channels, *size, generator=generator) * config.input_scale).to(device)
