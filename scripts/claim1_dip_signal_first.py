"""Claim 1: Deep Image Prior fits a natural image before it fits noise.

The same DIP network (the package's "fast" skip net, 32 channels, 4 scales; fixed input and no output average,
so the curves are those of the network itself) is fitted, from the same initialisation, to three targets of the
same size: a clean image, pure noise U(0, 1), and the image plus Gaussian noise (σ = 25/255). Recorded every 10
iterations: the fitting loss (mean squared error to the target) and, for the noisy image, the PSNR of the fit
to the CLEAN image (never used by the fit). The clean image is fitted first, the noise last; the fit of the noisy
image gets closer to the clean image, peaks, and then falls as it starts fitting the noise: early stopping denoises.

    python scripts/claim1_dip_signal_first.py [--image camera] [--size 128] [--iters 1000] [--out out/]
    python scripts/claim1_dip_signal_first.py --quick     # 32x32, a tiny net: seconds (tests/test_claims.py)

Writes claim1_dip_signal_first.json (curves, iterations to reach each loss threshold, PSNR peak and final) and
claim1_dip_signal_first.png. Default size: 224 s (219 s CPU time) on AMD EPYC, 2 cores, no GPU, torch 2.13.0 CPU
build, CPU shared with other jobs (load average 4.1); --quick: about 7 s CPU time.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from _experiments import (SIGMA, add_noise, finish, load_image, parse, parser, psnr_curve, pyplot, timer,
                          uniform_noise)

from geomprior.image import tasks
from geomprior.image.dip import DIPConfig

STEM = "claim1_dip_signal_first"
THRESHOLDS = (0.01, 0.003, 0.001)
"""Loss (mean squared error) levels; the iteration at which each fit first gets below each is reported."""


def first_below(history: dict, level: float) -> int | None:
    """First recorded iteration whose loss is <= level (None: never within the run)."""
    return next((s for s, v in zip(history["step"], history["loss"]) if v <= level), None)


def run(image: np.ndarray, config: DIPConfig, iters: int, seed: int) -> dict:
    targets = {
        "clean image": image,
        "pure noise U(0,1)": uniform_noise(image.shape, seed),
        f"image + noise (sigma {round(SIGMA * 255)}/255)": add_noise(image, SIGMA, seed),
    }
    out = {}
    for name, target in targets.items():
        noisy = name.startswith("image +")
        res = tasks.denoise(target, method="dip", config=config, iters=iters, device="cpu", seed=seed, wiener=False,
                            stop=tasks.StopConfig(rule="none"), reference=image if noisy else None)
        h = res.history
        entry = {"step": h["step"], "loss": h["loss"],
                 "iterations_to_loss": {str(t): first_below(h, t) for t in THRESHOLDS}}
        if noisy:
            entry["psnr_to_clean"] = h["psnr"]
            entry.update(psnr_curve(h))
            entry["input_psnr"] = tasks.psnr(target, image)
        out[name] = entry
    return out


def plot(curves: dict, title: str):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (name, c), colour in zip(curves.items(), ("tab:blue", "tab:red", "tab:purple")):
        ax.semilogy(c["step"], c["loss"], color=colour, label=name)
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("iteration")
    ax.set_ylabel("fitting loss (MSE to the target)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    noisy = next(c for name, c in curves.items() if "psnr_to_clean" in c)
    bx.plot(noisy["step"], noisy["psnr_to_clean"], color="tab:purple", label="fit of the noisy image vs clean image")
    bx.axhline(noisy["input_psnr"], color="grey", ls=":", label=f"noisy input ({noisy['input_psnr']:.1f} dB)")
    bx.axvline(noisy["peak_step"], color="g", ls="--",
               label=f"peak {noisy['peak_psnr']:.1f} dB at {noisy['peak_step']}")
    bx.set_xlabel("iteration")
    bx.set_ylabel("PSNR to the clean image (dB)")
    bx.set_title(f"final {noisy['final_psnr']:.1f} dB: {noisy['drop_db']:.1f} dB below the peak", fontsize=9)
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = parser(__doc__, STEM)
    p.add_argument("--image", default="camera", help="skimage.data image (default camera)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--iters", type=int, default=1000, help="iterations of each fit (default 1000)")
    args = parse(p, argv)
    config = dataclasses.replace(tasks.make_config("dip", "fast"), input_noise=0.0, ema=0.0)
    if args.quick:
        args.size, args.iters = 32, 200
        config = DIPConfig.width(16, scales=3, input_channels=8, input_noise=0.0, ema=0.0)
    image = load_image(args.image, args.size, channels=1)
    with timer() as took:
        curves = run(image, config, args.iters, args.seed)
    title = f"DIP ({config.channels_down[0]} ch, {config.scales} scales) on {args.image} {args.size}x{args.size}"
    results = {"image": args.image, "size": args.size, "iters": args.iters, "config": dataclasses.asdict(config),
               "thresholds": list(THRESHOLDS), "curves": curves}
    for name, c in curves.items():
        print(f"{name:<28} iterations to loss {', '.join(f'{t}: {n}' for t, n in c['iterations_to_loss'].items())}")
    noisy = next(c for c in curves.values() if "psnr_to_clean" in c)
    print(f"noisy-image fit vs clean: input {noisy['input_psnr']:.2f} dB, peak {noisy['peak_psnr']:.2f} dB at "
          f"{noisy['peak_step']}, final {noisy['final_psnr']:.2f} dB at {noisy['final_step']}")
    finish(args, STEM, results, plot(curves, title), took())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
