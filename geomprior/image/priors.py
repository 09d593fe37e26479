"""The image priors, each registered once in :data:`PRIORS`: its settings class, how a run of it is built, and
its default stopping rule. A run (:class:`_Run`) hands the solver's fit loop its loss, per-step hook, current
image and weighted residual.

- ``dip``: Deep Image Prior skip network (:mod:`geomprior.image.dip`), input re-perturbed every step, output
  averaged (EMA); over-parameterised, so it needs early stopping;
- ``dd``: Deep Decoder (:mod:`geomprior.image.decoder`), output or weight EMA; under-parameterised, runs to the cap;
- ``mlp``: tiled coordinate MLP (:mod:`geomprior.image.mlp`); pixel-domain operators only (identity, mask).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from geomprior.device import training_dtype
from geomprior.errors import InputError
from geomprior.image import operators as ops
from geomprior.image.decoder import DDConfig, DeepDecoder, dd_input, dd_parameter_count
from geomprior.image.dip import DIPConfig, SkipNet, count_parameters, dip_input
from geomprior.image.dip import padded_size as dip_padded_size
from geomprior.image.mlp import CoordinateMLP, ImageFunction, MLPConfig, Tiling
from geomprior.image.stopping import WindowedVariance

log = logging.getLogger(__name__)


def _hwc(t: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (H, W, C), a view."""
    return t[0].permute(1, 2, 0)


@contextlib.contextmanager
def _seeded(seed: int):
    """Layers initialised from the global RNG, without changing it for the caller."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _dd_for_measurements(config: DDConfig, measured: int, out_channels: int) -> DDConfig:
    """A Deep Decoder for exact measurements (inpainting, compressed sensing): twice the preset's k when the
    preset has fewer weights than measured values. There is no noise to under-fit there, and a decoder with fewer
    weights than constraints cannot match them (BENCHMARKS.md, Images, inpaint rows)."""
    if dd_parameter_count(config.channels, config.depth, out_channels) >= measured:
        return config
    log.info("Deep Decoder: %d measured values, k = %d -> %d", measured, config.channels, 2 * config.channels)
    return dataclasses.replace(config, channels=2 * config.channels)


def _fit_depth(config: DDConfig, h: int, w: int) -> DDConfig:
    """A Deep Decoder whose input is under 4 pixels wide outputs near-constant images: lower its depth."""
    depth = config.depth
    while depth > 0 and min(h, w) / 2 ** depth < 4:
        depth -= 1
    if depth != config.depth:
        log.warning("a Deep Decoder of depth %d needs images of at least %d pixels a side; using depth %d for "
                    "this %dx%d image", config.depth, 4 * 2 ** config.depth, depth, w, h)
        config = dataclasses.replace(config, depth=depth)
    return config


def _crop(hp: int, wp: int, h: int, w: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of an h × w image centred in a network output of hp × wp."""
    return ((hp - h) // 2, (wp - w) // 2, h, w)


def _deep_decoder(config: DDConfig, shape: tuple[int, int, int], seed: int, device):
    """A run's Deep Decoder (depth fitted to the image), its fixed input and crop: all from ``seed`` alone, so that
    :func:`decompress` rebuilds the same image from the weights."""
    h, w, c = shape
    config = _fit_depth(config, h, w)
    with _seeded(seed):
        net = DeepDecoder(c, config).to(device)
    zh, zw = net.input_size(h, w)
    z = dd_input(config, (zh, zw), generator=torch.Generator().manual_seed(seed), device=device)
    return config, net, z, _crop(zh * 2 ** config.depth, zw * 2 ** config.depth, h, w)


class _Run:
    """Closures handed to ``fit`` for one prior: loss, validation score, per-step hook, current image."""

    params: list[torch.Tensor]
    buffers: list[torch.Tensor]
    n_params: int

    def loss(self) -> torch.Tensor: ...
    def after_step(self, step: int) -> None: ...
    def image(self) -> torch.Tensor: ...  # (1, C, H, W) current estimate, no grad
    def residual(self, weights: torch.Tensor) -> torch.Tensor: ...  # (1,) mean squared residual, (1, ...) weights

    def function(self):  # the estimate as an ImageFunction of continuous coordinates, where the prior has one
        return None


class _ConvRun(_Run):
    """DIP or DD: one network g(z) -> (1, C, Hp, Wp), cropped to (H, W); optional input noise and an EMA of the
    outputs (the references' average) or of the weights (``average_weights``: the estimate is then g(averaged
    weights), the output of one network)."""

    def __init__(self, net, z, crop, operator, y, train_w, *, input_noise: float, ema: float,
                 generator: torch.Generator, wmv: WindowedVariance | None, average_weights: bool = False,
                 dtype: torch.dtype = torch.float32):
        self.net, self.z, self.crop, self.dtype = net, z, crop, dtype
        self.operator, self.y, self.train_w = operator, y, train_w
        self.n_train = float(train_w.sum())
        self.input_noise, self.ema_factor = input_noise, ema
        self.generator, self.wmv = generator, wmv
        named = {n: p for n, p in net.named_parameters() if p.requires_grad}
        self.names, self.params = list(named), list(named.values())
        self.n_params = count_parameters(net)
        self.last: torch.Tensor | None = None
        self.averaged = [p.detach().clone() for p in self.params] if ema > 0 and average_weights else []
        self.ema: torch.Tensor | None = None  # the average of the outputs, when they are what is averaged
        if ema > 0 and not self.averaged:
            with torch.no_grad():
                self.ema = self.output(train=False).detach().clone()
        self.buffers = self.averaged or ([self.ema] if self.ema is not None else [])

    def input(self, train: bool) -> torch.Tensor:
        """The network's input: z, perturbed in a training pass."""
        z = self.z
        if train and self.input_noise > 0:
            return z + self.input_noise * torch.randn(z.shape, generator=self.generator, device=z.device)
        return z

    def target(self) -> torch.Tensor:
        """What the training pass just run is fit to."""
        return self.y

    def output(self, train: bool, weights: list[torch.Tensor] | None = None) -> torch.Tensor:
        """g(input) cropped, float32; a training pass runs in the training float type."""
        z = self.input(train)
        oy, ox, h, w = self.crop
        with torch.autocast(z.device.type, dtype=self.dtype, enabled=train and self.dtype != torch.float32):
            out = self.net(z) if weights is None else torch.func.functional_call(
                self.net, dict(zip(self.names, weights)), (z,))
        return out[:, :, oy:oy + h, ox:ox + w].float()

    def loss(self) -> torch.Tensor:
        x = self.output(train=True)
        self.last = x.detach()
        r = self.operator(x) - self.target()
        return ((r * r) * self.train_w).sum().reshape(1) / self.n_train

    def after_step(self, step: int) -> None:
        if self.averaged:
            for avg, p in zip(self.averaged, self.params):
                avg.lerp_(p.detach(), 1 - self.ema_factor)
        elif self.ema is not None:
            self.ema.mul_(self.ema_factor).add_(self.last, alpha=1 - self.ema_factor)
        if self.wmv is not None:
            self.wmv.push(self.last)

    @torch.no_grad()
    def image(self) -> torch.Tensor:
        if self.averaged:
            return self.output(train=False, weights=self.averaged)
        return self.ema if self.ema is not None else self.output(train=False)

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights whose output :meth:`image` is (the averaged ones with ``average_weights``), on the CPU."""
        values = self.averaged or self.params
        return {n: v.detach().cpu().clone() for n, v in zip(self.names, values)}

    @torch.no_grad()
    def residual(self, weights: torch.Tensor) -> torch.Tensor:
        r = self.operator(self.image()) - self.y
        return ((r * r) * weights).sum().reshape(1) / weights.sum().clamp_min(1)


class _RecorruptedRun(_ConvRun):
    """DIP denoising with the r2r loss (:class:`DIPConfig`): each training pass draws n ~ N(0, σ²), feeds the
    network y + α n and fits y − n / α; evaluation feeds y. The image is padded to the network's size by
    repeating its border."""

    def __init__(self, net, y, crop, hp: int, wp: int, *, sigma: float, alpha: float, **kw):
        oy, ox, h, w = crop
        self.pad = (ox, wp - w - ox, oy, hp - h - oy)
        self.sigma, self.alpha = float(sigma), float(alpha)
        self.fit_to = y
        super().__init__(net, self._padded(y), crop, ops.Identity(), y, input_noise=0.0, **kw)

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, self.pad, mode="replicate")

    def input(self, train: bool) -> torch.Tensor:
        if not train:
            return self.z
        n = self.sigma * torch.randn(self.y.shape, generator=self.generator, device=self.y.device)
        self.fit_to = self.y - n / self.alpha
        return self._padded(self.y + self.alpha * n)

    def target(self) -> torch.Tensor:
        return self.fit_to


class _MLPRun(_Run):
    """Tiled coordinate MLP: per-tile losses (P,) on pixel-domain measurements (identity or mask)."""

    def __init__(self, model: CoordinateMLP, tiling: Tiling, y, train_w, *, wmv: WindowedVariance | None):
        self.model, self.tiling = model, tiling
        self.uv = tiling.coordinates(y.device)
        self.target = tiling.split(_hwc(y))  # (P, M, C)
        self.train_w = tiling.split(_hwc(train_w[:, :1]))  # (P, M, 1)
        self.n_train = self.train_w.expand_as(self.target).sum((1, 2)).clamp_min(1)
        self.wmv = wmv
        self.params = list(model.parameters())
        self.buffers = []
        self.n_params = sum(p.numel() for p in self.params)
        self.last: torch.Tensor | None = None

    def loss(self) -> torch.Tensor:
        out = self.model(self.uv)
        self.last = out.detach()
        r = out - self.target
        return ((r * r) * self.train_w).sum((1, 2)) / self.n_train

    def after_step(self, step: int) -> None:
        if self.wmv is not None:
            self.wmv.push(self.last)

    @torch.no_grad()
    def image(self) -> torch.Tensor:
        return self.tiling.blend(self.model(self.uv)).clamp(0, 1).permute(2, 0, 1)[None]

    @torch.no_grad()
    def residual(self, weights: torch.Tensor) -> torch.Tensor:
        w = self.tiling.split(_hwc(weights[:, :1]))
        r = self.model(self.uv) - self.target
        return ((r * r) * w).sum().reshape(1) / w.expand_as(r).sum().clamp_min(1)

    def function(self) -> ImageFunction:
        return ImageFunction(self.model, self.tiling)


def _build_dip(config: DIPConfig, shape, operator, y, train_w, *, wmv, seed: int, generator, device,
               sigma: float | None = None) -> _Run:
    h, w, c = shape
    hp, wp = dip_padded_size(h, w, config.scales)
    r2r = config.loss == "r2r"
    if r2r and not isinstance(operator, ops.Identity):
        raise InputError("the r2r loss denoises: it needs the measurements to be the image (identity operator)")
    if r2r and not (sigma is not None and sigma > 0):
        raise InputError("the r2r loss needs the noise level sigma")
    with _seeded(seed):
        net = SkipNet(c, dataclasses.replace(config, input_channels=c) if r2r else config).to(device)
    common = dict(ema=config.ema, generator=torch.Generator(device=device).manual_seed(seed + 1), wmv=wmv,
                  dtype=training_dtype(config.precision, torch.device(device)))
    if r2r:
        return _RecorruptedRun(net, y, _crop(hp, wp, h, w), hp, wp, train_w=train_w, sigma=sigma,
                               alpha=config.recorrupt, **common)
    z = dip_input(config, (hp, wp), generator=generator, device=device)
    return _ConvRun(net, z, _crop(hp, wp, h, w), operator, y, train_w, input_noise=config.input_noise, **common)


def _build_dd(config: DDConfig, shape, operator, y, train_w, *, wmv, seed: int, generator, device,
              sigma: float | None = None) -> _Run:
    config, net, z, crop = _deep_decoder(config, shape, seed, device)
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    return _ConvRun(net, z, crop, operator, y, train_w, input_noise=0.0, ema=config.ema, generator=noise, wmv=wmv,
                    average_weights=config.average == "weights",
                    dtype=training_dtype(config.precision, torch.device(device)))


def _build_mlp(config: MLPConfig, shape, operator, y, train_w, *, wmv, seed: int, generator, device,
               sigma: float | None = None) -> _Run:
    if not isinstance(operator, (ops.Identity, ops.Mask)):
        raise InputError("method 'mlp' fits pixels: only the identity and mask operators are supported")
    h, w, c = shape
    tiling = Tiling(h, w, config.tile, config.overlap)
    model = CoordinateMLP(tiling.n, c, config, generator=generator, device=device)
    return _MLPRun(model, tiling, y, train_w, wmv=wmv)


@dataclass(frozen=True)
class Prior:
    """How one method is set up: ``config`` its settings class (with ``preset(name)``); ``build(config, (H, W, C),
    operator, y, train_w, wmv=, seed=, generator=, device=, sigma=)`` a run of it (sigma: the noise level,
    for a loss that needs it); ``widen(config, channels)`` the same
    settings with every layer ``channels`` wide; ``stop_rule`` and ``patience`` what ``StopConfig(rule="auto")``
    means for it."""

    config: type
    build: Callable[..., _Run]
    widen: Callable[[object, int], object]
    stop_rule: str
    patience: int


PRIORS = {
    "dip": Prior(DIPConfig, _build_dip, lambda cfg, k: dataclasses.replace(
        cfg, channels_down=(k,) * cfg.scales, channels_up=(k,) * cfg.scales), "heldout", 500),
    "dd": Prior(DDConfig, _build_dd, lambda cfg, k: dataclasses.replace(cfg, channels=k), "none", 300),
    "mlp": Prior(MLPConfig, _build_mlp, lambda cfg, k: dataclasses.replace(cfg, widths=(k,) * len(cfg.widths)),
                 "heldout", 300),
}
"""Every image prior, by method name."""
