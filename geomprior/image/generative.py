"""Learned priors helped by untrained ones: recover an image x from measurements y = A x (+ noise) with a trained
generator G (a module z ↦ image).

- ``csgm`` (Bora et al. 2017): x = G(z*), z* = argmin_z ‖A G(z) − y‖², the best of several random starts (run as one
  batch). It cannot leave G's range, so it saturates at G's representation error.
- ``iagan`` (Hussein et al. 2020): CSGM's z*, then z and G's weights together for this one image with a small
  learning rate (image-adaptive); with noiseless measurements the result is then projected onto {x : A x = y}
  (back-projection).
- ``lcm`` (after Athar et al. 2019): G's latent is the output of a small untrained convolutional net on a fixed
  noise input (DIP-style), whose weights are fitted while G stays fixed: the architecture is the prior over
  latents.

Generator files are exported programs (``torch.export``) with geomprior's metadata (:func:`save_generator`,
:func:`load_generator`), so they load without the code that trained them. Images are (H, W, C) float arrays in
[0, 1], like G's outputs.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from geomprior.errors import InputError
from geomprior.fit import EarlyStopping, Progress, fit
from geomprior.image import GENERATIVE
from geomprior.image import operators as ops
from geomprior.image.priors import _seeded
from geomprior.image.solver import _to_hwc

log = logging.getLogger(__name__)

GenerativeMethod = Literal["csgm", "iagan", "lcm"]
FORMAT = "geomprior-generator"
META = "geomprior.json"  # the exported program's extra file that holds the metadata


@dataclass
class Generator:
    """A loaded generator: ``module`` maps (B, *latent_shape) latents to (B, C, H, W) images in [0, 1]."""

    module: nn.Module
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    info: dict = field(default_factory=dict)  # what the file recorded besides (e.g. the training data)


def save_generator(path: str | os.PathLike, module: nn.Module, latent_shape, image_shape, *,
                   info: dict | None = None) -> None:
    """Write ``module`` (latents (B, *latent_shape) -> images (B, C, H, W) in [0, 1]) as a generator file: the
    module exported on the CPU (``torch.export``, any batch size), with ``latent_shape``, ``image_shape`` (C, H, W)
    and ``info`` as metadata. Written atomically."""
    from geomprior.io import atomic_path, check_writable

    path = check_writable(path)
    latent_shape, image_shape = tuple(int(s) for s in latent_shape), tuple(int(s) for s in image_shape)
    module = module.cpu().eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(module, (torch.zeros(2, *latent_shape),), dynamic_shapes=({0: batch},))
    with torch.no_grad():
        out = program.module()(torch.zeros(2, *latent_shape))
    if tuple(out.shape) != (2, *image_shape):
        raise InputError(f"the generator gives images of shape {tuple(out.shape[1:])}, not {image_shape}")
    meta = {"format": FORMAT, "version": 1, "latent_shape": list(latent_shape), "image_shape": list(image_shape),
            "info": info or {}}
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={META: json.dumps(meta)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getvalue())


def load_generator(path: str | os.PathLike) -> Generator:
    """A generator file written by :func:`save_generator` (InputError, one line, for anything else)."""
    from geomprior.io import check_file

    path = check_file(path)
    extra = {META: ""}
    quiet = logging.getLogger("torch.export")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # torch logs a traceback before it raises on a foreign file
    try:
        program = torch.export.load(io.BytesIO(path.read_bytes()), extra_files=extra)
    except Exception as e:  # torch raises zip, runtime or deserialisation errors for foreign files
        first = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: not a generator file (written by geomprior.image.save_generator): "
                         f"{first}") from None
    finally:
        quiet.setLevel(level)
    try:
        meta = json.loads(extra[META] or "{}")
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: an exported module without geomprior's generator metadata; write it with "
                         "geomprior.image.save_generator")
    if meta.get("version") != 1:
        raise InputError(f"{path}: generator file version {meta.get('version')!r}; this geomprior reads version 1")
    module = program.module()
    for p in module.parameters():
        p.requires_grad_(False)
    return Generator(module, tuple(meta["latent_shape"]), tuple(meta["image_shape"]), meta.get("info", {}))


# --------------------------------------------------------------------------------------------
# recovery


@dataclass(frozen=True)
class InvertConfig:
    """Settings of :func:`invert` (iteration counts fixed, as in the papers: there is no held-out stop here)."""

    restarts: int = 8  # CSGM: random starts, run as one batch; the one that fits y best is kept
    steps: int = 1000  # CSGM: Adam steps on z
    lr: float = 0.05  # CSGM: Adam learning rate on z
    adapt_steps: int = 500  # IAGAN: Adam steps on z and G's weights together; LCM: on the latent net's weights
    adapt_lr: float = 1e-4  # IAGAN: learning rate of G's weights (z: ten times it); 0: G frozen, IAGAN = CSGM
    lcm_lr: float = 1e-3  # LCM: learning rate of the latent net
    lcm_width: int = 64  # LCM: channels of the latent net's hidden layers
    back_project: bool | None = None  # IAGAN: project onto {x : A x = y} (None: when the measurements are noiseless)

    def __post_init__(self):
        if self.restarts < 1 or self.steps < 0 or self.adapt_steps < 0 or self.lcm_width < 1:
            raise InputError("restarts and lcm_width must be >= 1, steps and adapt_steps >= 0")
        if not (self.lr > 0 and self.adapt_lr >= 0 and self.lcm_lr > 0):
            raise InputError("lr and lcm_lr must be > 0, adapt_lr >= 0")


@dataclass
class InvertResult:
    """What :func:`invert` recovered."""

    image: np.ndarray  # (H, W, C) float32 in [0, 1]
    method: str
    latent: np.ndarray  # the latent whose image (by the adapted G for IAGAN) is the result before back-projection
    residual: float  # mean squared ‖A x − y‖² of the result
    history: dict = field(default_factory=dict)  # per stage: step, loss


def _residual(operator: ops.Operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared residual of each image of x (B, C, H, W) against y (1, ...)."""
    return ((operator(x) - y) ** 2).reshape(len(x), -1).mean(1)


def back_project(operator: ops.Operator, x: torch.Tensor, y: torch.Tensor, *, iters: int = 100,
                 rounds: int = 3) -> torch.Tensor:
    """The image nearest to x (1, C, H, W) with A x' = y: x' = x + Aᵀ w, (A Aᵀ) w = y − A x solved by conjugate
    gradients, repeated ``rounds`` times on what is left (float32 rounding). Exact at once for operators whose
    A Aᵀ is the identity (a mask)."""
    with torch.no_grad():
        for _ in range(rounds):
            r = y - operator(x)
            w = torch.zeros_like(r)
            p, rs = r.clone(), float((r * r).sum())
            start = rs
            for _ in range(iters):
                if rs <= 1e-14 * start or rs == 0:
                    break
                q = operator(operator.adjoint(p))
                alpha = rs / float((p * q).sum())
                w += alpha * p
                r -= alpha * q
                new = float((r * r).sum())
                p, rs = r + (new / rs) * p, new
            x = x + operator.adjoint(w)
    return x


class _LatentNet(nn.Module):
    """LCM's latent: a small conv net (3×3, LeakyReLU) on a fixed noise input of the latent's shape; a spatial
    latent (C, h, w) keeps its grid, a flat one (d,) is one 1×1 'pixel'."""

    def __init__(self, latent_shape: tuple[int, ...], width: int, generator: torch.Generator):
        super().__init__()
        self.shape = latent_shape
        c = latent_shape[0]
        grid = latent_shape[1:] if len(latent_shape) == 3 else (1, 1)
        self.register_buffer("noise", torch.randn((1, c, *grid), generator=generator))
        k, pad = (3, 1) if len(latent_shape) == 3 else (1, 0)
        self.net = nn.Sequential(nn.Conv2d(c, width, k, padding=pad), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, width, k, padding=pad), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, c, k, padding=pad))

    def forward(self) -> torch.Tensor:
        return self.net(self.noise).reshape(1, *self.shape)


def as_generator(module: nn.Module, latent_shape) -> Generator:
    """A :class:`Generator` of a module a user already has: latents (B, *latent_shape) -> images (B, C, H, W) in
    [0, 1]; its image shape is read from one output. Its weights are not changed by :func:`invert`."""
    latent_shape = tuple(int(s) for s in latent_shape)
    with torch.no_grad():
        out = module(torch.zeros(1, *latent_shape))
    if out.dim() != 4:
        raise InputError(f"a generator must give (B, C, H, W) images, this one gives shape {tuple(out.shape)}")
    return Generator(module, latent_shape, tuple(out.shape[1:]))


def invert(generator: Generator, operator: ops.Operator, y: torch.Tensor, *, method: GenerativeMethod = "iagan",
           config: InvertConfig | None = None, noiseless: bool = True, seed: int = 0,
           progress: Progress | None = None) -> InvertResult:
    """Recover the image x with y = A x (+ noise) as (a neighbour of) G's output.

    generator : a :class:`Generator` (:func:`load_generator`, or :func:`as_generator` for a module in memory), left
                unchanged (IAGAN adapts a copy)
    operator  : a linear operator on (1, C, H, W) images of G's size (:mod:`geomprior.image.operators`)
    y         : (1, ...) measurements, ``operator.output_shape(generator.image_shape)``
    noiseless : the measurements are exact (IAGAN then back-projects, unless ``config.back_project`` says)
    Same seed ⇒ same result.
    """
    import copy

    if method not in GENERATIVE:
        raise InputError(f"unknown method {method!r}; valid: {', '.join(GENERATIVE)}")
    cfg = config or InvertConfig()
    expected = (1, *operator.output_shape(generator.image_shape))
    if tuple(y.shape) != expected:
        raise InputError(f"measurements have shape {tuple(y.shape)}, the operator gives {expected}")
    y = y.float()
    gen = torch.Generator().manual_seed(seed)
    G = copy.deepcopy(generator.module).eval()  # the caller's module stays as it was (weights, grads, mode)
    for p in G.parameters():
        p.requires_grad_(False)
    history: dict = {}
    none = EarlyStopping(mode="none")

    # CSGM: every restart is one item of the batch; fit minimises the sum, Adam moves each on its own
    z = torch.randn((cfg.restarts, *generator.latent_shape), generator=gen).requires_grad_(True)
    res = fit([z], lambda: _residual(operator, G(z), y), max_steps=cfg.steps, lr=cfg.lr, stopper=none,
              progress=progress, stage="csgm")
    with torch.no_grad():
        losses = _residual(operator, G(z), y)
    best = int(torch.argmin(losses))
    z = z.detach()[best:best + 1].clone()
    history["csgm"] = {"loss": [float(v) for v in losses], "kept": best, "steps": res.steps}
    x = G(z).detach()

    if method == "iagan" and cfg.adapt_steps > 0 and cfg.adapt_lr > 0:
        weights = list(G.parameters())
        for p in weights:
            p.requires_grad_(True)
        # one Adam for both at the weights' rate; z = 10 ζ moves ten times faster (Adam's step ignores scale)
        zeta = (z / 10).requires_grad_(True)
        res = fit([zeta, *weights], lambda: _residual(operator, G(10 * zeta), y), max_steps=cfg.adapt_steps,
                  lr=cfg.adapt_lr, stopper=none, progress=progress, stage="iagan")
        z = (10 * zeta).detach()
        with torch.no_grad():
            x = G(z)
        history["iagan"] = {"steps": res.steps, "loss": res.history.get("loss", [])}
    elif method == "lcm" and cfg.adapt_steps > 0:
        with _seeded(seed):
            net = _LatentNet(generator.latent_shape, cfg.lcm_width, gen)
        params = list(net.net.parameters())
        res = fit(params, lambda: _residual(operator, G(net()), y), max_steps=cfg.adapt_steps, lr=cfg.lcm_lr,
                  stopper=none, progress=progress, stage="lcm")
        with torch.no_grad():
            z = net().detach()
            x = G(z)
        history["lcm"] = {"steps": res.steps, "loss": res.history.get("loss", [])}

    project = cfg.back_project if cfg.back_project is not None else noiseless
    if method == "iagan" and project:
        x = back_project(operator, x, y)
    x = x.clamp(0, 1)  # the image range (after a back-projection, A x = y up to that clipping)
    residual = float(_residual(operator, x, y)[0])
    log.info("%s: mean squared residual %.3g", method, residual)
    return InvertResult(image=_to_hwc(x), method=method, latent=z.cpu().numpy(), residual=residual, history=history)
