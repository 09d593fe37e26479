"""Image restoration with untrained networks: denoise, super-resolve, inpaint, compress, compressed sensing.

Every task is the same problem, min_θ ‖A(g_θ) − y‖² over the weights θ of one prior g, solved by the package's
one optimisation loop (:func:`geomprior.fit.fit`):

- ``method="dip"``: Deep Image Prior skip network (:mod:`geomprior.image.dip`), input re-perturbed every step,
  output averaged (EMA); over-parameterised, so it needs early stopping;
- ``method="dd"``: Deep Decoder (:mod:`geomprior.image.decoder`), output EMA; under-parameterised, runs to the cap;
- ``method="mlp"``: tiled coordinate MLP (:mod:`geomprior.image.mlp`); pixel-domain tasks only (fit, denoise,
  inpaint).

A is an operator from :mod:`geomprior.image.operators`. Early stopping without ground truth
(:class:`StopConfig`): ``"heldout"`` keeps a random fraction of the measurements out of the loss and stops when
the fit to them stops improving; ``"wmv"`` stops near the minimum of the running variance of recent outputs;
``"discrepancy"`` (noise level σ known) stops when the residual reaches σ²; ``"none"`` runs to the cap.

Images are (H, W, C) float arrays in [0, 1]; results are :class:`ImageResult`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from geomprior.errors import InputError
from geomprior.device import pick_device
from geomprior.fit import EarlyStopping, FitResult, Progress, fit
from geomprior.image import operators as ops
from geomprior.image.decoder import DDConfig, DeepDecoder, dd_input, dd_parameter_count
from geomprior.image.dip import DIPConfig, SkipNet, count_parameters, dip_input
from geomprior.image.dip import padded_size as dip_padded_size
from geomprior.image.io import check_image
from geomprior.image.mlp import CoordinateMLP, MLPConfig, Tiling
from geomprior.image.stopping import WindowedVariance

log = logging.getLogger(__name__)

Method = Literal["dip", "dd", "mlp"]
METHODS = ("dip", "dd", "mlp")
Rule = Literal["auto", "heldout", "wmv", "discrepancy", "none"]
RULES = ("auto", "heldout", "wmv", "discrepancy", "none")
Task = Literal["fit", "denoise", "superres", "inpaint", "compress", "cs"]
TASK_METHODS = {
    "fit": ("mlp",),
    "denoise": ("dip", "dd", "mlp"),
    "superres": ("dip", "dd"),
    "inpaint": ("dip", "dd", "mlp"),
    "compress": ("dd",),
    "cs": ("dip", "dd"),
}
"""Which priors each task accepts."""

DEFAULT_ITERS = {
    ("dip", "denoise"): 3000, ("dip", "superres"): 2000, ("dip", "inpaint"): 3000, ("dip", "cs"): 3000,
    ("dd", "denoise"): 3000, ("dd", "superres"): 3000, ("dd", "inpaint"): 6000, ("dd", "cs"): 6000,
    ("dd", "compress"): 10000,
    ("mlp", "fit"): 2000, ("mlp", "denoise"): 2000, ("mlp", "inpaint"): 2000,
}
"""Iteration caps when none is given (CPU-sized; the references run DIP 3000, DD 5000-20000)."""


@dataclass(frozen=True)
class StopConfig:
    """Automatic early stopping without ground truth.

    The chosen iteration is the last one whose score lies within ``tolerance × (peak − best)`` of the best
    score; the run stops ``patience`` iterations after it (see :class:`geomprior.fit.EarlyStopping`).
    """

    rule: Rule = "auto"  # auto: dip and mlp -> heldout, dd -> none; or heldout / wmv / discrepancy / none
    holdout: float = 0.1  # heldout: fraction of the measurements kept out of the loss as validation
    window: int = 100  # wmv: number of recent outputs whose variance is watched
    patience: int | None = None  # iterations without a better score before stopping (None: 500 dip, 300 mlp)
    eval_every: int = 10  # iterations between two scores
    smoothing: float | None = None  # EMA of the scores (None: 0.5 for heldout, 0 otherwise)
    tolerance: float = 0.0  # basin of the minimum, as a fraction of (peak − best)
    sigma: float | None = None  # discrepancy: noise standard deviation on the [0, 1] scale

    def __post_init__(self):
        if self.rule not in RULES:
            raise InputError(f"unknown stopping rule {self.rule!r}; valid: {', '.join(RULES)}")
        if not 0 < self.holdout < 1:
            raise InputError(f"holdout must be in (0, 1), got {self.holdout}")
        if self.window < 2 or self.eval_every < 1 or (self.patience is not None and self.patience < 1):
            raise InputError("window must be >= 2, eval_every >= 1 and patience >= 1")

    def resolve(self, method: str) -> "StopConfig":
        """The rule, patience and smoothing used for ``method`` (``auto`` filled in)."""
        rule = self.rule
        if rule == "auto":
            rule = {"dip": "heldout", "dd": "none", "mlp": "heldout"}[method]
        patience = self.patience if self.patience is not None else (500 if method == "dip" else 300)
        smoothing = self.smoothing if self.smoothing is not None else (0.5 if rule == "heldout" else 0.0)
        if rule == "discrepancy" and (self.sigma is None or not self.sigma > 0):
            raise InputError("the discrepancy rule needs the noise level sigma")
        return dataclasses.replace(self, rule=rule, patience=patience, smoothing=smoothing)


@dataclass
class ImageResult:
    """What a run produced."""

    image: np.ndarray  # (H, W, C) float32 in [0, 1]
    method: str  # dip / dd / mlp
    task: str  # fit / denoise / superres / inpaint / compress / cs
    steps: int  # iterations run
    best_step: int  # iteration whose output is returned
    reason: str  # why the run stopped
    parameters: int  # trainable weights of the prior
    stop_rule: str  # early-stopping rule used
    history: dict = field(default_factory=dict)  # per-evaluation step, loss, val, psnr (with a reference), time
    psnr: float | None = None  # against the reference, when one was given
    extra: dict = field(default_factory=dict)  # task-specific numbers (e.g. compression ratio, measurements)
    weights: dict | None = field(default=None, repr=False)  # Deep Decoder: the weights whose output is ``image``

    @property
    def summary(self) -> str:
        """Where the run stopped and why, in one line."""
        runs = self.extra.get("runs")
        if runs:
            text = (f"{self.method} {self.task}: average of {len(runs)} runs (seeds {runs[0]['seed']}-"
                    f"{runs[-1]['seed']}), outputs of iterations {', '.join(str(r['best_step']) for r in runs)} "
                    f"(stopped after {', '.join(str(r['steps']) for r in runs)}); first run: {self.reason}")
        else:
            text = (f"{self.method} {self.task}: stopped after {self.steps} iterations: {self.reason}; "
                    f"output of iteration {self.best_step}")
        if self.stop_rule != "none":
            text += f" (stopping rule: {self.stop_rule})"
        if self.psnr is not None:
            text += f"; PSNR {self.psnr:.2f} dB"
        return text

    def to_json(self) -> dict:
        """Everything but the image and the weights, JSON-safe (NaN -> null)."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("image", "weights")}
        out["height"], out["width"], out["channels"] = self.image.shape
        return clean(out)


# --------------------------------------------------------------------------------------------
# helpers


def psnr(image: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1], over all channels."""
    a = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).double()
    b = torch.as_tensor(np.asarray(reference) if not isinstance(reference, torch.Tensor) else reference).double()
    mse = float(((a - b.to(a.device)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _check_method(task: str, method: str) -> None:
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if method not in TASK_METHODS[task]:
        raise InputError(f"method {method!r} does not do {task}; valid for {task}: {', '.join(TASK_METHODS[task])}")


def make_config(method: Method, preset: str = "default", *, channels: int | None = None):
    """The settings of ``method`` for a named preset, optionally with every layer ``channels`` wide
    (DIP: encoder and decoder widths; DD: k; MLP: hidden widths)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    kind = {"dip": DIPConfig, "dd": DDConfig, "mlp": MLPConfig}[method]
    cfg = kind.preset(preset)
    if channels is None:
        return cfg
    if channels < 1:
        raise InputError(f"channels must be >= 1, got {channels}")
    if method == "dip":
        return dataclasses.replace(cfg, channels_down=(channels,) * cfg.scales, channels_up=(channels,) * cfg.scales)
    if method == "dd":
        return dataclasses.replace(cfg, channels=channels)
    return dataclasses.replace(cfg, widths=(channels,) * len(cfg.widths))


def _config_for(method: str, config, preset: str):
    kind = {"dip": DIPConfig, "dd": DDConfig, "mlp": MLPConfig}[method]
    if config is None:
        return kind.preset(preset)
    if not isinstance(config, kind):
        raise InputError(f"method {method!r} needs a {kind.__name__}, got {type(config).__name__}")
    return config


def _dd_for_measurements(config: DDConfig, measured: int, out_channels: int) -> DDConfig:
    """A Deep Decoder for exact measurements (inpainting, compressed sensing): twice the preset's k when the
    preset has fewer weights than measured values. There is no noise to under-fit there, and a decoder with fewer
    weights than constraints cannot match them: at k = 64 on a 256² RGB image with half the pixels known (25k
    weights, 98k values) DD's output stays below biharmonic inpainting (measured before inpainting kept the known
    pixels), at k = 128 with 6000 iterations it beats it (``scripts/bench_image.py``, inpaint rows)."""
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


def _to_nchw(image: np.ndarray, device) -> torch.Tensor:
    return torch.as_tensor(image, dtype=torch.float32).permute(2, 0, 1)[None].contiguous().to(device)


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().permute(1, 2, 0).float().cpu().numpy().clip(0, 1)


@contextlib.contextmanager
def _seeded(seed: int):
    """Layers initialised from the global RNG, without changing it for the caller."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _observed(operator: ops.Operator, y: torch.Tensor) -> torch.Tensor:
    """(1, ...) float weights: 1 where y holds a measurement (a Mask's missing pixels hold none)."""
    op = operator
    while isinstance(op, ops.Compose):
        op = op.outer
    if isinstance(op, ops.Mask):
        return op.mask.expand_as(y[0])[None].to(y.dtype).clone()
    return torch.ones_like(y)


def _heldout(observed: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """(1, ...) float: a random ``fraction`` of the observed measurements (whole pixels for images)."""
    shape = list(observed.shape)
    if observed.dim() == 4:  # (1, C, H, W): hold out all channels of a pixel together
        shape[1] = 1
    pick = (torch.rand(shape, generator=generator) < fraction).to(observed.device, observed.dtype)
    held = pick.expand_as(observed) * observed
    if not bool(held.any()):  # tiny inputs: hold out at least one measurement
        flat = observed.reshape(-1)
        first = int(torch.nonzero(flat)[0])
        held = torch.zeros_like(flat)
        held[first] = 1
        held = held.reshape(observed.shape)
    return held


# --------------------------------------------------------------------------------------------
# the solver


class _Run:
    """Closures handed to ``fit`` for one prior: loss, validation score, per-step hook, current image."""

    params: list[torch.Tensor]
    buffers: list[torch.Tensor]
    n_params: int

    def loss(self) -> torch.Tensor: ...
    def after_step(self, step: int) -> None: ...
    def image(self) -> torch.Tensor: ...  # (1, C, H, W) current estimate, no grad
    def residual(self, weights: torch.Tensor) -> torch.Tensor: ...  # (1,) weighted mean squared residual


class _ConvRun(_Run):
    """DIP or DD: one network g(z) -> (1, C, Hp, Wp), cropped to (H, W); optional input noise and an EMA of the
    outputs (the references' average) or of the weights (``average_weights``: the estimate is then g(averaged
    weights), the output of one network)."""

    def __init__(self, net, z, crop, operator, y, train_w, *, input_noise: float, ema: float,
                 generator: torch.Generator, wmv: WindowedVariance | None, average_weights: bool = False):
        self.net, self.z, self.crop = net, z, crop
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
                self.ema = self.output(perturb=False).detach().clone()
        self.buffers = self.averaged or ([self.ema] if self.ema is not None else [])

    def output(self, perturb: bool, weights: list[torch.Tensor] | None = None) -> torch.Tensor:
        z = self.z
        if perturb and self.input_noise > 0:
            z = z + self.input_noise * torch.randn(z.shape, generator=self.generator, device=z.device)
        oy, ox, h, w = self.crop
        out = self.net(z) if weights is None else torch.func.functional_call(
            self.net, dict(zip(self.names, weights)), (z,))
        return out[:, :, oy:oy + h, ox:ox + w]

    def loss(self) -> torch.Tensor:
        x = self.output(perturb=True)
        self.last = x.detach()
        r = self.operator(x) - self.y
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
            return self.output(perturb=False, weights=self.averaged)
        return self.ema if self.ema is not None else self.output(perturb=False)

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights whose output :meth:`image` is (the averaged ones with ``average_weights``), on the CPU."""
        values = self.averaged or self.params
        return {n: v.detach().cpu().clone() for n, v in zip(self.names, values)}

    @torch.no_grad()
    def residual(self, weights: torch.Tensor) -> torch.Tensor:
        r = self.operator(self.image()) - self.y
        return ((r * r) * weights).sum().reshape(1) / weights.sum().clamp_min(1)


class _MLPRun(_Run):
    """Tiled coordinate MLP: per-tile losses (P,) on pixel-domain measurements (identity or mask)."""

    def __init__(self, model: CoordinateMLP, tiling: Tiling, y_img, train_img, *, wmv: WindowedVariance | None):
        self.model, self.tiling = model, tiling
        self.uv = tiling.coordinates(y_img.device)
        self.target = tiling.split(y_img)  # (P, M, C)
        self.train_w = tiling.split(train_img)  # (P, M, 1 or C)
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
        return self.tiling.blend(self.model(self.uv)).permute(2, 0, 1)[None]

    @torch.no_grad()
    def residual(self, weights_img: torch.Tensor) -> torch.Tensor:
        w = self.tiling.split(weights_img)
        r = self.model(self.uv) - self.target
        return ((r * r) * w).sum().reshape(1) / w.expand_as(r).sum().clamp_min(1)


def solve(y: torch.Tensor, operator: ops.Operator, shape: tuple[int, int, int], *, runs: int = 1, seed: int = 0,
          progress: Progress | None = None, **kw) -> ImageResult:
    """Fit a prior g so that operator(g) matches the measurements y (keywords: see :func:`_solve_one`).

    runs : independent runs with seeds ``seed, seed + 1, ...``, each stopping on its own rule, whose outputs are
           averaged: the runs' errors are partly independent, so the average is closer to the truth than any one
           of them (measured by ``scripts/bench_image.py``, denoising rows ``runs3``) at ``runs`` times the cost
    """
    if isinstance(runs, bool) or int(runs) != runs or runs < 1:
        raise InputError(f"runs must be an integer >= 1, got {runs!r}")
    if runs == 1:
        return _solve_one(y, operator, shape, seed=seed, progress=progress, **kw)
    results = []
    for i in range(int(runs)):
        report = None if progress is None else (
            lambda stage, *a, i=i: progress(f"{stage} (run {i + 1}/{runs})", *a))
        results.append(_solve_one(y, operator, shape, seed=seed + i, progress=report, **kw))
    return _averaged(results, seed, kw.get("reference"))


def _averaged(results: list[ImageResult], seed: int, reference: np.ndarray | None) -> ImageResult:
    """One result from several runs: the mean image; the first run's history; each run's stop in ``extra``."""
    first = results[0]
    image = np.mean([r.image for r in results], axis=0).astype(np.float32)
    runs = [dict(seed=seed + i, steps=r.steps, best_step=r.best_step, reason=r.reason, psnr=r.psnr,
                 oracle_psnr=max(r.history["psnr"]) if r.history.get("psnr") else None)
            for i, r in enumerate(results)]
    result = dataclasses.replace(first, image=image, steps=sum(r.steps for r in results), weights=None,
                                 psnr=psnr(image, reference) if reference is not None else None,
                                 extra={**first.extra, "runs": runs})
    log.info("%s", result.summary)
    return result


def _solve_one(
    y: torch.Tensor,
    operator: ops.Operator,
    shape: tuple[int, int, int],
    *,
    method: Method = "dip",
    task: Task = "denoise",
    config: DIPConfig | DDConfig | MLPConfig | None = None,
    preset: str = "default",
    stop: StopConfig | None = None,
    iters: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    reference: np.ndarray | None = None,
    progress: Progress | None = None,
    keep_known: bool = False,
) -> ImageResult:
    """One run of :func:`solve`.

    y        : (1, ...) measurements, ``operator.output_shape((C, H, W))``
    operator : a linear operator on (1, C, H, W) images (identity or mask for ``method="mlp"``)
    shape    : (H, W, C) of the image sought
    config   : DIPConfig / DDConfig / MLPConfig for the method (default: ``<Config>.preset(preset)``); a Deep
               Decoder deeper than the image allows (input under 4 pixels a side) is made shallower, with a warning
    stop     : early stopping (default StopConfig(): heldout for dip and mlp, none for dd)
    iters    : iteration cap (default :data:`DEFAULT_ITERS`)
    reference: (H, W, C) ground truth; only reported (PSNR in the progress and the history), never used to stop
    progress : (stage, step, total, info) callback, info holds loss (and val, psnr)
    keep_known: the estimate keeps the measured pixels exactly (mask operator only; see :meth:`ops.Mask.keep_known`)
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    h, w, c = (int(s) for s in shape)
    widen = method == "dd" and config is None and task in ("inpaint", "cs")
    config = _config_for(method, config, preset)
    stop = (stop or StopConfig()).resolve(method)
    iters = DEFAULT_ITERS.get((method, task), 2000) if iters is None else int(iters)
    if iters < 0:
        raise InputError(f"iters must be >= 0, got {iters}")
    if keep_known and not isinstance(operator, ops.Mask):
        raise InputError("keep_known needs the mask operator (inpainting)")
    dev = pick_device(device)
    operator = operator.to(dev)
    y = y.to(dev, torch.float32)
    expected = (1, *operator.output_shape((c, h, w)))
    if tuple(y.shape) != expected:
        raise InputError(f"measurements have shape {tuple(y.shape)}, the operator gives {expected}")
    if reference is not None:
        reference = check_image(reference, "reference")
        if reference.shape != (h, w, c):
            raise InputError(f"reference is {reference.shape[1]}x{reference.shape[0]}x{reference.shape[2]}, "
                             f"the result is {w}x{h}x{c} (width x height x channels)")

    gen = torch.Generator().manual_seed(seed)
    observed = _observed(operator, y)
    if widen:
        config = _dd_for_measurements(config, int(observed.sum()), c)
    if stop.rule == "heldout":
        held = _heldout(observed, stop.holdout, gen)
        train_w = observed - held
    else:
        held, train_w = None, observed
    if not bool(train_w.any()):
        raise InputError("no measurement is left to fit")
    wmv = WindowedVariance(stop.window) if stop.rule == "wmv" else None

    if method == "mlp":
        if not isinstance(operator, (ops.Identity, ops.Mask)):
            raise InputError("method 'mlp' fits pixels: only the identity and mask operators are supported")
        tiling = Tiling(h, w, config.tile, config.overlap)
        model = CoordinateMLP(tiling.n, c, config, generator=gen, device=dev)
        to_img = lambda t: t[0].permute(1, 2, 0)  # noqa: E731  (1, C', H, W) -> (H, W, C')
        run: _Run = _MLPRun(model, tiling, to_img(y), to_img(train_w[:, :1]), wmv=wmv)
        held_arg = to_img(held[:, :1]) if held is not None else None
        train_arg = to_img(train_w[:, :1])
        lr = config.lr
    else:
        if method == "dip":
            hp, wp = dip_padded_size(h, w, config.scales)
            with _seeded(seed):
                net = SkipNet(c, config).to(dev)
            z = dip_input(config, (hp, wp), generator=gen, device=dev)
            crop = _crop(hp, wp, h, w)
            input_noise = config.input_noise
        else:
            config, net, z, crop = _deep_decoder(config, (h, w, c), seed, dev)
            input_noise = 0.0
        noise_gen = torch.Generator(device=dev).manual_seed(seed + 1)
        run = _ConvRun(net, z, crop, operator, y, train_w, input_noise=input_noise, ema=config.ema,
                       generator=noise_gen, wmv=wmv, average_weights=method == "dd" and config.average == "weights")
        held_arg, train_arg = held, train_w
        lr = config.lr

    validate: Callable[[], torch.Tensor] | None = None
    if stop.rule == "heldout":
        validate = lambda: run.residual(held_arg).cpu()  # noqa: E731
    elif stop.rule == "wmv":
        validate = lambda: wmv.value().sum().reshape(1)  # noqa: E731
    elif stop.rule == "discrepancy":
        level = float(stop.sigma) ** 2
        validate = lambda: (run.residual(train_arg).cpu() - level).abs()  # noqa: E731
    stopper = EarlyStopping(
        mode="run" if stop.rule != "none" else "none",
        patience=max(1, math.ceil(stop.patience / stop.eval_every)),
        smoothing=stop.smoothing, tolerance=stop.tolerance,
    )

    ref_t = torch.as_tensor(reference, device=dev).permute(2, 0, 1)[None] if reference is not None else None
    latest: dict = {}

    def estimate() -> torch.Tensor:
        x = run.image()
        return operator.keep_known(x, y) if keep_known else x

    def monitor(step: int) -> dict:
        latest.clear()
        if ref_t is not None:
            latest["psnr"] = psnr(estimate(), ref_t)
        return dict(latest)

    def report(stage, step, total, info):
        if progress is not None:
            progress(stage, step, total, {**info, **latest})

    log.info("%s %s: %d weights, %s, stopping rule %s, cap %d iterations", method, task, run.n_params, dev,
             stop.rule, iters)
    res: FitResult = fit(
        run.params, run.loss, max_steps=iters, lr=lr, validate=validate, eval_every=stop.eval_every,
        stopper=stopper, monitor=monitor if ref_t is not None else None, progress=report,
        stage=f"{method} {task}", after_step=run.after_step, buffers=run.buffers,
        lr_decay=getattr(config, "lr_decay", "none"),
    )
    image = _to_hwc(estimate())
    best = int(res.best_step[0]) if stop.rule != "none" and res.history.get("val") else res.steps
    reason = res.reason
    if reason.startswith("validation stopped improving"):
        what = {"heldout": "the fit to the held-out measurements", "wmv": "the variance of recent outputs",
                "discrepancy": "the distance of the residual to the noise level"}[stop.rule]
        reason = f"{what} stopped improving for {stop.patience} iterations"
    elif stop.rule == "wmv" and reason.startswith("reached the cap") and not _has_score(res):
        reason += f" (fewer than {stop.window} outputs for the variance window)"
    history = {k: v for k, v in res.history.items() if k != "active"}
    result = ImageResult(
        image=image, method=method, task=task, steps=res.steps, best_step=best, reason=reason,
        parameters=run.n_params, stop_rule=stop.rule, history=history,
        psnr=psnr(image, reference) if reference is not None else None,
        weights=run.weights() if method == "dd" else None,
    )
    log.info("%s", result.summary)
    return result


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


def _has_score(res: FitResult) -> bool:
    return any(isinstance(v, float) and math.isfinite(v) for v in res.history.get("val", []))


# --------------------------------------------------------------------------------------------
# tasks


def _common(image, name, method, task):
    _check_method(task, method)
    return check_image(image, name)


def fit_image(image: np.ndarray, *, config: MLPConfig | None = None, preset: str = "default",
              stop: StopConfig | None = None, iters: int | None = None, device="auto", seed: int = 0,
              progress: Progress | None = None) -> ImageResult:
    """Represent an image (H, W, C) as tiled coordinate MLPs and return their blended output.

    Runs to the cap by default (a rule "auto" means "none" here): the aim is the closest fit.
    """
    img = _common(image, "image", "mlp", "fit")
    stop = stop or StopConfig(rule="none")
    if stop.rule == "auto":
        stop = dataclasses.replace(stop, rule="none")
    return solve(_to_nchw(img, "cpu"), ops.Identity(), img.shape, method="mlp", task="fit", config=config,
                 preset=preset, stop=stop, iters=iters, device=device, seed=seed,
                 reference=img, progress=progress)


DIP_DENOISE_RUNS = 4
"""DIP denoising without a ``config`` or ``runs``: this many runs, each 1/√runs of the preset's width, averaged."""


def dip_denoise_config(preset: str = "default") -> DIPConfig:
    """The network of each of the :data:`DIP_DENOISE_RUNS` default denoising runs: 1/√runs of the preset's width
    (the cost of a convolution goes with the square of its width)."""
    width = DIPConfig.preset(preset).channels_down[0]
    return make_config("dip", preset, channels=round(width / math.sqrt(DIP_DENOISE_RUNS)))


def denoise(noisy: np.ndarray, *, method: Method = "dip", sigma: float | None = None, config=None,
            preset: str = "default", stop: StopConfig | None = None, iters: int | None = None, device="auto",
            seed: int = 0, reference: np.ndarray | None = None, progress: Progress | None = None,
            runs: int | None = None) -> ImageResult:
    """Denoise a noisy image (H, W, C) in [0, 1].

    sigma : the noise standard deviation on the [0, 1] scale, if known; it enables ``StopConfig(rule="discrepancy")``
            (and is used by it when the StopConfig has no sigma of its own)
    runs  : independent runs averaged (see :func:`solve`); None: 1, except DIP without a ``config``, which runs
            :data:`DIP_DENOISE_RUNS` networks of :func:`dip_denoise_config`: about twice the time of one
            full-width run on a 2-core CPU, and better on every image of ``scripts/bench_image.py`` (rows ``plain``
            against ``run1``)
    """
    img = _common(noisy, "noisy image", method, "denoise")
    if runs is None:
        runs = 1
        if method == "dip" and config is None:
            runs, config = DIP_DENOISE_RUNS, dip_denoise_config(preset)
    stop = stop or StopConfig()
    if sigma is not None and stop.sigma is None:
        stop = dataclasses.replace(stop, sigma=float(sigma))
    return solve(_to_nchw(img, "cpu"), ops.Identity(), img.shape, method=method, task="denoise", config=config,
                 preset=preset, stop=stop, iters=iters, device=device, seed=seed, reference=reference,
                 progress=progress, runs=runs)


def superresolve(small: np.ndarray, factor: int, *, method: Method = "dip", kernel: ops.Kernel = "lanczos2",
                 config=None, preset: str = "default", stop: StopConfig | None = None, iters: int | None = None,
                 device="auto", seed: int = 0, reference: np.ndarray | None = None,
                 progress: Progress | None = None, runs: int = 1) -> ImageResult:
    """Upsample a low-resolution image (h, w, C) by an integer ``factor``: the result (h·f, w·f, C) matches the
    input after antialiased downsampling (``kernel``)."""
    img = _common(small, "low-resolution image", method, "superres")
    if int(factor) != factor or factor < 2:
        raise InputError(f"factor must be an integer >= 2, got {factor!r}")
    factor = int(factor)
    h, w, c = img.shape
    if reference is not None:
        ref = check_image(reference, "reference")
        if ref.shape[0] % factor or ref.shape[1] % factor:
            raise InputError(f"reference size {ref.shape[1]}x{ref.shape[0]} is not divisible by the factor {factor}")
        if ref.shape[:2] != (h * factor, w * factor):
            raise InputError(f"reference is {ref.shape[1]}x{ref.shape[0]}, expected the input size times {factor}: "
                             f"{w * factor}x{h * factor}")
    return solve(_to_nchw(img, "cpu"), ops.Downsample(factor, kernel), (h * factor, w * factor, c), method=method,
                 task="superres", config=config, preset=preset, stop=stop, iters=iters, device=device, seed=seed,
                 reference=reference, progress=progress, runs=runs)


def inpaint(damaged: np.ndarray, mask: np.ndarray, *, method: Method = "dip", config=None, preset: str = "default",
            stop: StopConfig | None = None, iters: int | None = None, device="auto", seed: int = 0,
            reference: np.ndarray | None = None, progress: Progress | None = None, runs: int = 1,
            keep_known: bool = True) -> ImageResult:
    """Fill the missing pixels of ``damaged`` (H, W, C); mask (H, W) bool, True = known pixel.

    keep_known: the result keeps the known pixels exactly, as ``skimage.restoration.inpaint_biharmonic`` does, and
                the network fills only the missing ones; False returns the network's output everywhere (for known
                pixels that carry noise)
    """
    img = _common(damaged, "damaged image", method, "inpaint")
    m = np.asarray(mask)
    if m.shape != img.shape[:2]:
        raise InputError(f"mask is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]} but the image is "
                         f"{img.shape[1]}x{img.shape[0]} (width x height)")
    m = m.astype(bool)
    if not m.any():
        raise InputError("the mask marks no pixel as known")
    op = ops.Mask(m)
    y = op(_to_nchw(img, "cpu"))
    res = solve(y, op, img.shape, method=method, task="inpaint", config=config, preset=preset, stop=stop,
                iters=iters, device=device, seed=seed, reference=reference, progress=progress, runs=runs,
                keep_known=keep_known)
    res.extra["keep_known"] = keep_known
    return res


def compress_config(channels: int = 64, depth: int = 5) -> DDConfig:
    """The Deep Decoder :func:`compress` trains without a ``config``: k = ``channels``, d = ``depth``; Adam from lr
    0.02 decaying to 0 along a cosine (a small decoder that must fit every pixel gains from both; denoising keeps
    the plain 0.005); zero-mean Gaussian input and each block normalised before its ReLU (the same weights fit
    more of the image: camera 256² at ≈ 30×, 5000 iterations, 25.72 → 26.57 dB; ``scripts/bench_image.py --tasks
    compress``); weights averaged along the run (an average of the outputs would be no network's output)."""
    return DDConfig(channels=channels, depth=depth, lr=0.02, lr_decay="cosine", input="gaussian",
                    norm_before_relu=True, average="weights")


def compress(image: np.ndarray, *, channels: int = 64, depth: int = 5, config: DDConfig | None = None,
             iters: int | None = None, device="auto", seed: int = 0, progress: Progress | None = None) -> ImageResult:
    """Represent an image (H, W, C) by the weights of a Deep Decoder (default: :func:`compress_config`).

    The code is the weights (``result.weights``; the input noise is regenerated from ``seed``):
    ``decompress(result.weights, image.shape, config or compress_config(channels, depth), seed=seed)`` gives
    ``result.image`` back. The weights are averaged along the run (``DDConfig.average = "weights"`` is forced).
    ``extra`` holds ``ratio`` = pixel values / weights and ``bits_per_pixel`` at 32-bit weights. Runs to the cap
    (no early stopping).
    """
    img = _common(image, "image", "dd", "compress")
    cfg = dataclasses.replace(config or compress_config(channels, depth), average="weights")
    res = solve(_to_nchw(img, "cpu"), ops.Identity(), img.shape, method="dd", task="compress", config=cfg,
                stop=StopConfig(rule="none"), iters=iters, device=device, seed=seed, reference=img,
                progress=progress)
    h, w, c = img.shape
    res.extra.update(ratio=h * w * c / res.parameters, bits_per_pixel=32 * res.parameters / (h * w))
    return res


def decompress(weights: dict, shape: tuple[int, int, int], config: DDConfig, *, seed: int = 0,
               device="cpu") -> np.ndarray:
    """The (H, W, C) image of a Deep Decoder with these weights (:func:`compress`'s ``result.weights``, the same
    ``config`` and ``seed``; or what :func:`geomprior.image.io.read_code` read from a code file)."""
    dev = pick_device(device)
    _, net, z, (oy, ox, h, w) = _deep_decoder(config, tuple(int(s) for s in shape), seed, dev)
    try:
        net.load_state_dict({name: torch.as_tensor(w) for name, w in weights.items()})
    except RuntimeError as e:
        raise InputError(f"these weights are not a Deep Decoder of k = {config.channels}, d = {config.depth} for "
                         f"{shape[2]} channel(s): {str(e).splitlines()[0]}") from None
    with torch.no_grad():
        return _to_hwc(net(z)[:, :, oy:oy + h, ox:ox + w])


def make_cs_operator(shape: tuple[int, int, int], ratio: float, *, kind: Literal["gaussian", "fourier"] = "gaussian",
                     block: int | None = 32, seed: int = 0) -> ops.Operator:
    """A compressed-sensing operator for images (H, W, C): Gaussian (in ``block``×``block`` blocks, None = dense)
    or subsampled Fourier; ``ratio`` = measurements / pixel values in (0, 1]."""
    h, w, c = shape
    if kind == "gaussian":
        return ops.GaussianMeasurement((c, h, w), ratio, block=block, seed=seed)
    if kind == "fourier":
        return ops.SubsampledFourier((c, h, w), ratio, seed=seed)
    raise InputError(f"unknown measurement operator {kind!r}; valid: gaussian, fourier")


def compressed_sensing(image: np.ndarray, ratio: float, *, method: Method = "dd",
                       operator: Literal["gaussian", "fourier"] = "gaussian", block: int | None = 32,
                       noise: float = 0.0, config=None, preset: str = "default", stop: StopConfig | None = None,
                       iters: int | None = None, device="auto", seed: int = 0,
                       progress: Progress | None = None, runs: int = 1) -> ImageResult:
    """Simulate compressed measurements y = A x (+ N(0, noise²)) of ``image`` (H, W, C) and recover x from y alone.

    The PSNR is measured against ``image``; ``extra`` holds the operator's actual ratio and measurement count.
    """
    img = _common(image, "image", method, "cs")
    op = make_cs_operator(img.shape, ratio, kind=operator, block=block, seed=seed)
    with torch.no_grad():
        y = op(_to_nchw(img, "cpu"))
        if noise > 0:
            y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 2))
    res = solve(y, op, img.shape, method=method, task="cs", config=config, preset=preset, stop=stop, iters=iters,
                device=device, seed=seed, reference=img, progress=progress, runs=runs)
    res.extra.update(measurements=int(y.numel()), ratio=float(op.ratio), operator=operator)
    return res
