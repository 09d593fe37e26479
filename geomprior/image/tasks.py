"""Image restoration with untrained networks: fit, denoise, super-resolve, inpaint, compress, compressed sensing.

Each task builds its measurements y and operator A and calls :func:`geomprior.image.solver.solve`, or, for the
methods ``csgm``, ``iagan`` and ``lcm`` with a trained ``generator`` (denoise, superresolve, inpaint,
compressed_sensing), :func:`geomprior.image.generative.invert`. Every task takes
a :class:`~geomprior.image.solver.SolveOptions` (``options=``) and/or any of its fields as keywords: ``method``
(``dip``, ``dd``, ``mlp``: :mod:`geomprior.image.priors`), ``config``, ``preset``, ``stop``, ``iters``,
``device``, ``seed``, ``reference``, ``progress``, ``runs``. Images are (H, W, C) float arrays in [0, 1]; results
are :class:`~geomprior.image.solver.ImageResult`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch

from geomprior.device import pick_device
from geomprior.errors import InputError
from geomprior.image import operators as ops
from geomprior.image.decoder import DDConfig
from geomprior.image.dip import DIPConfig
from geomprior.image.io import check_image
from geomprior.image.priors import _deep_decoder
from geomprior.image.solver import (
    DEFAULT_ITERS,
    GENERATIVE,
    ImageResult,
    SolveOptions,
    StopConfig,
    _to_hwc,
    _to_nchw,
    check_method,
    make_config,
    options,
    psnr,
    solve,
)
from geomprior.image.wiener import wiener_refine

__all__ = ["DD_DENOISE_RUNS", "DEFAULT_ITERS", "DIP_DENOISE_CHANNELS", "DIP_DENOISE_NOISE_STEPS", "DIP_DENOISE_STEPS",
           "ImageResult", "SolveOptions", "StopConfig", "compress", "compress_config", "compressed_sensing",
           "dd_denoise_config", "decompress", "denoise", "dip_denoise_config", "dip_denoise_schedule",
           "estimate_noise", "fit_image", "inpaint", "make_config", "make_cs_operator", "pick_device", "psnr", "solve",
           "superresolve"]


def _prepared(image, name: str, task: str, given: SolveOptions | None,
              changes: dict) -> tuple[np.ndarray, SolveOptions]:
    """The checked image and the run's options (``given`` with ``changes``), the task's method checked."""
    opts = options(given, **changes)
    return check_image(image, name), dataclasses.replace(opts, method=check_method(task, opts.method))


def _recover(y: torch.Tensor, operator: ops.Operator, shape: tuple[int, int, int], opts: SolveOptions, task: str,
             generator, *, noiseless: bool, keep_known: bool = False, **changes) -> ImageResult:
    """The image behind the measurements y: :func:`solve` with the untrained priors, or a trained ``generator``'s
    recovery for the generative methods (noiseless: the measurements are exact). ``changes``: SolveOptions fields
    for this run."""
    if opts.method not in GENERATIVE:
        return solve(y, operator, shape, opts, task=task, keep_known=keep_known, **changes)
    return _generative(y, operator, shape, options(opts, **changes), task, generator, noiseless=noiseless,
                       keep_known=keep_known)


def _generative(y: torch.Tensor, operator: ops.Operator, shape: tuple[int, int, int], opts: SolveOptions,
                task: str, generator, *, noiseless: bool, keep_known: bool) -> ImageResult:
    """A trained generator's recovery (:func:`geomprior.image.generative.invert`) as an ImageResult."""
    from geomprior.image.generative import InvertConfig, invert

    if generator is None:
        raise InputError(f"method {opts.method!r} needs a trained generator (geomprior.image.load_generator)")
    h, w, c = shape
    if tuple(generator.image_shape) != (c, h, w):
        gc, gh, gw = generator.image_shape
        raise InputError(f"the generator makes {gw}x{gh}x{gc} images, this task needs {w}x{h}x{c} "
                         "(width x height x channels)")
    if opts.config is not None and not isinstance(opts.config, InvertConfig):
        raise InputError(f"method {opts.method!r} needs an InvertConfig, got {type(opts.config).__name__}")
    pick_device(opts.device)  # checked; the generator runs on the CPU
    res = invert(generator, operator, y, method=opts.method, config=opts.config, noiseless=noiseless,
                 seed=opts.seed, progress=opts.progress)
    image = res.image
    if keep_known:
        image = _to_hwc(operator.keep_known(_to_nchw(image, "cpu"), y.float()))
    cfg = opts.config or InvertConfig()
    steps = cfg.steps + (cfg.adapt_steps if opts.method != "csgm" else 0)
    reference = check_image(opts.reference, "reference") if opts.reference is not None else None
    return ImageResult(image=image, method=opts.method, task=task, steps=steps, best_step=steps,
                       reason="ran its fixed number of steps", stop_rule="none",
                       parameters=sum(p.numel() for p in generator.module.parameters()), history=res.history,
                       psnr=psnr(image, reference) if reference is not None else None,
                       extra={"residual": res.residual})


def fit_image(image: np.ndarray, options: SolveOptions | None = None, **changes) -> ImageResult:
    """Represent an image (H, W, C) as tiled coordinate MLPs and return their blended output.

    Runs to the cap by default (a rule "auto" means "none" here): the aim is the closest fit.
    """
    img, opts = _prepared(image, "image", "fit", options, changes)
    stop = opts.stop or StopConfig(rule="none")
    if stop.rule == "auto":
        stop = dataclasses.replace(stop, rule="none")
    return solve(_to_nchw(img, "cpu"), ops.Identity(), img.shape, opts, task="fit", stop=stop, reference=img)


DIP_DENOISE_STEPS = {"fast": 1200, "default": 5000, "quality": 5000}
"""DIP denoising without a ``config`` or ``runs``: the iterations of all its runs together, per preset (fast: one
run, a 256² RGB image within 3 minutes on a 2-core CPU); see :func:`dip_denoise_schedule`."""
DIP_DENOISE_NOISE_STEPS = 225.0
"""A default DIP denoising run's length × the noise level σ (on the [0, 1] scale): 2500 iterations at σ = 0.09. Its
network fits the signal first, then slowly learns the noise, the sooner the stronger the noise is."""
DIP_DENOISE_CHANNELS = {"fast": 32, "default": 32, "quality": 64}
"""The width of the default DIP denoising runs' networks, per preset (:func:`dip_denoise_config`)."""
DD_DENOISE_RUNS = 2
"""Deep Decoder denoising without a ``config`` or ``runs``: this many runs of :func:`dd_denoise_config`, averaged."""


def dip_denoise_config(preset: str = "default") -> DIPConfig:
    """The network of each default denoising run: :data:`DIP_DENOISE_CHANNELS` wide, the preset's scales, fit with
    the r2r loss (:class:`DIPConfig`), so that no run needs an early stop."""
    return make_config("dip", preset, channels=DIP_DENOISE_CHANNELS[preset], task="denoise")


def dip_denoise_schedule(preset: str, sigma: float) -> tuple[int, int]:
    """(runs, iterations per run) of the default DIP denoising at noise level ``sigma``: runs of
    :data:`DIP_DENOISE_NOISE_STEPS` / σ iterations (the point where a run starts to learn the noise) sharing the
    preset's :data:`DIP_DENOISE_STEPS`, outputs averaged: each run's error is partly its own."""
    budget = DIP_DENOISE_STEPS[preset]
    iters = max(1, min(budget, round(DIP_DENOISE_NOISE_STEPS / max(float(sigma), 1e-6))))
    return max(1, round(budget / iters)), iters


def dd_denoise_config(preset: str = "default") -> DDConfig:
    """The decoder of each of the :data:`DD_DENOISE_RUNS` default denoising runs: the preset's k, trained as
    :func:`compress_config` trains (an under-parameterised decoder fits more of the image in the same steps), its
    outputs averaged, training passes in the default precision. Each run's error is mostly its own decoder's bias,
    so the average of runs removes part of it."""
    return dataclasses.replace(compress_config(DDConfig.preset(preset).channels), average="outputs",
                               precision=DDConfig().precision)


def estimate_noise(image: np.ndarray) -> float:
    """The standard deviation of additive white noise in ``image`` (H, W, C) in [0, 1], on the same scale:
    scikit-image's wavelet estimate (the median absolute finest-scale diagonal coefficient / 0.6745, Donoho and
    Johnstone 1994), averaged over the channels."""
    from skimage.restoration import estimate_sigma

    img = check_image(image, "image")
    return float(estimate_sigma(img, channel_axis=-1, average_sigmas=True))


def denoise(noisy: np.ndarray, options: SolveOptions | None = None, *, wiener: bool = True, generator=None,
            **changes) -> ImageResult:
    """Denoise a noisy image (H, W, C) in [0, 1].

    sigma : the noise standard deviation on the [0, 1] scale, if known (a SolveOptions field, or a StopConfig's);
            :func:`estimate_noise` otherwise. DIP's default r2r loss, the discrepancy rule and the Wiener step use
            it (``result.extra["sigma"]``: the sigma used)
    runs  : None: 1, except without a ``config`` (:data:`DENOISE_DEFAULTS`): DIP the runs of
            :func:`dip_denoise_config` that :func:`dip_denoise_schedule` sets for σ, the Deep Decoder
            :data:`DD_DENOISE_RUNS` of :func:`dd_denoise_config`, outputs averaged
    wiener: the untrained prior's output is the pilot of an empirical Wiener filter of the noisy image
            (:func:`geomprior.image.wiener.wiener_refine`), whose result is returned; ``extra["network_psnr"]``
            is the prior's own PSNR when a reference is given. False: the prior's output
    """
    img, opts = _prepared(noisy, "noisy image", "denoise", options, changes)
    stop = opts.stop or StopConfig()
    if opts.sigma is None:
        opts = dataclasses.replace(opts, sigma=stop.sigma if stop.sigma is not None else estimate_noise(img))
    if opts.runs is None and opts.config is None and opts.method in DENOISE_DEFAULTS:
        schedule, config, rule = DENOISE_DEFAULTS[opts.method]
        runs, iters = schedule(opts.preset, opts.sigma)
        opts = dataclasses.replace(opts, config=config(opts.preset), runs=runs,
                                   iters=iters if opts.iters is None else opts.iters)
        if stop.rule == "auto":
            stop = dataclasses.replace(stop, rule=rule)
    res = _recover(_to_nchw(img, "cpu"), ops.Identity(), img.shape, opts, "denoise", generator, noiseless=False,
                   stop=stop)
    if not wiener or opts.method in GENERATIVE:
        return res
    res.extra.update(network_psnr=res.psnr, sigma=opts.sigma, wiener=True)
    res.image = wiener_refine(img, res.image, opts.sigma)
    res.weights = res.function = None  # they give the prior's output, no longer the result
    if res.psnr is not None:
        res.psnr = psnr(res.image, check_image(opts.reference, "reference"))
    return res


def superresolve(small: np.ndarray, factor: int, options: SolveOptions | None = None, *,
                 kernel: ops.Kernel = "lanczos2", generator=None, **changes) -> ImageResult:
    """Upsample a low-resolution image (h, w, C) by an integer ``factor``: the result (h·f, w·f, C) matches the
    input after antialiased downsampling (``kernel``)."""
    img, opts = _prepared(small, "low-resolution image", "superres", options, changes)
    if int(factor) != factor or factor < 2:
        raise InputError(f"factor must be an integer >= 2, got {factor!r}")
    factor = int(factor)
    h, w, c = img.shape
    if opts.reference is not None:
        ref = check_image(opts.reference, "reference")
        if ref.shape[0] % factor or ref.shape[1] % factor:
            raise InputError(f"reference size {ref.shape[1]}x{ref.shape[0]} is not divisible by the factor {factor}")
        if ref.shape[:2] != (h * factor, w * factor):
            raise InputError(f"reference is {ref.shape[1]}x{ref.shape[0]}, expected the input size times {factor}: "
                             f"{w * factor}x{h * factor}")
    return _recover(_to_nchw(img, "cpu"), ops.Downsample(factor, kernel), (h * factor, w * factor, c), opts,
                    "superres", generator, noiseless=True)


def inpaint(damaged: np.ndarray, mask: np.ndarray, options: SolveOptions | None = None, *, keep_known: bool = True,
            generator=None, **changes) -> ImageResult:
    """Fill the missing pixels of ``damaged`` (H, W, C); mask (H, W) bool, True = known pixel.

    keep_known: the result keeps the known pixels exactly, as ``skimage.restoration.inpaint_biharmonic`` does, and
                the network fills only the missing ones; False returns the network's output everywhere (for known
                pixels that carry noise)
    """
    img, opts = _prepared(damaged, "damaged image", "inpaint", options, changes)
    m = np.asarray(mask)
    if m.shape != img.shape[:2]:
        raise InputError(f"mask is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]} but the image is "
                         f"{img.shape[1]}x{img.shape[0]} (width x height)")
    m = m.astype(bool)
    if not m.any():
        raise InputError("the mask marks no pixel as known")
    op = ops.Mask(m)
    res = _recover(op(_to_nchw(img, "cpu")), op, img.shape, opts, "inpaint", generator, noiseless=True,
                   keep_known=keep_known)
    res.extra["keep_known"] = keep_known
    return res


def compress_config(channels: int = 64, depth: int = 5) -> DDConfig:
    """The Deep Decoder :func:`compress` trains without a ``config``: k = ``channels``, d = ``depth``; Adam from lr
    0.02 decaying to 0 along a cosine (a small decoder that must fit every pixel gains from both); zero-mean
    Gaussian input and each block normalised before its ReLU (the same weights fit more of the image: BENCHMARKS.md,
    Images, compress rows); weights averaged along the run (an average of the outputs would be no network's
    output); training passes in float32 (a code must fit every pixel, and bfloat16 is measured for denoising
    only)."""
    return DDConfig(channels=channels, depth=depth, lr=0.02, lr_decay="cosine", input="gaussian",
                    norm_before_relu=True, average="weights", precision="float32")


DENOISE_DEFAULTS = {"dip": (dip_denoise_schedule, dip_denoise_config, "none"),
                    "dd": (lambda preset, sigma: (DD_DENOISE_RUNS, None), dd_denoise_config, "discrepancy")}
"""Denoising without a ``config`` or ``runs``: method -> (schedule(preset, σ) = (runs averaged, iteration cap of
each unless ``iters`` is given; None: :data:`DEFAULT_ITERS`), the config of each run for a preset, the stopping
rule ``auto`` means). DIP's r2r loss needs no stop. The Deep Decoder trained to fit
more stops where its residual meets the noise level (estimated from the image unless given): at high noise, and on
a grayscale image (fewer values per weight), it fits the noise late in the run, and held-out pixels would take a
tenth of the image from every fit."""


def compress(image: np.ndarray, options: SolveOptions | None = None, *, channels: int = 64, depth: int = 5,
             **changes) -> ImageResult:
    """Represent an image (H, W, C) by the weights of a Deep Decoder (default: :func:`compress_config`).

    The code is the weights (``result.weights``; the input noise is regenerated from ``seed``):
    ``decompress(result.weights, image.shape, config or compress_config(channels, depth), seed=seed)`` gives
    ``result.image`` back. The weights are averaged along the run (``DDConfig.average = "weights"`` is forced).
    ``extra`` holds ``ratio`` = pixel values / weights and ``bits_per_pixel`` at 32-bit weights. Runs to the cap
    (no early stopping).
    """
    img, opts = _prepared(image, "image", "compress", options, changes)
    cfg = dataclasses.replace(opts.config or compress_config(channels, depth), average="weights")
    res = solve(_to_nchw(img, "cpu"), ops.Identity(), img.shape, opts, task="compress", config=cfg,
                stop=StopConfig(rule="none"), reference=img)
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


def compressed_sensing(image: np.ndarray, ratio: float, options: SolveOptions | None = None, *,
                       operator: Literal["gaussian", "fourier"] = "gaussian", block: int | None = 32,
                       noise: float = 0.0, generator=None, **changes) -> ImageResult:
    """Simulate compressed measurements y = A x (+ N(0, noise²)) of ``image`` (H, W, C) and recover x from y alone.

    The PSNR is measured against ``image``; ``extra`` holds the operator's actual ratio and measurement count.
    """
    img, opts = _prepared(image, "image", "cs", options, changes)
    op = make_cs_operator(img.shape, ratio, kind=operator, block=block, seed=opts.seed)
    with torch.no_grad():
        y = op(_to_nchw(img, "cpu"))
        if noise > 0:
            y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(opts.seed + 2))
    res = _recover(y, op, img.shape, opts, "cs", generator, noiseless=noise == 0, reference=img)
    res.extra.update(measurements=int(y.numel()), ratio=float(op.ratio), operator=operator)
    return res
