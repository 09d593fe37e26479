"""Image priors on scikit-image's bundled test images: PSNR, the iteration chosen without ground truth, the best
iteration in hindsight (oracle, from the reference PSNR recorded every ``eval_every`` iterations) and time.

Cases: denoising (Gaussian noise σ = 25/255, clipped) with DIP, Deep Decoder and the tiled MLP, ×4 super-resolution
(DIP, Lanczos-2 downsampler), inpainting of 50 % random pixels (DD, DIP) and compressed sensing at 25 %
(Gaussian 32×32 blocks, DD). Every method runs with its defaults (preset "default", default stopping rule and
iteration cap) unless ``--iters`` caps it lower. PSNR over all channels of [0, 1] images, no border crop.

    python scripts/bench_image.py [--size 128] [--images camera astronaut] [--iters N] [--device cpu|cuda] [--out out/]
    python scripts/bench_image.py --quick      # 32×32, a few iterations: checks that the script runs (a test does)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import numpy as np
import torch
from skimage import data, transform

from geomprior.image import tasks
from geomprior.io import write_json

SIGMA = 25 / 255


def load(name: str, size: int) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, 2)
    img = img[:, :, :3]
    return transform.resize(img, (size, size), anti_aliasing=True).astype(np.float32)


def cases(clean: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    noisy = np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32)
    small = transform.resize(clean, (clean.shape[0] // 4, clean.shape[1] // 4), anti_aliasing=True).astype(np.float32)
    mask = rng.random(clean.shape[:2]) > 0.5
    yield "denoise", "dip", dict(func=tasks.denoise, args=(noisy,), input_psnr=tasks.psnr(noisy, clean))
    yield "denoise", "dd", dict(func=tasks.denoise, args=(noisy,), input_psnr=tasks.psnr(noisy, clean))
    yield "denoise", "mlp", dict(func=tasks.denoise, args=(noisy,), input_psnr=tasks.psnr(noisy, clean))
    bicubic = transform.resize(small, clean.shape[:2], order=3).astype(np.float32)
    yield "superres", "dip", dict(func=tasks.superresolve, args=(small, 4), input_psnr=tasks.psnr(bicubic, clean))
    damaged = clean * mask[:, :, None]
    for method in ("dd", "dip"):
        yield "inpaint", method, dict(func=tasks.inpaint, args=(damaged, mask), input_psnr=tasks.psnr(damaged, clean))
    yield "cs", "dd", dict(func=tasks.compressed_sensing, args=(clean, 0.25), input_psnr=None)


def run(args) -> list[dict]:
    rows = []
    for name in args.images:
        clean = load(name, args.size)
        for task, method, case in cases(clean, args.seed):
            kw = dict(method=method, device=args.device, seed=args.seed, iters=args.iters)
            if args.quick:
                kw["config"] = tasks.make_config(method, "fast", channels=8)
                if method == "dd":
                    kw["config"] = dataclasses.replace(kw["config"], depth=2)
            if task != "cs":
                kw["reference"] = clean
            t = time.perf_counter()
            res = case["func"](*case["args"], **kw)
            seconds = time.perf_counter() - t
            h = res.history
            best = int(np.argmax(h["psnr"]))
            rows.append(dict(image=name, task=task, method=method, psnr=res.psnr, input_psnr=case["input_psnr"],
                             stop_rule=res.stop_rule, chosen=res.best_step, steps=res.steps,
                             oracle_psnr=h["psnr"][best], oracle_step=h["step"][best], seconds=seconds,
                             parameters=res.parameters))
    return rows


def table(rows: list[dict], args) -> str:
    head = (f"{'image':<10} {'task':<9} {'method':<6} {'input dB':>8} {'PSNR dB':>8} {'oracle dB':>9} "
            f"{'rule':<8} {'chosen':>6} {'oracle it':>9} {'ran':>5} {'s':>7} {'weights':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        inp = f"{r['input_psnr']:.2f}" if r["input_psnr"] is not None else "-"
        lines.append(f"{r['image']:<10} {r['task']:<9} {r['method']:<6} {inp:>8} {r['psnr']:>8.2f} "
                     f"{r['oracle_psnr']:>9.2f} {r['stop_rule']:<8} {r['chosen']:>6} {r['oracle_step']:>9} "
                     f"{r['steps']:>5} {r['seconds']:>7.1f} {r['parameters']:>8}")
    lines.append("")
    lines.append(f"{args.size}x{args.size} RGB images from skimage.data (grayscale repeated), seed {args.seed}; "
                 f"PSNR over all channels on [0, 1], no border crop; noise sigma 25/255 clipped to [0, 1]; input dB: "
                 f"noisy image (denoise), bicubic upsampling (superres), damaged image (inpaint); oracle: best PSNR "
                 f"among the evaluations in hindsight; device {args.device}, torch {torch.__version__}, "
                 f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--images", nargs="+", default=["camera", "astronaut"])
    p.add_argument("--iters", type=int, default=None, help="cap on iterations (default: each task's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out")
    p.add_argument("--quick", action="store_true", help="32x32, tiny networks, 20 iterations: a smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.images, args.iters = 32, args.images[:1], args.iters or 20
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    rows = run(args)
    text = table(rows, args)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stem = "bench_image_quick" if args.quick else "bench_image"
    write_json(os.path.join(args.out, f"{stem}.json"), {"rows": rows, "size": args.size, "seed": args.seed,
                                                         "device": args.device})
    with open(os.path.join(args.out, f"{stem}.txt"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
