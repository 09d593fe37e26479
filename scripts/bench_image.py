"""Image priors against classical methods on scikit-image's bundled test images (issue 3's acceptance table).

Cases, on centre crops of astronaut, camera and coffee (grayscale stays one channel):

- denoise: Gaussian noise σ = 25/255 (clipped to [0, 1]), σ NOT given to our methods; DIP (see below),
  Deep Decoder (the average of ``tasks.DD_DENOISE_RUNS`` = 2 runs, each stopping at the noise level it
  estimates), tiled coordinate MLP (automatic stop) vs skimage NL-means, TV (Chambolle) and wavelet (BayesShrink),
  each given σ; NL-means' h and TV's weight are the best of a small grid judged against the clean image (an oracle
  tuning that favours the baselines); and BM3D (CBM3D for colour, the ``bm3d`` package, σ given; ``pip install '.[bench]'``, licensed for non-commercial use only: a comparator, never a
  dependency of geomprior; without it its rows are left out). DIP's default fits the Recorrupted-to-Recorrupted
  loss at the noise level σ it estimates, no stop, and averages the runs of ``tasks.dip_denoise_schedule`` (runs
  of ``DIP_DENOISE_NOISE_STEPS``/σ iterations sharing the preset's ``DIP_DENOISE_STEPS``, seeds 0, 1, ...; the
  table's header gives the numbers); rows
  ``run1`` (one run of the preset's full width) and ``runs3``
  (3 of them) were measured with the former held-out stop;
- superres ×4: the low-resolution input is the clean crop downsampled by the Lanczos-2 operator; DIP vs bicubic
  upsampling (skimage ``resize(order=3)``). Without the inverse crime (issue 32; variants ``pil-bicubic``,
  ``pil-lanczos``, ``area``): the input is made as a user's would be, the crop saved as 8 bits and shrunk with
  PIL's antialiased bicubic or Lanczos filter, or block means (PIL's box filter); DIP with its default settings
  (which assume none of them) vs PIL's bicubic upsampling of the same input;
- inpaint: 50 % of the pixels missing at random; DIP and DD vs ``inpaint_biharmonic``; like biharmonic, ours keep
  the known pixels and fill the missing ones (``tasks.inpaint``'s default; row field ``keep_known``, a * after
  the method in the table; rows without it return the network's output everywhere);
- compress: Deep Decoder with k chosen for ≈ 30× fewer weights than pixel values (and ≈ 8×) vs keeping the same
  number of largest Haar wavelet coefficients (PyWavelets, full decomposition per channel);
- fit: the coordinate MLP fits the clean crop (no stop);
- cs: compressed sensing from 25 % Gaussian measurements (32×32 blocks) with DD (no classical row).

``--extras`` adds issue 5's wider table (rows with a variant; the acceptance verdicts use none of them): denoising
at σ = 15/255 and 50/255 (DIP, DD, the classical three and BM3D), inpainting of large holes (discs covering ≈ 25 % of
the image; DIP, DD, biharmonic), and the coordinate MLP with Fourier positional encoding (fit and denoise) against
the default encoding (scripts/bench_fit.py compares all encodings).

Every row records PSNR and SSIM of the returned image, the iteration the rule chose, the best PSNR seen along
the run (the oracle, from evaluations every 10 iterations), the PSNR at the last iteration, time and weights.
The verdicts under the table are computed from the rows. Each finished row is cached under ``--out``/rows_<preset>;
``--reuse`` skips rows already computed with the same settings, so the table can be built over several runs
(``--tasks``, ``--methods``, ``--images``, ``--variants`` select rows).

    python scripts/bench_image.py [--size 256] [--preset default] [--images ...] [--tasks ...] [--methods ...]
                                  [--iters N] [--device cpu|cuda] [--out benchmarks/bench_image] [--reuse] [--extras]
    python scripts/bench_image.py --cached-only   # the table of the rows computed so far, and what is missing
    python scripts/bench_image.py --quick      # 32×32, tiny networks, 20 iterations: checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pywt
import torch
from skimage import data, transform
from skimage.draw import disk
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet, inpaint_biharmonic

from _bench import RowCache, header

from geomprior.image import operators as ops
from geomprior.image import tasks
from geomprior.image.decoder import dd_parameter_count
from geomprior.io import write_json

SIGMA = 25 / 255
EXTRA_SIGMAS = (15 / 255, 50 / 255)  # --extras
FOURIER = 3  # octaves of the Fourier-encoded MLP rows (--extras), beside the default encoding
IMAGES = ("astronaut", "camera", "coffee")
TASKS = ("denoise", "superres", "inpaint", "compress", "fit", "cs")
CLASSICAL = {"nlm", "tv", "wavelet", "bm3d", "bicubic", "biharmonic", "haar"}
SKIMAGE_DENOISERS = ("nlm", "tv", "wavelet")
RUNS = 3  # DIP runs averaged in the denoising rows "runs3"
SIGMA25 = ("", "run1", f"runs{RUNS}", f"fourier{FOURIER}")  # denoising variants at σ 25 (the Pareto table)
COMPRESSION = (30, 8)  # target ratios pixel values / weights
# super-resolution inputs made by downsamplers the model does not assume: row variant -> PIL filter
DOWNSAMPLERS = {"pil-bicubic": "BICUBIC", "pil-lanczos": "LANCZOS", "area": "BOX"}


def load(name: str, size: int) -> np.ndarray:
    """Centre crop size×size of a skimage.data image, float32 in [0, 1], (H, W, C); smaller images are resized."""
    img = getattr(data, name)()
    img = img[:, :, None] if img.ndim == 2 else img[:, :, :3]
    img = img.astype(np.float32) / 255
    h, w = img.shape[:2]
    if min(h, w) < size:
        img = transform.resize(img, (size, size), anti_aliasing=True).astype(np.float32)
        h = w = size
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])


def pil_resize(image: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    """image (H, W, C) in [0, 1] as 8 bits, resized by PIL to size (width, height) with the filter ``name``
    (antialiased when shrinking), as float32 (h, w, C) in [0, 1]."""
    from PIL import Image

    filt = getattr(Image.Resampling, name)
    bands = [Image.fromarray(np.round(image[..., c] * 255).astype(np.uint8)).resize(size, filt)
             for c in range(image.shape[2])]
    return np.stack([np.asarray(b, dtype=np.float32) / 255 for b in bands], -1)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    return float(structural_similarity(image, reference, data_range=1.0, channel_axis=-1))


def _best(candidates: Iterator[np.ndarray], clean: np.ndarray) -> np.ndarray:
    return max(candidates, key=lambda im: tasks.psnr(im, clean))


def nl_means(noisy, clean, sigma=SIGMA):
    return _best((denoise_nl_means(noisy, h=f * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                                   channel_axis=-1) for f in (0.6, 0.8, 1.0)), clean)


def tv(noisy, clean, sigma=SIGMA):
    weights = np.array([0.04, 0.06, 0.08, 0.1, 0.13]) * sigma / SIGMA  # the grid scales with the noise
    return _best((denoise_tv_chambolle(noisy, weight=w, channel_axis=-1) for w in weights), clean)


def wavelet(noisy, clean, sigma=SIGMA):
    return denoise_wavelet(noisy, sigma=sigma, channel_axis=-1, convert2ycbcr=noisy.shape[2] == 3,
                           method="BayesShrink", mode="soft", rescale_sigma=True)


def bm3d_denoise(noisy, clean, sigma=SIGMA):
    """BM3D (CBM3D for colour; the ``bm3d`` package, σ given): the denoiser an image user would pick. A comparator
    only (``pip install '.[bench]'``; its licence allows non-commercial use only)."""
    import bm3d

    if noisy.shape[2] == 1:
        return np.asarray(bm3d.bm3d(noisy[:, :, 0], sigma), dtype=np.float32)[:, :, None]
    return np.asarray(bm3d.bm3d_rgb(noisy, sigma), dtype=np.float32)


def has_bm3d() -> bool:
    import importlib.util

    return importlib.util.find_spec("bm3d") is not None


def holes(shape: tuple[int, int], rng: np.random.Generator, fraction: float = 0.25) -> np.ndarray:
    """(H, W) bool, True = known: random discs of radius min(H, W)/16 until ``fraction`` of the pixels are missing."""
    known = np.ones(shape, dtype=bool)
    radius = max(1.0, min(shape) / 16)
    while (~known).mean() < fraction:
        rr, cc = disk((rng.uniform(0, shape[0]), rng.uniform(0, shape[1])), radius, shape=shape)
        known[rr, cc] = False
    return known


def haar(image: np.ndarray, keep: int) -> np.ndarray:
    """Keep the ``keep`` largest-magnitude coefficients of the per-channel full Haar decomposition."""
    coeffs = [pywt.wavedec2(image[:, :, c], "haar") for c in range(image.shape[2])]
    arrays = [pywt.coeffs_to_array(co) for co in coeffs]
    flat = np.concatenate([a.ravel() for a, _ in arrays])
    threshold = np.sort(np.abs(flat))[-keep] if keep < flat.size else 0.0
    out = []
    for (arr, slices) in arrays:
        kept = np.where(np.abs(arr) >= threshold, arr, 0)
        out.append(pywt.waverec2(pywt.array_to_coeffs(kept, slices, output_format="wavedec2"), "haar"))
    return np.clip(np.stack(out, axis=2), 0, 1).astype(np.float32)


def dd_channels_for(ratio: float, shape: tuple[int, int, int], depth: int = 5) -> int:
    """The k whose Deep Decoder has pixel values / weights closest to ``ratio``."""
    values = shape[0] * shape[1] * shape[2]
    return min(range(1, 257), key=lambda k: abs(values / dd_parameter_count(k, depth, shape[2]) - ratio))


@dataclasses.dataclass
class Case:
    task: str
    method: str
    run: Callable[[], "np.ndarray | tasks.ImageResult"]  # a classical result, or one of ours
    input_psnr: float | None = None
    variant: str = ""  # e.g. the compression ratio
    parameters: int | None = None  # numbers kept by a classical compressor


def cases(clean: np.ndarray, args) -> Iterator[Case]:
    rng = np.random.default_rng(args.seed)
    noisy = np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32)
    mask = rng.random(clean.shape[:2]) > 0.5
    with torch.no_grad():
        x = torch.as_tensor(clean).permute(2, 0, 1)[None]
        small = ops.Downsample(4, "lanczos2")(x)[0].permute(1, 2, 0).numpy().clip(0, 1)
    ours = dict(device=args.device, seed=args.seed, iters=args.iters, reference=clean, preset=args.preset)

    def config(method):
        if not args.quick:
            return None
        cfg = tasks.make_config(method, "fast", channels=8)
        return dataclasses.replace(cfg, depth=2) if method == "dd" else cfg

    def our(func, *a, method, reference=True, **kw):
        common = ours if reference else {k: v for k, v in ours.items() if k != "reference"}
        return lambda: func(*a, method=method, config=config(method), **common, **kw)

    noisy_db = tasks.psnr(noisy, clean)
    for method in ("dip", "dd", "mlp"):
        yield Case("denoise", method, our(tasks.denoise, noisy, method=method), noisy_db)
    yield Case("denoise", "dip", our(tasks.denoise, noisy, method="dip", runs=RUNS), noisy_db, f"runs{RUNS}")
    yield Case("denoise", "dip", our(tasks.denoise, noisy, method="dip", runs=1), noisy_db, "run1")
    yield Case("denoise", "nlm", lambda: nl_means(noisy, clean), noisy_db)
    yield Case("denoise", "tv", lambda: tv(noisy, clean), noisy_db)
    yield Case("denoise", "wavelet", lambda: wavelet(noisy, clean), noisy_db)
    yield Case("denoise", "bm3d", lambda: bm3d_denoise(noisy, clean), noisy_db)

    bicubic = transform.resize(small, clean.shape[:2], order=3).astype(np.float32).clip(0, 1)
    bicubic_db = tasks.psnr(bicubic, clean)
    yield Case("superres", "dip", our(tasks.superresolve, small, 4, method="dip"), bicubic_db)
    yield Case("superres", "bicubic", lambda: bicubic, bicubic_db)
    h, w = clean.shape[:2]
    for variant, name in DOWNSAMPLERS.items():
        low = pil_resize(clean, (w // 4, h // 4), name)
        up = pil_resize(low, (w, h), "BICUBIC")
        up_db = tasks.psnr(up, clean)
        yield Case("superres", "dip", our(tasks.superresolve, low, 4, method="dip"), up_db, variant)
        yield Case("superres", "bicubic", lambda up=up: up, up_db, variant)

    damaged = clean * mask[:, :, None]
    damaged_db = tasks.psnr(damaged, clean)
    for method in ("dip", "dd"):
        yield Case("inpaint", method, our(tasks.inpaint, damaged, mask, method=method), damaged_db)
    yield Case("inpaint", "biharmonic", lambda: inpaint_biharmonic(damaged, ~mask, channel_axis=-1), damaged_db)

    for ratio in COMPRESSION:
        k = 4 if args.quick else dd_channels_for(ratio, clean.shape)
        depth = 2 if args.quick else 5
        n = dd_parameter_count(k, depth, clean.shape[2])
        yield Case("compress", "dd", lambda k=k, depth=depth: tasks.compress(
            clean, channels=k, depth=depth, iters=args.iters, device=args.device, seed=args.seed),
            variant=f"{ratio}x")
        yield Case("compress", "haar", lambda n=n: haar(clean, n), variant=f"{ratio}x", parameters=n)

    yield Case("fit", "mlp", lambda: tasks.fit_image(clean, config=config("mlp"), preset=args.preset,
                                                     iters=args.iters, device=args.device, seed=args.seed))
    yield Case("cs", "dd", our(tasks.compressed_sensing, clean, 0.25, method="dd", reference=False))
    if args.extras:
        yield from extra_cases(clean, noisy, args, our, config, rng)


def extra_cases(clean: np.ndarray, noisy25: np.ndarray, args, our, config, rng) -> Iterator[Case]:
    """Issue 5's rows beyond the acceptance table (see the module docstring)."""
    for sigma in EXTRA_SIGMAS:
        noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1).astype(np.float32)
        noisy_db, variant = tasks.psnr(noisy, clean), f"σ{round(sigma * 255)}"
        for method in ("dip", "dd"):
            yield Case("denoise", method, our(tasks.denoise, noisy, method=method), noisy_db, variant)
        for method, func in (("nlm", nl_means), ("tv", tv), ("wavelet", wavelet), ("bm3d", bm3d_denoise)):
            yield Case("denoise", method, lambda func=func, noisy=noisy, sigma=sigma: func(noisy, clean, sigma),
                       noisy_db, variant)

    known = holes(clean.shape[:2], rng)
    damaged = clean * known[:, :, None]
    for method in ("dip", "dd"):
        yield Case("inpaint", method, our(tasks.inpaint, damaged, known, method=method), tasks.psnr(damaged, clean),
                   "holes")
    yield Case("inpaint", "biharmonic", lambda: inpaint_biharmonic(damaged, ~known, channel_axis=-1),
               tasks.psnr(damaged, clean), "holes")

    fourier = dataclasses.replace(config("mlp") or tasks.make_config("mlp", args.preset), encoding="fourier",
                                  fourier=FOURIER)
    variant = f"fourier{FOURIER}"
    yield Case("fit", "mlp", lambda: tasks.fit_image(clean, config=fourier, iters=args.iters, device=args.device,
                                                     seed=args.seed), variant=variant)
    yield Case("denoise", "mlp", lambda: tasks.denoise(noisy25, method="mlp", config=fourier, device=args.device,
                                                       seed=args.seed, iters=args.iters, reference=clean),
               tasks.psnr(noisy25, clean), variant)


def row_for(name: str, case: Case, clean: np.ndarray, args) -> dict:
    t = time.perf_counter()
    out = case.run()
    seconds = time.perf_counter() - t
    res = out if isinstance(out, tasks.ImageResult) else None
    image = np.asarray(res.image if res else out, dtype=np.float32).clip(0, 1)
    image = image.reshape(clean.shape)  # skimage drops the channel axis of grayscale images
    row = dict(image=name, task=case.task, method=case.method, variant=case.variant, psnr=tasks.psnr(image, clean),
               ssim=ssim(image, clean), input_psnr=case.input_psnr, seconds=seconds,
               threads=torch.get_num_threads(), load=os.getloadavg()[0])
    if res is not None:
        row.update(stop_rule=res.stop_rule, steps=res.steps, parameters=res.parameters,
                   ratio=clean.size / res.parameters)
        for key in ("keep_known", "network_psnr"):
            if key in res.extra:
                row[key] = res.extra[key]
        if res.extra.get("wiener"):
            row["wiener"] = "stacks"  # the Wiener step with block matching (rows before it: lone windows)
        runs = res.extra.get("runs")
        if runs:  # several runs averaged: each run's own stop
            row.update(oracle_psnr=max(r["oracle_psnr"] for r in runs),
                       stop_gap=max(r["oracle_psnr"] - r["psnr"] for r in runs))
        else:
            h = res.history
            best = int(np.argmax(h["psnr"]))
            row.update(chosen=res.best_step, oracle_psnr=h["psnr"][best], oracle_step=h["step"][best],
                       last_psnr=h["psnr"][-1], stop_gap=h["psnr"][best] - row["psnr"])
    elif case.parameters is not None:
        row.update(parameters=case.parameters, ratio=clean.size / case.parameters)
    return row


def settings(args) -> dict:
    return dict(size=args.size, seed=args.seed, preset=args.preset, iters=args.iters, device=args.device,
                quick=args.quick, torch=torch.__version__)


def _chosen(variant: str, args) -> bool:
    """Whether ``--variants`` (none: all) selects rows of this variant ('plain': rows without one)."""
    return not args.variants or (variant or "plain") in args.variants


def run(args) -> tuple[list[dict], list[str]]:
    """The rows of the selected cases (computed, or cached with ``--reuse``/``--cached-only``) and the keys of
    the cases left out (``--cached-only``: not in the cache)."""
    cache = RowCache(Path(args.out) / ("rows_quick" if args.quick else f"rows_{args.preset}"), settings(args))
    missing = []
    bm3d_missing = not has_bm3d()
    if bm3d_missing and not args.cached_only and (not args.methods or "bm3d" in args.methods):
        print("bm3d is not installed (pip install '.[bench]'; licensed for non-commercial use only): its rows are "
              "left out", file=sys.stderr)
    for name in args.images:
        clean = load(name, args.size)
        for case in cases(clean, args):
            if (case.task not in args.tasks or (args.methods and case.method not in args.methods)
                    or not _chosen(case.variant, args)):
                continue
            key = "-".join(filter(None, (name, case.task, case.method, case.variant)))
            if (args.reuse or args.cached_only) and cache.get(key) is not None:
                continue
            if args.cached_only or (case.method == "bm3d" and bm3d_missing):
                missing.append(key)
                continue
            row = row_for(name, case, clean, args)
            print(f"{name} {case.task} {case.method} {case.variant}: {row['psnr']:.2f} dB in {row['seconds']:.0f} s",
                  flush=True)
            cache.put(key, row)
    order = {t: i for i, t in enumerate(TASKS)}
    rows = [r for r in cache.rows() if r["image"] in args.images and _chosen(r["variant"], args)]
    return sorted(rows, key=lambda r: (order[r["task"]], r["variant"], r["image"], r["method"] in CLASSICAL,
                                       r["method"])), missing


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(rows: list[dict], args, argv=None, missing=()) -> str:
    conventions = (
        f"{args.size}×{args.size} centre crops of skimage.data images, seed {args.seed}; our preset '{args.preset}' "
        f"(DIP: {_dip_width(args)}); iteration caps "
        f"{'--iters ' + str(args.iters) if args.iters else 'per task (geomprior.image.tasks.DEFAULT_ITERS)'}; "
        f"device {args.device} (torch threads: per row, in the s column). PSNR/SSIM over all channels on [0, 1], "
        f"no border crop. input dB: the noisy image (denoise), bicubic upsampling (superres), the damaged image "
        f"(inpaint). method*: our inpainting keeps the known pixels and fills the missing ones, as biharmonic "
        f"does (tasks.inpaint's default; our inpaint rows without the * return the network's output everywhere). "
        f"PSNR (in brackets): denoising's result, the noisy image filtered by the empirical Wiener filter the "
        f"network's output guides (tasks.denoise's default), and the network's own output; our denoising rows "
        f"without the brackets were measured before that step (before 2026-12-06) and are the network's output; "
        f"† marks rows whose Wiener step filtered each window on its own, before it stacked alike windows (BM3D's "
        f"block matching). "
        f"oracle: best PSNR among the evaluations (every 10 iterations), in hindsight; last: PSNR at the "
        f"last iteration; chosen: the iteration the rule returned. s: wall time of the row, with the torch threads "
        f"it ran on and the machine's 1-minute load average when it ended (a load above the core count means the "
        f"machine was shared and the time is inflated).")
    head = ("| image | task | method | input dB | PSNR dB | SSIM | oracle dB | last dB | rule | chosen | oracle it "
            "| ran | s (threads, load) | weights |")
    title = "Images: untrained priors vs classical methods" + (
        f" (rows {', '.join(args.variants)})" if args.variants else "")
    lines = [header(title, conventions, __file__, argv), head,
             "|" + "---|" * 14]
    for r in rows:
        task = r["task"] + (f" {r['variant']}" if r["variant"] else "")
        lines.append(
            f"| {r['image']} | {task} | {r['method']}{'*' if r.get('keep_known') else ''} | {_fmt(r['input_psnr'], '.2f')} | {_psnr_cell(r)} | "
            f"{r['ssim']:.3f} | {_fmt(r.get('oracle_psnr'), '.2f')} | {_fmt(r.get('last_psnr'), '.2f')} | "
            f"{r.get('stop_rule', '-')} | {_fmt(r.get('chosen'), 'd')} | {_fmt(r.get('oracle_step'), 'd')} | "
            f"{_fmt(r.get('steps'), 'd')} | {r['seconds']:.1f} ({r.get('threads', '?')}, {_fmt(r.get('load'), '.1f')}) | "
            f"{_fmt(r.get('parameters'), 'd')} |")
    if missing:
        lines += ["", f"Not measured yet ({len(missing)} rows): {', '.join(missing)}."]
    for block in (verdicts(rows, args.preset), peers(rows), pareto(rows)):
        if block:
            lines += ["", *block]
    return "\n".join(lines)


def _psnr_cell(r: dict) -> str:
    """The row's PSNR; a denoised image refined by the Wiener filter also shows its network's own, in brackets,
    marked † where that filter had no block matching."""
    if r.get("network_psnr") is None:
        return f"{r['psnr']:.2f}"
    return f"{r['psnr']:.2f}{'' if r.get('wiener') else '†'} ({r['network_psnr']:.2f})"


def _dip_width(args) -> str:
    cfg = tasks.make_config("dip", args.preset)
    return (f"{cfg.channels_down[0]} channels, {cfg.scales} scales; denoising: the average of runs "
            f"{tasks.DIP_DENOISE_CHANNELS[args.preset]} channels wide, loss r2r, "
            f"{tasks.DIP_DENOISE_NOISE_STEPS:g}/σ iterations each, {tasks.DIP_DENOISE_STEPS[args.preset]} in all")


PACE = {"fast": 180, "default": 900}
"""Issue 32: seconds the preset's DIP denoising of a 256² crop may take on the 2-core CPU."""


def verdicts(rows: list[dict], preset: str = "default") -> list[str]:
    """Issue 3's acceptance criteria (and issue 32's), judged from the rows present."""
    by = {(r["image"], r["task"], r["method"], r["variant"]): r for r in rows}
    images = sorted({r["image"] for r in rows})
    out = ["Acceptance (computed from the rows above):"]

    def check(label, task, method, test, variant=""):
        results = []
        for im in images:
            r = by.get((im, task, method, variant))
            if r is None:
                continue
            ok, text = test(im, r)
            results.append(ok)
            out.append(f"- {label} [{im}]: {text} -> {'PASS' if ok else 'FAIL'}")
        return results

    def psnr_of(im, task, method, variant=""):
        r = by.get((im, task, method, variant))
        return None if r is None else r["psnr"]

    def classical_best(im):
        vals = {m: psnr_of(im, "denoise", m) for m in SKIMAGE_DENOISERS}
        vals = {m: v for m, v in vals.items() if v is not None}
        return max(vals.items(), key=lambda kv: kv[1]) if vals else (None, None)

    def dip_denoise(im, r):
        m, best = classical_best(im)
        if best is None:
            return False, "no classical row"
        gap = r.get("stop_gap", r["oracle_psnr"] - r["psnr"])
        return (r["psnr"] >= best + 0.5 and gap <= 1.0,
                f"DIP {r['psnr']:.2f} vs best scikit-image {m} {best:.2f} (need +0.5); stop {gap:.2f} dB below "
                f"the run's best (need <= 1; the worst run when several are averaged)")
    check("denoise DIP", "denoise", "dip", dip_denoise)
    check("denoise DIP, one full-width run", "denoise", "dip", dip_denoise, variant="run1")
    check(f"denoise DIP, {RUNS} full-width runs averaged", "denoise", "dip", dip_denoise, variant=f"runs{RUNS}")

    def dd_denoise(im, r):
        wav = psnr_of(im, "denoise", "wavelet")
        m, best = classical_best(im)
        if wav is None:
            return False, "no wavelet row"
        gap = r["oracle_psnr"] - r["last_psnr"] if "last_psnr" in r else r["stop_gap"]  # runs: the worst run's
        return (r["psnr"] > wav and gap <= 0.5,
                f"DD {r['psnr']:.2f} vs wavelet {wav:.2f}; last iteration {gap:.2f} dB below its best (need <= 0.5); "
                f"{r['psnr'] - best:+.2f} dB vs best scikit-image {m}")
    check("denoise DD", "denoise", "dd", dd_denoise)

    def vs(other_method, need, label):
        def test(im, r):
            other = psnr_of(im, r["task"], other_method, r["variant"])
            if other is None:
                return False, f"no {other_method} row"
            return r["psnr"] >= other + need, f"{r['psnr']:.2f} vs {label} {other:.2f} (need {need:+.1f})"
        return test
    for variant in ("", "σ50") if any(r["method"] == "bm3d" for r in rows) else ():  # issue 32: BM3D - 0.3 dB
        check(f"denoise DIP vs BM3D {variant or 'σ25'}", "denoise", "dip", vs("bm3d", -0.3, "BM3D"), variant=variant)

    def pace(im, r):  # issue 32: the preset's time; fast also at least the best scikit-image denoiser
        limit, (m, best) = PACE[preset], classical_best(im)
        text = f"{r['seconds']:.0f} s on {r.get('threads', '?')} threads (need <= {limit})"
        if preset != "fast" or r["variant"]:
            return r["seconds"] <= limit, text
        if best is None:
            return False, text + "; no scikit-image row"
        return (r["seconds"] <= limit and r["psnr"] >= best,
                text + f"; {r['psnr']:.2f} vs best scikit-image {m} {best:.2f} (need +0.0)")
    for variant in ("", "σ50") if preset in PACE else ():
        check(f"denoise DIP pace, preset {preset}, {variant or 'σ25'}", "denoise", "dip", pace, variant=variant)

    def dd_vs_skimage(im, r):
        m, best = classical_best(im)
        if best is None:
            return False, "no scikit-image row"
        return r["psnr"] >= best, f"DD {r['psnr']:.2f} vs best scikit-image {m} {best:.2f} (need +0.0)"
    check("denoise DD vs scikit-image σ25", "denoise", "dd", dd_vs_skimage)
    check("superres x4 DIP", "superres", "dip", vs("bicubic", 0.5, "bicubic"))
    for variant in ("pil-lanczos", "pil-bicubic"):  # issue 32: no inverse crime
        check(f"superres x4 DIP, input {variant}", "superres", "dip", vs("bicubic", 0.5, "PIL bicubic"), variant)
    check("inpaint 50% DIP", "inpaint", "dip", vs("biharmonic", 0.0, "biharmonic"))
    check("inpaint 50% DD", "inpaint", "dd", vs("biharmonic", 0.0, "biharmonic"))
    for ratio in COMPRESSION:
        check(f"compress DD ~{ratio}x", "compress", "dd", vs("haar", 0.0, "Haar, same count"), variant=f"{ratio}x")
    check("MLP fits the clean image", "fit", "mlp", lambda im, r: (r["psnr"] >= 30, f"{r['psnr']:.2f} dB (need 30)"))
    check("MLP denoise (auto stop)", "denoise", "mlp",
          lambda im, r: (r["psnr"] > r["input_psnr"], f"{r['psnr']:.2f} vs noisy {r['input_psnr']:.2f}"))
    return out if len(out) > 1 else []


def peers(rows: list[dict]) -> list[str]:
    """Issue 5's wider rows (no acceptance threshold): each of ours against the best classical row of the same
    image, task and variant."""
    out = []
    for r in rows:
        if not r["variant"] or r["method"] in CLASSICAL:
            continue
        same = [c for c in rows if c["method"] in CLASSICAL
                and (c["image"], c["task"], c["variant"]) == (r["image"], r["task"], r["variant"])]
        if same:
            best = max(same, key=lambda c: c["psnr"])
            out.append(f"- {r['task']} {r['variant']} {r['method'].upper()} [{r['image']}]: {r['psnr']:.2f} vs best "
                       f"classical {best['method']} {best['psnr']:.2f} ({r['psnr'] - best['psnr']:+.2f} dB)")
    return ["Wider rows, ours against the best classical row of the same image, task and variant:", *out] if out else []


def pareto(rows: list[dict]) -> list[str]:
    """Issue 32's PSNR against time of every denoising row at σ 25, per image: fastest first; front: no other row
    of the image is both faster and better."""
    out = []
    for im in sorted({r["image"] for r in rows}):
        same = sorted((r for r in rows if r["image"] == im and r["task"] == "denoise" and r["variant"] in SIGMA25),
                      key=lambda r: (r["seconds"], -r["psnr"]))
        best = -np.inf
        for r in same:
            front = r["psnr"] > best
            best = max(best, r["psnr"])
            out.append(f"| {im} | {r['method']}{' ' + r['variant'] if r['variant'] else ''} | {r['psnr']:.2f} | "
                       f"{r['seconds']:.1f} ({r.get('threads', '?')}) | {'yes' if front else ''} |")
    if not out:
        return []
    return ["PSNR against time, denoising at σ 25 (every row above; front: no row of the same image is both faster "
            "and better; times at the thread count in brackets):", "",
            "| image | method | PSNR dB | s (threads) | front |", "|---|---|---|---|---|", *out]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--images", nargs="+", default=list(IMAGES), choices=IMAGES)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--methods", nargs="+", help="only these methods (ours: dip dd mlp; classical: nlm tv wavelet "
                                                 "bm3d bicubic biharmonic haar)")
    p.add_argument("--variants", nargs="+", metavar="VARIANT",
                   help="only rows of these variants (e.g. σ50 holes runs3 fourier3; 'plain': rows without one)")
    p.add_argument("--preset", default="default", choices=("fast", "default", "quality"),
                   help="our networks' preset (default: default, the 64-channel CPU width; the reference DIP width "
                        "is 'quality')")
    p.add_argument("--iters", type=int, default=None, help="cap on iterations (default: each task's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/bench_image")
    p.add_argument("--reuse", action="store_true", help="skip rows already computed with the same settings")
    p.add_argument("--cached-only", action="store_true",
                   help="compute nothing: the table of the rows already cached, listing the ones not measured yet")
    p.add_argument("--extras", action="store_true", help="also issue 5's rows: denoising at σ = 15 and 50, large "
                                                          "holes, the MLP with Fourier encoding")
    p.add_argument("--quick", action="store_true", help="32x32, tiny networks, 20 iterations: a smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.images, args.iters = 32, args.images[:1], args.iters or 20
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    rows, missing = run(args)
    if args.cached_only and not rows:  # make_benchmarks keeps the published table
        print(f"no rows yet under {args.out}: no table written", file=sys.stderr)
        return 0
    text = table(rows, args, argv, missing)
    print(text)
    stem = "bench_image_quick" if args.quick else "bench_image" + ("" if args.preset == "default" else f"_{args.preset}")
    stem += "".join(f"_{v}" for v in args.variants or ())
    write_json(os.path.join(args.out, f"{stem}.json"), {"rows": rows, **settings(args)})
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
