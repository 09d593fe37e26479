"""One optimisation loop for every prior in the package: Adam, early stopping, best weights, progress, history.

The loop optimises a batch of P independent items (patches, image tiles, or one network with P = 1).
``loss_fn()`` returns per-item losses (P,); their SUM is minimised, so each item sees its own Adam.
``validate()`` returns per-item validation scores (P,) (lower is better) every ``eval_every`` steps; the
``EarlyStopping`` rule watches them, items whose score stopped improving are frozen (per-item mode) and each
item's best weights are restored at the end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from .device import keep_freed_memory

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, dict], None]
StopMode = Literal["run", "item", "none"]
STOP_MODES = ("run", "item", "none")


@dataclass
class EarlyStopping:
    """Patience rule on smoothed validation scores, keeping the latest weights in the minimum's basin.

    mode      : "run" watches the summed score and stops the whole run; "item" freezes each item on its own
                and stops when all are frozen; "none" runs to the cap.
    patience  : evaluations outside the basin before stopping (or freezing)
    smoothing : EMA factor applied to the scores before comparison (0 = raw)
    tolerance : the basin: scores within ``tolerance × (peak − best)`` of the best so far. Validation curves
                are flat near their minimum and fall earlier than the true error, so the weights kept are the
                LATEST ones in the basin, not the first minimum
    warmup    : evaluations before this step are ignored: no stop and no weights kept before it (validation can
                rise while the fit leaves its start, and be lowest at the start for a while; a noisy sparse scan
                stopped at step 50 keeping its untrained start when those evaluations counted)
    """

    mode: StopMode = "run"
    patience: int = 5
    smoothing: float = 0.5
    tolerance: float = 0.0
    warmup: int = 0
    # state (filled by ``update``)
    ema: torch.Tensor | None = field(default=None, repr=False)
    best: torch.Tensor | None = field(default=None, repr=False)
    peak: torch.Tensor | None = field(default=None, repr=False)
    best_step: torch.Tensor | None = field(default=None, repr=False)
    waited: torch.Tensor | None = field(default=None, repr=False)
    step: int = field(default=0, repr=False)

    def __post_init__(self):
        if self.mode not in STOP_MODES:
            raise ValueError(f"unknown early-stopping mode {self.mode!r}; valid: {', '.join(STOP_MODES)}")

    def update(self, step: int, scores: torch.Tensor) -> torch.Tensor:
        """Feed per-item scores (P,); returns (P,) bool: items whose current weights are to be kept.

        All-NaN scores mean "no score yet" (e.g. a criterion whose window is still filling): they are ignored,
        nothing is kept and no patience is used up; so are the scores of steps before ``warmup``.
        """
        s = scores.detach().double().cpu()
        if self.mode == "run":
            s = s.sum(0, keepdim=True)
        self.step = step
        if step < self.warmup or bool(torch.isnan(s).all()):
            return torch.zeros(scores.shape[0], dtype=torch.bool)
        self.ema = s if self.ema is None else self.smoothing * self.ema + (1 - self.smoothing) * s
        if self.best is None:
            self.best, self.peak = self.ema.clone(), self.ema.clone()
            self.waited = torch.zeros_like(s, dtype=torch.long)
            keep = torch.ones_like(s, dtype=torch.bool)
        else:
            self.peak = torch.maximum(self.peak, self.ema)
            self.best = torch.minimum(self.best, self.ema)
            keep = self.ema <= self.best + self.tolerance * (self.peak - self.best)
            self.waited = torch.where(keep, 0, self.waited + 1)
        self.best_step = torch.where(keep, step, self.best_step if self.best_step is not None else step)
        return keep.expand(scores.shape[0])

    def stopped(self) -> torch.Tensor:
        """(P,) or (1,) bool: items (or the run) whose patience ran out."""
        if self.mode == "none" or self.waited is None or self.step < self.warmup:
            return torch.zeros(1, dtype=torch.bool)
        return self.waited >= self.patience

    def replay(self, steps, scores) -> tuple[int | None, int | None]:
        """Feed a recorded curve (one summed score per evaluation step) as a fit would; returns the step the rule
        stops at (None: it ran to the end) and the step whose weights it keeps (None: no score counted)."""
        for step, score in zip(steps, scores):
            self.update(step, torch.tensor([float(score)]))
            if bool(self.stopped().all()):
                return step, int(self.best_step[0])
        return None, None if self.best_step is None else int(self.best_step[0])


@dataclass
class FitResult:
    """What the loop did: steps run, why it stopped, per-evaluation history."""

    steps: int
    reason: str
    best_step: list[int]
    history: dict[str, list] = field(default_factory=dict)


class _Snapshots:
    """Best weights per item for models with a leading item dimension (or whole-model copies when P = 1)."""

    def __init__(self, params: list[torch.Tensor], n_items: int):
        self.params = list(params)
        self.batched = n_items > 1 or all(p.shape[:1] == (1,) for p in self.params)
        self.saved = [p.detach().clone() for p in params]

    @torch.no_grad()
    def save(self, rows: torch.Tensor):
        for p, s in zip(self.params, self.saved):
            if self.batched:
                s[rows.to(s.device)] = p[rows.to(p.device)]
            elif bool(rows.any()):
                s.copy_(p)

    @torch.no_grad()
    def restore(self):
        for p, s in zip(self.params, self.saved):
            p.copy_(s)


@contextlib.contextmanager
def flush_denormal():
    """Flush denormal floats to zero inside the block (usable as a decorator) and turn it off again after.

    Denormals appear as fits converge and slow CPU training ~7×. Left on, the process-wide CPU flag can make scipy's
    ``cKDTree`` segfault while building a tree (seen with scipy 1.17 on a planar cloud with points off its plane).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@flush_denormal()
def fit(
    params: list[torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
    *,
    max_steps: int,
    lr: float = 1e-3,
    validate: Callable[[], torch.Tensor] | None = None,
    eval_every: int = 10,
    stopper: EarlyStopping | None = None,
    refresh: Callable[[int], None] | None = None,
    refresh_every: int = 0,
    monitor: Callable[[int], dict] | None = None,
    progress: Progress | None = None,
    stage: str = "fit",
    after_step: Callable[[int], None] | None = None,
    buffers: Sequence[torch.Tensor] = (),
    lr_decay: Literal["none", "cosine"] = "none",
) -> FitResult:
    """Minimise ``loss_fn().sum()`` over ``params`` with Adam.

    params   : tensors with a leading item dimension P (or a single model's parameters, P = 1)
    loss_fn  : () -> (P,) per-item losses
    validate : () -> (P,) per-item validation scores, called under no_grad every ``eval_every`` steps
    refresh  : (step) -> None, called before step 0 and every ``refresh_every`` steps (e.g. new correspondences)
    monitor  : (step) -> dict of extra numbers recorded in the history at each evaluation (diagnostics only)
    after_step : (step) -> None, called after each optimiser step (e.g. an output average, a new input noise)
    buffers  : tensors that are not optimised but belong to the weights (e.g. an averaged output): saved and
               restored together with ``params`` (with a leading item dimension P when P > 1)
    lr_decay : "cosine" lowers the learning rate from ``lr`` to 0 at ``max_steps`` along half a cosine
    Frozen items (per-item stopping) get zero gradients and zero Adam momentum, so they do not move.
    On a CPU the loop first lets glibc keep the memory a step frees (:func:`geomprior.device.keep_freed_memory`).

    Long: the one loop every fit of the package runs (patches and pixels); its steps, evaluations, stopping and
    recovery from a non-finite loss read top to bottom in one place.
    """
    stopper = stopper or EarlyStopping(mode="none")
    if lr_decay not in ("none", "cosine"):
        raise ValueError(f"lr_decay must be 'none' or 'cosine', got {lr_decay!r}")
    if any(p.device.type == "cpu" for p in params):
        keep_freed_memory()
    opt = adam(params, lr)
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / max_steps)))
             if lr_decay == "cosine" and max_steps > 0 else None)
    history: dict[str, list] = {"step": [], "loss": [], "val": [], "active": [], "time": []}
    snaps: _Snapshots | None = None
    frozen: torch.Tensor | None = None
    reason = f"reached the cap of {max_steps} steps"
    start = time.perf_counter()
    step = 0
    for step in range(max_steps + 1):
        if refresh is not None and refresh_every and step % refresh_every == 0:
            refresh(step)
        last = step == max_steps
        if step % eval_every == 0 or last:
            with torch.no_grad():
                loss_now = loss_fn()
            history["step"].append(step)
            history["loss"].append(float(loss_now.sum()))
            history["time"].append(time.perf_counter() - start)
            info = {"loss": history["loss"][-1]}
            if validate is not None:
                with torch.no_grad():
                    val = validate()
                if snaps is None:
                    snaps = _Snapshots([*params, *buffers], val.shape[0])
                    frozen = torch.zeros(val.shape[0], dtype=torch.bool)
                improved = stopper.update(step, val) & ~frozen
                snaps.save(improved)
                if stopper.mode == "item":
                    frozen = frozen | stopper.stopped()
                history["val"].append(float(val.sum()))
                history["active"].append(int((~frozen).sum()))
                info.update(val=history["val"][-1], active=history["active"][-1])
            if monitor is not None:
                for key, value in monitor(step).items():
                    history.setdefault(key, []).append(value)
            if progress is not None:
                progress(stage, step, max_steps, info)
            if stopper.mode != "none" and bool(stopper.stopped().all()):
                kept = stopper.best_step
                where = f"step {int(kept[0])}" if len(kept) == 1 else f"steps {int(kept.min())}-{int(kept.max())}"
                reason = f"validation stopped improving (kept the weights of {where})"
                break
        if last:
            break
        opt.zero_grad(set_to_none=False)
        loss = loss_fn().sum()
        if not math.isfinite(float(loss.detach())):
            reason = "loss became non-finite"
            log.warning("%s: loss became non-finite at step %d; keeping the best weights", stage, step)
            break
        loss.backward()
        if frozen is not None and frozen.any():
            _freeze(params, opt, frozen)
        opt.step()
        if sched is not None:
            sched.step()
        if after_step is not None:
            after_step(step)
    if snaps is not None and stopper.mode != "none" and stopper.best is not None:
        snaps.restore()
    best = stopper.best_step.tolist() if stopper.best_step is not None else [step]
    log.info("%s: %s after %d steps", stage, reason, step)
    return FitResult(steps=step, reason=reason, best_step=best, history=history)


def adam(params: Sequence[torch.Tensor], lr: float) -> torch.optim.Adam:
    """torch's Adam, fused (one kernel per tensor for the whole update, the same arithmetic) where torch has the
    fused kernel for the parameters' device; the per-tensor loop otherwise."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # torch < 2.4 on a CPU, or a device without the kernel
        return torch.optim.Adam(params, lr=lr)


def _freeze(params, opt, frozen):
    for p in params:
        rows = frozen.to(p.device)
        if p.grad is not None and p.shape[:1] == rows.shape:
            p.grad[rows] = 0
            state = opt.state.get(p)
            if state and "exp_avg" in state:
                state["exp_avg"][rows] = 0
