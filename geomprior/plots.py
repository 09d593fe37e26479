"""Pictures of runs: loss curves with the early-stop point (matplotlib, Agg) and image comparison strips.

Used by ``geomprior reconstruct --plot`` and ``geomprior image ... --plot``. Figures are drawn on
``matplotlib.figure.Figure`` objects (no pyplot state, no display needed) and written atomically.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from geomprior.errors import InputError
from geomprior.io import atomic_path, check_writable

log = logging.getLogger(__name__)

STRIP_GAP = 4
"""White pixels between the panels of a comparison strip."""


def strip_path(plot: str | os.PathLike) -> Path:
    """Where the image commands put the comparison strip that goes with ``--plot PLOT``: ``<stem>_strip.png``."""
    plot = Path(plot)
    return plot.with_name(f"{plot.stem}_strip.png")


def _series(history: Mapping, key: str, n: int) -> np.ndarray | None:
    values = history.get(key)
    if values is None or len(values) != n:
        return None
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return out if np.isfinite(out).any() else None


def plot_fit(
    path: str | os.PathLike,
    history: Mapping,
    *,
    kept: int | Sequence[int] | None = None,
    title: str = "",
    xlabel: str = "step",
    kept_label: str = "kept",
    width: float = 6.4,
    height: float = 4.0,
    dpi: int = 100,
) -> None:
    """Plot the training and validation loss of a :func:`geomprior.fit.fit` run to a PNG (atomically).

    history : the run's history: ``step`` (E,) and ``loss`` (E,), optionally ``val`` (E,) and ``psnr`` (E,)
              (one entry per evaluation; None / NaN entries are gaps). PSNR goes on a second y axis.
    kept    : the step whose weights were kept (a vertical line), or per-item steps (a shaded range)
    title   : wrapped over at most three lines
    """
    from matplotlib.figure import Figure

    path = check_writable(path, extensions=(".png",))
    steps = np.asarray(history.get("step", []), dtype=np.float64)
    loss = _series(history, "loss", len(steps))
    if len(steps) == 0 or loss is None:
        raise InputError(f"{path}: the run has no recorded losses to plot")
    val = _series(history, "val", len(steps))
    psnr = _series(history, "psnr", len(steps))

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    marker = "." if len(steps) <= 60 else None
    lines = ax.plot(steps, loss, color="tab:blue", marker=marker, label="training loss")
    if val is not None:
        lines += ax.plot(steps, val, color="tab:orange", marker=marker, label="validation loss")
    shown = np.concatenate([loss, val if val is not None else []])
    shown = shown[np.isfinite(shown)]
    if len(shown) and shown.min() > 0 and shown.max() > 3 * shown.min():
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if kept is not None:
        kept_steps = np.atleast_1d(np.asarray(kept, dtype=np.float64))
        if kept_steps.min() == kept_steps.max():
            lines.append(ax.axvline(kept_steps[0], color="tab:red", linestyle="--",
                                    label=f"{kept_label}: {xlabel} {int(kept_steps[0])}"))
        else:
            lines.append(ax.axvspan(kept_steps.min(), kept_steps.max(), color="tab:red", alpha=0.15,
                                    label=f"{kept_label}: {xlabel}s {int(kept_steps.min())}-{int(kept_steps.max())}"))
    if psnr is not None:
        ax2 = ax.twinx()
        lines += ax2.plot(steps, psnr, color="tab:green", marker=marker, label="PSNR")
        ax2.set_ylabel("PSNR (dB)")
    ax.legend(handles=lines, loc="best", fontsize="small")
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 80)[:3]), fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    log.debug("plotted %d evaluations to %s", len(steps), path)


def comparison_strip(path: str | os.PathLike, panels: Sequence[np.ndarray], *,
                     size: tuple[int, int] | None = None) -> None:
    """Write images side by side, left to right, as one PNG (atomically).

    panels : (H_i, W_i, 3) or (H_i, W_i) float images in [0, 1]
    size   : (H, W) every panel is brought to (nearest-neighbour, so pixels stay visible); default: the
             largest panel's size. Panels are separated by :data:`STRIP_GAP` white pixels, so the strip is
             (H, n·W + (n − 1)·STRIP_GAP, 3).
    """
    from skimage.transform import resize

    from geomprior.image.io import write_image

    path = check_writable(path, extensions=(".png",))
    if not panels:
        raise InputError(f"{path}: no images to put side by side")
    rgb = [np.repeat(p[:, :, None], 3, 2) if p.ndim == 2 else np.asarray(p) for p in panels]
    rgb = [np.repeat(p, 3, 2) if p.shape[2] == 1 else p[:, :, :3] for p in rgb]
    h, w = size or max((p.shape[:2] for p in rgb), key=lambda s: s[0] * s[1])
    row = []
    for i, p in enumerate(rgb):
        if p.shape[:2] != (h, w):
            p = resize(p, (h, w, 3), order=0, anti_aliasing=False, preserve_range=True)
        if i:
            row.append(np.ones((h, STRIP_GAP, 3)))
        row.append(np.clip(p, 0, 1))
    with atomic_path(path) as tmp:
        write_image(tmp, np.concatenate(row, axis=1), atomic=False)
    log.debug("wrote a strip of %d images to %s", len(panels), path)
