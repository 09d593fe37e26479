"""The one solver behind every image task: fit a prior g so that A(g) matches the measurements y.

Every task is the same problem, min_θ ‖A(g_θ) − y‖² over the weights θ of one prior g (:mod:`geomprior.image.priors`:
``dip``, ``dd``, ``mlp``), solved by the package's one optimisation loop (:func:`geomprior.fit.fit`). A is an
operator from :mod:`geomprior.image.operators`. Early stopping without ground truth (:class:`StopConfig`):
``"heldout"`` keeps a random fraction of the measurements out of the loss and stops when the fit to them stops
improving; ``"wmv"`` stops near the minimum of the running variance of recent outputs; ``"discrepancy"`` (noise
level σ known) stops when the residual reaches σ²; ``"none"`` runs to the cap.

Images are (H, W, C) float arrays in [0, 1]; results are :class:`ImageResult`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from geomprior.device import pick_device
from geomprior.errors import InputError
from geomprior.fit import EarlyStopping, FitResult, Progress, fit
from geomprior.image import GENERATIVE, STOP_RULES
from geomprior.image import operators as ops
from geomprior.image.decoder import DDConfig
from geomprior.image.dip import DIPConfig
from geomprior.image.io import check_image
from geomprior.image.mlp import ImageFunction, MLPConfig
from geomprior.image.priors import PRIORS, _dd_for_measurements
from geomprior.image.stopping import WindowedVariance

log = logging.getLogger(__name__)

Method = Literal["dip", "dd", "mlp", "csgm", "iagan", "lcm"]
METHODS = tuple(PRIORS)
GENERATIVE_TASKS = ("denoise", "superres", "inpaint", "cs")
Rule = Literal["auto", "heldout", "wmv", "discrepancy", "none"]
RULES = STOP_RULES
Task = Literal["fit", "denoise", "superres", "inpaint", "compress", "cs"]
TASK_METHODS = {
    "fit": ("mlp",),
    "denoise": ("dip", "dd", "mlp"),
    "superres": ("dip", "dd"),
    "inpaint": ("dip", "dd", "mlp"),
    "compress": ("dd",),
    "cs": ("dd", "dip"),
}
"""Which priors each task accepts; the first is the task's default."""

DEFAULT_ITERS = {
    ("dip", "denoise"): 1500, ("dip", "superres"): 2000, ("dip", "inpaint"): 3000, ("dip", "cs"): 3000,
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

    # auto: dip and mlp -> heldout (dip with the r2r loss: none), dd -> none; or heldout / wmv / discrepancy / none
    rule: Rule = "auto"
    holdout: float = 0.1  # heldout: fraction of the measurements kept out of the loss as validation
    window: int = 100  # wmv: number of recent outputs whose variance is watched
    patience: int | None = None  # iterations without a better score before stopping (None: the prior's, PRIORS)
    eval_every: int = 10  # iterations between two scores
    smoothing: float | None = None  # EMA of the scores (None: 0.5 for heldout, 0 otherwise)
    tolerance: float = 0.0  # basin of the minimum, as a fraction of (peak − best)
    sigma: float | None = None  # discrepancy: noise standard deviation on the [0, 1] scale (None: SolveOptions')

    def __post_init__(self):
        if self.rule not in RULES:
            raise InputError(f"unknown stopping rule {self.rule!r}; valid: {', '.join(RULES)}")
        if not 0 < self.holdout < 1:
            raise InputError(f"holdout must be in (0, 1), got {self.holdout}")
        if self.window < 2 or self.eval_every < 1 or (self.patience is not None and self.patience < 1):
            raise InputError("window must be >= 2, eval_every >= 1 and patience >= 1")

    def resolve(self, method: str, config=None) -> "StopConfig":
        """The rule, patience and smoothing used for ``method`` with ``config`` (``auto`` filled in)."""
        rule = self.rule
        if rule == "auto":
            rule = "none" if _recorrupts(config) else PRIORS[method].stop_rule
        if rule == "heldout" and _recorrupts(config):
            raise InputError("the r2r loss feeds every pixel to the network, so none can be held out; stop with "
                             "none, wmv or discrepancy")
        patience = self.patience if self.patience is not None else PRIORS[method].patience
        smoothing = self.smoothing if self.smoothing is not None else (0.5 if rule == "heldout" else 0.0)
        if rule == "discrepancy" and (self.sigma is None or not self.sigma > 0):
            raise InputError("the discrepancy rule needs the noise level sigma")
        return dataclasses.replace(self, rule=rule, patience=patience, smoothing=smoothing)


def _recorrupts(config) -> bool:
    """Whether ``config`` fits the r2r loss (DIP's denoising; :class:`DIPConfig`)."""
    return getattr(config, "loss", "mse") == "r2r"


@dataclass
class ImageResult:
    """What a run produced."""

    image: np.ndarray  # (H, W, C) float32 in [0, 1]
    method: str  # dip / dd / mlp, or csgm / iagan / lcm (a trained generator)
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
    function: ImageFunction | None = field(default=None, repr=False)  # method mlp: ``image`` as a function

    def evaluate(self, uv) -> np.ndarray:
        """The fitted image at points uv (N, 2) in [0, 1]² (method mlp): :meth:`ImageFunction.evaluate`."""
        return self._function().evaluate(uv)

    def gradient(self, uv) -> np.ndarray:
        """Its spatial gradient (N, C, 2) at points uv (method mlp): :meth:`ImageFunction.gradient`."""
        return self._function().gradient(uv)

    def _function(self) -> ImageFunction:
        if self.function is None:
            raise InputError(f"a {self.method} result is an image, not a function of coordinates (method mlp "
                             "gives one, a single run)")
        return self.function

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
        notes = [f"stopping rule: {self.stop_rule}"] if self.stop_rule != "none" else []
        if self.extra.get("sigma") is not None:
            notes.append(f"noise level {255 * self.extra['sigma']:.1f} of 255")
        if self.extra.get("wiener"):
            notes.append("Wiener-refined")
        if notes:
            text += f" ({', '.join(notes)})"
        if self.psnr is not None:
            text += f"; PSNR {self.psnr:.2f} dB"
            if self.extra.get("network_psnr") is not None:
                text += f" (network {self.extra['network_psnr']:.2f})"
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

        skip = ("image", "weights", "function")
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        out["height"], out["width"], out["channels"] = self.image.shape
        return clean(out)


@dataclass(frozen=True, eq=False)
class SolveOptions:
    """What every image task takes besides its data: pass one, or any of its fields as keywords, or both (the
    keywords win)."""

    method: Method | None = None  # the prior (None: the task's default, the first of TASK_METHODS[task])
    # the prior's settings (default: <Config>.preset(preset)); a Deep Decoder deeper than the image allows (input
    # under 4 pixels a side) is made shallower, with a warning
    config: DIPConfig | DDConfig | MLPConfig | None = None
    preset: str = "default"
    stop: StopConfig | None = None  # early stopping (default StopConfig(): the prior's rule)
    iters: int | None = None  # iteration cap (default DEFAULT_ITERS)
    device: str | torch.device = "auto"
    seed: int = 0
    reference: np.ndarray | None = None  # (H, W, C) ground truth: only reported (PSNR), never used to stop
    progress: Progress | None = None  # (stage, step, total, info) callback; info holds loss (and val, psnr)
    # independent runs with seeds seed, seed + 1, ..., each stopping on its own rule, whose outputs are averaged:
    # their errors are partly independent, so the average is closer to the truth, at ``runs`` times the cost.
    # None: 1 (denoise: see there)
    runs: int | None = None
    # noise standard deviation of the measurements on the [0, 1] scale, for what needs one (DIP's r2r loss; the
    # discrepancy rule when its StopConfig has none); denoise estimates it from the image when not given
    sigma: float | None = None


def options(given: SolveOptions | None = None, **changes) -> SolveOptions:
    """``given`` (default: SolveOptions()) with ``changes``; an unknown keyword is an InputError."""
    names = {f.name for f in dataclasses.fields(SolveOptions)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}; valid: {', '.join(sorted(names))}")
    return dataclasses.replace(given or SolveOptions(), **changes)


def psnr(image: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1], over all channels."""
    a = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).double()
    b = torch.as_tensor(np.asarray(reference) if not isinstance(reference, torch.Tensor) else reference).double()
    mse = float(((a - b.to(a.device)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def make_config(method: Method, preset: str = "default", *, channels: int | None = None, task: str = "fit"):
    """The settings of ``method`` for a named preset and ``task``, optionally with every layer ``channels`` wide
    (DIP: encoder and decoder widths; DD: k; MLP: hidden widths). The MLP restores (denoise, inpaint) with
    :meth:`MLPConfig.restoring`; DIP denoises with the r2r loss."""
    prior = _prior(method)
    cfg = _preset(method, preset, task)
    if channels is None:
        return cfg
    if channels < 1:
        raise InputError(f"channels must be >= 1, got {channels}")
    return prior.widen(cfg, channels)


def _prior(method: str):
    if method not in PRIORS:
        raise InputError(f"unknown method {method!r}; valid: {', '.join(METHODS + GENERATIVE)}")
    return PRIORS[method]


def check_method(task: str, method: str | None) -> str:
    """The method that does ``task`` (None: its default); an InputError for one that does not."""
    method = TASK_METHODS[task][0] if method is None else method
    if method in GENERATIVE and task in GENERATIVE_TASKS:
        return method
    _prior(method)
    if method not in TASK_METHODS[task]:
        raise InputError(f"method {method!r} does not do {task}; valid for {task}: {', '.join(TASK_METHODS[task])}")
    return method


def _preset(method: str, preset: str, task: str):
    if method == "mlp" and task in ("denoise", "inpaint"):
        return MLPConfig.restoring(preset)
    if method == "dip" and task == "denoise":
        return DIPConfig.preset(preset, loss="r2r")
    return _prior(method).config.preset(preset)


def _config_for(method: str, config, preset: str, task: str):
    kind = _prior(method).config
    if config is None:
        return _preset(method, preset, task)
    if not isinstance(config, kind):
        raise InputError(f"method {method!r} needs a {kind.__name__}, got {type(config).__name__}")
    return config


def _to_nchw(image: np.ndarray, device) -> torch.Tensor:
    return torch.as_tensor(image, dtype=torch.float32).permute(2, 0, 1)[None].contiguous().to(device)


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().permute(1, 2, 0).float().cpu().numpy().clip(0, 1)


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


def solve(y: torch.Tensor, operator: ops.Operator, shape: tuple[int, int, int], given: SolveOptions | None = None,
          *, task: Task = "denoise", keep_known: bool = False, **changes) -> ImageResult:
    """Fit a prior g so that operator(g) matches the measurements y.

    y        : (1, ...) measurements, ``operator.output_shape((C, H, W))``
    operator : a linear operator on (1, C, H, W) images (identity or mask for ``method="mlp"``)
    shape    : (H, W, C) of the image sought
    given, changes: the :class:`SolveOptions`
    task     : names the run (and picks the default method and iteration cap)
    keep_known: the estimate keeps the measured pixels exactly (mask operator only; see :meth:`ops.Mask.keep_known`)
    """
    opts = options(given, **changes)
    runs = 1 if opts.runs is None else opts.runs
    if isinstance(runs, bool) or int(runs) != runs or runs < 1:
        raise InputError(f"runs must be an integer >= 1, got {runs!r}")
    if runs == 1:
        return _solve_one(y, operator, shape, opts, task, keep_known)
    results = []
    for i in range(int(runs)):
        report = None if opts.progress is None else (
            lambda stage, *a, i=i: opts.progress(f"{stage} (run {i + 1}/{runs})", *a))
        one = dataclasses.replace(opts, seed=opts.seed + i, progress=report)
        results.append(_solve_one(y, operator, shape, one, task, keep_known))
    return _averaged(results, opts.seed, opts.reference)


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


def _solve_one(y, operator, shape, opts: SolveOptions, task: str, keep_known: bool) -> ImageResult:
    """One run of :func:`solve`."""
    method = check_method(task, opts.method) if task in TASK_METHODS else opts.method
    prior = _prior(method)
    h, w, c = (int(s) for s in shape)
    config = _config_for(method, opts.config, opts.preset, task)
    stop = opts.stop or StopConfig()
    if stop.sigma is None and opts.sigma is not None:
        stop = dataclasses.replace(stop, sigma=float(opts.sigma))
    stop = stop.resolve(method, config)
    iters = DEFAULT_ITERS.get((method, task), 2000) if opts.iters is None else int(opts.iters)
    if iters < 0:
        raise InputError(f"iters must be >= 0, got {iters}")
    if keep_known and not isinstance(operator, ops.Mask):
        raise InputError("keep_known needs the mask operator (inpainting)")
    dev = pick_device(opts.device)
    operator = operator.to(dev)
    y = y.to(dev, torch.float32)
    expected = (1, *operator.output_shape((c, h, w)))
    if tuple(y.shape) != expected:
        raise InputError(f"measurements have shape {tuple(y.shape)}, the operator gives {expected}")
    reference = _checked_reference(opts.reference, (h, w, c))

    gen = torch.Generator().manual_seed(opts.seed)
    observed = _observed(operator, y)
    if method == "dd" and opts.config is None and task in ("inpaint", "cs"):
        config = _dd_for_measurements(config, int(observed.sum()), c)
    held = _heldout(observed, stop.holdout, gen) if stop.rule == "heldout" else None
    train_w = observed - held if held is not None else observed
    if not bool(train_w.any()):
        raise InputError("no measurement is left to fit")
    wmv = WindowedVariance(stop.window) if stop.rule == "wmv" else None
    run = prior.build(config, (h, w, c), operator, y, train_w, wmv=wmv, seed=opts.seed, generator=gen, device=dev,
                      sigma=opts.sigma)
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
        latest["psnr"] = psnr(estimate(), ref_t)
        return dict(latest)

    def report(stage, step, total, info):
        if opts.progress is not None:
            opts.progress(stage, step, total, {**info, **latest})

    log.info("%s %s: %d weights, %s, stopping rule %s, cap %d iterations", method, task, run.n_params, dev,
             stop.rule, iters)
    res: FitResult = fit(
        run.params, run.loss, max_steps=iters, lr=getattr(config, "learning_rate", config.lr),
        validate=_validation(stop, run, held, train_w, wmv),
        eval_every=stop.eval_every, stopper=stopper, monitor=monitor if ref_t is not None else None,
        progress=report, stage=f"{method} {task}", after_step=run.after_step, buffers=run.buffers,
        lr_decay=getattr(config, "lr_decay", "none"),
    )
    image = _to_hwc(estimate())
    result = ImageResult(
        image=image, method=method, task=task, steps=res.steps,
        best_step=int(res.best_step[0]) if stop.rule != "none" and res.history.get("val") else res.steps,
        reason=_reason(res, stop), parameters=run.n_params, stop_rule=stop.rule,
        history={k: v for k, v in res.history.items() if k != "active"},
        psnr=psnr(image, reference) if reference is not None else None,
        weights=run.weights() if method == "dd" else None, function=run.function(),
    )
    if stop.rule == "discrepancy" or _recorrupts(config):
        result.extra["sigma"] = stop.sigma if stop.rule == "discrepancy" else float(opts.sigma)
    log.info("%s", result.summary)
    return result


def _checked_reference(reference, shape: tuple[int, int, int]) -> np.ndarray | None:
    if reference is None:
        return None
    reference = check_image(reference, "reference")
    if reference.shape != shape:
        h, w, c = shape
        raise InputError(f"reference is {reference.shape[1]}x{reference.shape[0]}x{reference.shape[2]}, "
                         f"the result is {w}x{h}x{c} (width x height x channels)")
    return reference


def _validation(stop: StopConfig, run, held, train_w, wmv) -> Callable[[], torch.Tensor] | None:
    """The score the stopping rule watches (lower is better), or None for ``"none"``."""
    if stop.rule == "heldout":
        return lambda: run.residual(held).cpu()
    if stop.rule == "wmv":
        return lambda: wmv.value().sum().reshape(1)
    if stop.rule == "discrepancy":
        level = float(stop.sigma) ** 2
        return lambda: (run.residual(train_w).cpu() - level).abs()
    return None


def _reason(res: FitResult, stop: StopConfig) -> str:
    """Why the run stopped, in the words of its stopping rule."""
    reason = res.reason
    if reason.startswith("validation stopped improving"):
        what = {"heldout": "the fit to the held-out measurements", "wmv": "the variance of recent outputs",
                "discrepancy": "the distance of the residual to the noise level"}[stop.rule]
        return f"{what} stopped improving for {stop.patience} iterations"
    if stop.rule == "wmv" and reason.startswith("reached the cap") and not _has_score(res):
        return reason + f" (fewer than {stop.window} outputs for the variance window)"
    return reason


def _has_score(res: FitResult) -> bool:
    return any(isinstance(v, float) and math.isfinite(v) for v in res.history.get("val", []))
