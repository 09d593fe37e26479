"""Shared by the claim scripts (scripts/claim*.py): images, noise, the command line, figures and the JSON record.

Each claim script builds a dict of numbers and a matplotlib figure and hands both to :func:`finish`, which writes
``<out>/<stem>.json`` and ``<out>/<stem>.png`` atomically (both or neither) with the machine and the run time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np
from _scans import machine

from geomprior.image.tasks import psnr
from geomprior.io import atomic_path, write_json

SIGMA = 25 / 255
"""Gaussian noise level of the denoising experiments (on the [0, 1] scale), as in the DIP and DD papers."""


def load_image(name: str, size: int, channels: int = 3) -> np.ndarray:
    """A scikit-image test image (shipped in its wheel: camera, astronaut, coffee, ...) as (size, size, channels)
    float32 in [0, 1]; grayscale images are repeated to 3 channels, colour images averaged to 1."""
    from skimage import data, transform, util

    img = util.img_as_float(getattr(data, name)())
    if img.ndim == 2:
        img = img[:, :, None]
    img = img[:, :, :3]
    if channels == 1 and img.shape[2] == 3:
        img = img.mean(axis=2, keepdims=True)
    elif channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return transform.resize(img, (size, size), anti_aliasing=True).astype(np.float32)


def add_noise(image: np.ndarray, sigma: float = SIGMA, seed: int = 0) -> np.ndarray:
    """image + N(0, sigma²), clipped to [0, 1] (float32)."""
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 1).astype(np.float32)


def uniform_noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Pure noise U(0, 1) of ``shape`` (float32): an "image" with no structure at all."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def psnr_curve(history: dict) -> dict:
    """Peak and final of a solver history's reference PSNR (``history["psnr"]`` per ``history["step"]``)."""
    p = np.asarray(history["psnr"], dtype=float)
    i = int(np.argmax(p))
    return {"peak_psnr": float(p[i]), "peak_step": int(history["step"][i]), "final_psnr": float(p[-1]),
            "final_step": int(history["step"][-1]), "drop_db": float(p[i] - p[-1])}


def masked_psnr(image: np.ndarray, reference: np.ndarray, where: np.ndarray) -> float:
    """PSNR over the pixels where ``where`` (H, W) is True only (all channels)."""
    return psnr(image[where], reference[where])


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``p.parse_args(argv)`` that remembers the arguments (``args.argv``, for the JSON's command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    args.argv = argv
    return args


def parser(doc: str, stem: str) -> argparse.ArgumentParser:
    """Options every claim script takes: --out, --seed, --quick (a tiny size that runs in seconds, for the tests)."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    p.add_argument("--out", default="out", help=f"folder for {stem}.json and {stem}.png (default: out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the images' noise and the networks (default 0)")
    p.add_argument("--quick", action="store_true", help="tiny size and networks: runs in seconds (used by the tests)")
    return p


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (imported only when a figure is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def show(ax, image: np.ndarray, title: str) -> None:
    """An (H, W, C) image in [0, 1] on ``ax`` without ticks (grayscale when C = 1)."""
    img = np.clip(image, 0, 1)
    if img.shape[2] == 1:
        ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


@contextlib.contextmanager
def timer():
    """``with timer() as t: ...`` then ``t()`` gives {"seconds": wall clock, "cpu_seconds": this process's CPU time}
    of the block. On a shared CPU the wall clock grows with the load; the CPU time much less."""
    wall, cpu = time.perf_counter(), time.process_time()
    end: list[dict] = []

    def took() -> dict:
        return end[0] if end else {"seconds": round(time.perf_counter() - wall, 1),
                                   "cpu_seconds": round(time.process_time() - cpu, 1)}

    yield took
    end.append(took())


def load_average() -> float | None:
    """The 1-minute load average (how shared the CPU was), None where the OS does not say."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def finish(args, stem: str, results: dict, fig, took: dict, *, palette: bool = False) -> None:
    """Write ``<out>/<stem>.json`` (``results`` + command, machine, times from :func:`timer`, load average) and
    ``<out>/<stem>.png`` (dpi 80; ``palette``: 256 colours, for pictures of photographs to stay small), atomically
    and together; print where they went."""
    os.makedirs(args.out, exist_ok=True)
    record = {"command": " ".join(["python", f"scripts/{stem}.py", *args.argv]), "machine": machine(), **took,
              "load_average": load_average(), "quick": bool(args.quick), **results}
    json_path, png_path = os.path.join(args.out, f"{stem}.json"), os.path.join(args.out, f"{stem}.png")
    with atomic_path(png_path) as tmp_png:
        fig.savefig(tmp_png, dpi=80, format="png")
        if palette:
            from PIL import Image

            with Image.open(tmp_png) as im:
                small = im.convert("RGB").quantize(256)
            small.save(tmp_png, format="png", optimize=True)
        write_json(json_path, record)
    pyplot().close(fig)
    print(f"wrote {json_path} and {png_path} ({took['seconds']:.0f} s, {took['cpu_seconds']:.0f} s CPU time, on "
          f"{record['machine']}, load average {record['load_average']})")
