"""Images as functions: the coordinate encodings side by side, against JPEG and Haar wavelets at equal size.

On the 256² centre crops of astronaut, camera and coffee (as in bench_image.py), ``geomprior image fit``'s
network (``tasks.fit_image``) with each encoding of ``MLPConfig`` (relu, fourier, siren, grid) at the default
preset's size, and the ``compact`` preset; for each of our rows, Pillow's JPEG (4:4:4, the highest quality whose
file is no larger than our weights at 4 bytes each; at most quality 100) and the Haar wavelet compressor of
bench_image.py keeping as many coefficients as we have weights (their positions not counted, in Haar's favour).
Rows record PSNR, SSIM, weights, bytes and the CPU time of the fit. ``--scale`` rows: the function fitted to the
crop downsampled ×4 (area averaging) and rendered at ``--scale 4`` (each encoding), against bicubic upsampling of
the same input.

    python scripts/bench_fit.py [--images ...] [--encodings ...] [--reuse] [--cached-only] [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import transform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import RowCache, header  # noqa: E402
from bench_image import IMAGES, haar, load, ssim  # noqa: E402

from geomprior.image import ENCODINGS, tasks  # noqa: E402
from geomprior.image.mlp import MLPConfig  # noqa: E402
from geomprior.io import write_json  # noqa: E402

PRESETS = ("default", "compact")
UPSCALE = 4
DEFAULT = MLPConfig().encoding  # the encoding of `geomprior image fit` without --encoding
SIZE_VALUES = {"astronaut": 256 * 256 * 3, "camera": 256 * 256, "coffee": 256 * 256 * 3}  # pixel values of a crop


def jpeg_at(image: np.ndarray, budget: int) -> tuple[np.ndarray, int, int]:
    """The JPEG (Pillow, 4:4:4) of the highest quality whose file fits in ``budget`` bytes (quality 1 if none
    does): (decoded image, bytes, quality)."""
    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    pil = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    best = None
    for q in range(1, 101):
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=q, subsampling=0)
        if best is not None and buf.tell() > budget:
            break
        best = (buf.getvalue(), q)
    data, q = best
    out = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32).reshape(image.shape) / 255
    return out, len(data), q


def config(encoding: str, preset: str, quick: bool) -> MLPConfig:
    if quick:
        return MLPConfig(widths=(8, 8), tile=8, overlap=2, encoding=encoding, fourier=2)
    return MLPConfig.preset(preset, encoding=encoding)


def rows_for(name: str, clean: np.ndarray, encoding: str, preset: str, args) -> list[dict]:
    """Our fit of the crop and the two classical codecs at its size."""
    cfg = config(encoding, preset, args.quick)
    t = time.perf_counter()
    res = tasks.fit_image(clean, config=cfg, iters=args.iters, device="cpu", seed=args.seed)
    seconds = time.perf_counter() - t
    base = dict(image=name, encoding=encoding, preset=preset, threads=torch.get_num_threads(),
                load=os.getloadavg()[0])
    ours = dict(base, method="geomprior", psnr=res.psnr, ssim=ssim(res.image, clean), weights=res.parameters,
                bytes=4 * res.parameters, seconds=seconds, steps=res.steps)
    jpeg, size, q = jpeg_at(clean, ours["bytes"])
    wav = haar(clean, res.parameters)
    return [ours,
            dict(base, method=f"JPEG q{q}", psnr=tasks.psnr(jpeg, clean), ssim=ssim(jpeg, clean), bytes=size),
            dict(base, method="Haar", psnr=tasks.psnr(wav, clean), ssim=ssim(wav, clean), weights=res.parameters,
                 bytes=4 * res.parameters)]


def upscale_rows(name: str, clean: np.ndarray, encoding: str, args) -> list[dict]:
    """The fit (default preset, this encoding) of the ×4 area-downsampled crop rendered at --scale 4, and bicubic
    upsampling."""
    h, w, c = clean.shape
    small = clean.reshape(h // UPSCALE, UPSCALE, w // UPSCALE, UPSCALE, c).mean((1, 3))
    t = time.perf_counter()
    res = tasks.fit_image(small, config=config(encoding, "default", args.quick), iters=args.iters, device="cpu",
                          seed=args.seed)
    big = res.function.render(UPSCALE)
    seconds = time.perf_counter() - t
    bicubic = transform.resize(small, clean.shape[:2], order=3).astype(np.float32).clip(0, 1)
    base = dict(image=name, encoding=encoding, preset=f"fit of the ×{UPSCALE} smaller crop, --scale {UPSCALE}")
    return [dict(base, method="geomprior", psnr=tasks.psnr(big, clean), ssim=ssim(big, clean),  # render clips
                 weights=res.parameters, seconds=seconds, steps=res.steps),
            dict(base, method="bicubic", psnr=tasks.psnr(bicubic, clean), ssim=ssim(bicubic, clean))]


def table(rows: list[dict], args, argv=None, missing=()) -> str:
    conventions = (
        f"{args.size}×{args.size} centre crops of skimage.data images (camera is gray: a third of the values), "
        f"seed {args.seed}; iteration cap {'--iters ' + str(args.iters) if args.iters else 'the default of fit'}; "
        f"CPU. Each geomprior row: the network of `geomprior image fit --encoding E --preset P` fitted to the "
        f"crop (no stop; each encoding at its own learning rate, MLPConfig.learning_rate). Below it, at the same "
        f"size: JPEG (Pillow, 4:4:4) of the highest quality whose file fits in the weights' bytes (4 per weight; "
        f"JPEG's file at quality 100 may be smaller still), and Haar wavelets keeping as many coefficients as there "
        f"are weights (positions not counted). s: the fit's wall time, with the torch threads and the 1-minute load "
        f"average when it ended.")
    lines = [header("Images as functions: encodings, JPEG and wavelets at the same size", conventions, __file__,
                    argv),
             "| image | encoding | preset | method | PSNR dB | SSIM | weights | bytes | s (threads, load) |",
             "|" + "---|" * 9]
    for r in rows:
        s = f"{r['seconds']:.1f} ({r['threads']}, {r['load']:.1f})" if "seconds" in r and "threads" in r else (
            f"{r['seconds']:.1f}" if "seconds" in r else "-")
        lines.append(f"| {r['image']} | {r['encoding']} | {r['preset']} | {r['method']} | {r['psnr']:.2f} | "
                     f"{r['ssim']:.3f} | {r.get('weights', '-')} | {r.get('bytes', '-')} | {s} |")
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)}."]
    found = verdicts(rows)
    return "\n".join(lines + (["", "Acceptance (issue 33), from the rows above:", "", *found] if found else []))


def verdicts(rows: list[dict]) -> list[str]:
    """The default fit's PSNR and time, the compact preset against JPEG, --scale 4 against bicubic."""
    out = []
    for i, r in enumerate(rows):
        if r["method"] != "geomprior":
            continue
        if (r["encoding"], r["preset"]) == (DEFAULT, "default"):
            ok = r["psnr"] >= 45 and r["seconds"] <= 300
            out.append(f"- {r['image']}: default fit {r['psnr']:.2f} dB in {r['seconds']:.0f} s (need ≥ 45 dB in "
                       f"≤ 300 s): {'PASS' if ok else 'FAIL'}")
        elif r["preset"] == "compact":
            jpeg = rows[i + 1]
            values = r["weights"] <= SIZE_VALUES.get(r["image"], float("inf"))
            ok = r["psnr"] >= jpeg["psnr"] and values
            out.append(f"- {r['image']}: compact {r['weights']} weights, {r['psnr']:.2f} dB vs {jpeg['method']} "
                       f"{jpeg['psnr']:.2f} dB ({jpeg['bytes']} bytes): {'PASS' if ok else 'FAIL'}")
        elif r["preset"].startswith("fit of") and r["encoding"] == DEFAULT:
            bic = rows[i + 1]
            out.append(f"- {r['image']}: --scale {UPSCALE} {r['psnr']:.2f} dB vs bicubic {bic['psnr']:.2f} dB: "
                       f"{'PASS' if r['psnr'] >= bic['psnr'] else 'FAIL'}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=list(IMAGES), choices=IMAGES)
    p.add_argument("--encodings", nargs="+", default=list(ENCODINGS), choices=ENCODINGS)
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    p.add_argument("--no-scale", dest="scale", action="store_false", help="leave out the --scale rows")
    p.add_argument("--iters", type=int, default=None, help="cap on iterations (default: fit's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/bench_image")
    p.add_argument("--reuse", action="store_true", help="skip rows already computed with the same settings")
    p.add_argument("--cached-only", action="store_true", help="compute nothing: the table of the cached rows")
    p.add_argument("--quick", action="store_true", help="32x32, tiny networks, 20 iterations: a smoke test")
    args = p.parse_args(argv)
    args.size = 32 if args.quick else 256
    if args.quick:
        args.images, args.iters = args.images[:1], args.iters or 20
    settings = dict(size=args.size, seed=args.seed, iters=args.iters, quick=args.quick, torch=torch.__version__)
    cache = RowCache(Path(args.out) / ("rows_fit_quick" if args.quick else "rows_fit"), settings)
    # (image, encoding, preset); preset None: the --scale rows
    jobs = [(name, enc, preset) for name in args.images for preset in args.presets for enc in args.encodings
            if preset == "default" or enc == DEFAULT] + (
        [(name, enc, None) for name in args.images for enc in args.encodings] if args.scale else [])
    keys = [f"{name}-scale-{enc}" if preset is None else f"{name}-{enc}-{preset}" for name, enc, preset in jobs]
    missing = []
    for (name, enc, preset), key in zip(jobs, keys):
        if (args.reuse or args.cached_only) and cache.get(key) is not None:
            continue
        if args.cached_only:
            missing.append(key)
            continue
        clean = load(name, args.size)
        rows = upscale_rows(name, clean, enc, args) if preset is None else rows_for(name, clean, enc, preset, args)
        print(f"{key}: {rows[0]['psnr']:.2f} dB in {rows[0]['seconds']:.0f} s", flush=True)
        cache.put(key, {"rows": rows})
    found = [cache.get(key) for key in keys]
    rows = [r for f in found if f for r in f["rows"]]
    if args.cached_only and not rows:
        print(f"no rows yet under {args.out}: no table written", file=sys.stderr)
        return 0
    text = table(rows, args, argv, missing)
    print(text)
    stem = "bench_image_fit" + ("_quick" if args.quick else "")
    write_json(os.path.join(args.out, f"{stem}.json"), {"rows": rows, **settings})
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
