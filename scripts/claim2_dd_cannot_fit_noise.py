"""Claim 2: an under-parameterised Deep Decoder cannot fit noise, so it needs no early stopping.

(a) Deep Decoders of k channels (depth d, N = (d+1)(k² + 2k) + 3k weights) are fitted to pure noise U(0, 1) of
n = H·W·3 values, without early stopping and without an output average. Measured: the fraction of the noise
energy the fit explains, 1 − ‖fit − noise‖² / ‖noise − mean(noise)‖² (0: no better than the mean, 1: fits the
noise exactly), next to the parameter ratio N / n. Heckel & Hand's rough rationale: a k-dimensional subspace
captures about k/n of the noise power; a decoder with fewer weights than pixels fits a small fraction.
(b) An under-parameterised Deep Decoder (the middle k, N/n < 1) denoises an image (σ = 25/255) run to the cap with
no early stopping; the PSNR to the clean image (recorded, never used) ends near its best.

    python scripts/claim2_dd_cannot_fit_noise.py [--image astronaut] [--size 64] [--ks 4 8 16 32 64 128]
                                                 [--iters 1500] [--denoise-k 32] [--denoise-iters 3000] [--out out/]
    python scripts/claim2_dd_cannot_fit_noise.py --quick     # 32x32, three k: seconds (tests/test_claims.py)

Writes claim2_dd_cannot_fit_noise.json and .png. Default size: 101 s (98 s CPU time) on AMD EPYC, 2 cores, no GPU,
torch 2.13.0 CPU build, CPU shared with other jobs (load average 3.0); --quick: about 4 s CPU time.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from _experiments import (SIGMA, add_noise, finish, load_image, parse, parser, psnr_curve, pyplot, timer,
                          uniform_noise)

from geomprior.image import tasks
from geomprior.image.decoder import DDConfig, dd_parameter_count

STEM = "claim2_dd_cannot_fit_noise"


def fitted_fraction(fit: np.ndarray, target: np.ndarray) -> float:
    """1 − ‖fit − target‖² / ‖target − mean(target)‖²: the share of the target's energy (about its mean) explained."""
    fit, target = fit.astype(np.float64), target.astype(np.float64)
    return float(1 - ((fit - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def noise_sweep(shape, ks, base: DDConfig, iters: int, seed: int) -> list[dict]:
    noise = uniform_noise(shape, seed)
    n = int(np.prod(shape))
    rows = []
    for k in ks:
        cfg = dataclasses.replace(base, channels=k, ema=0.0)
        res = tasks.denoise(noise, method="dd", config=cfg, iters=iters, device="cpu", seed=seed, wiener=False,
                            stop=tasks.StopConfig(rule="none"))
        rows.append({"k": k, "parameters": res.parameters, "pixels": n, "parameter_ratio": res.parameters / n,
                     "fitted_fraction": fitted_fraction(res.image, noise)})
        assert res.parameters == dd_parameter_count(k, base.depth, shape[2])
        print(f"k={k:<4} N={res.parameters:<7} N/n={res.parameters / n:<7.3f} "
              f"fitted fraction of the noise energy {rows[-1]['fitted_fraction']:.3f}")
    return rows


def denoise(image: np.ndarray, k: int, base: DDConfig, iters: int, seed: int) -> dict:
    noisy = add_noise(image, SIGMA, seed)
    cfg = dataclasses.replace(base, channels=k)
    res = tasks.denoise(noisy, method="dd", config=cfg, iters=iters, device="cpu", seed=seed, wiener=False,
                        stop=tasks.StopConfig(rule="none"), reference=image)
    out = {"k": k, "parameters": res.parameters, "parameter_ratio": res.parameters / image.size,
           "config": dataclasses.asdict(cfg), "input_psnr": tasks.psnr(noisy, image),
           "step": res.history["step"], "psnr": res.history["psnr"], **psnr_curve(res.history)}
    print(f"DD k={k} (N/n={out['parameter_ratio']:.3f}) denoising, no early stopping: input "
          f"{out['input_psnr']:.2f} dB, best {out['peak_psnr']:.2f} dB at {out['peak_step']}, final "
          f"{out['final_psnr']:.2f} dB at {out['final_step']}")
    return out


def plot(rows: list[dict], den: dict, title: str):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    ks = [r["k"] for r in rows]
    ax.plot(ks, [r["fitted_fraction"] for r in rows], "o-", color="tab:red",
            label="fitted fraction of the noise energy")
    ax.plot(ks, [r["parameter_ratio"] for r in rows], "s--", color="tab:blue", label="weights / pixel values  N/n")
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("channels k")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    bx.plot(den["step"], den["psnr"], color="tab:green", label=f"DD k={den['k']} (N/n={den['parameter_ratio']:.2f})")
    bx.axhline(den["input_psnr"], color="grey", ls=":", label=f"noisy input ({den['input_psnr']:.1f} dB)")
    bx.set_xlabel("iteration (no early stopping)")
    bx.set_ylabel("PSNR to the clean image (dB)")
    bx.set_title(f"best {den['peak_psnr']:.2f} dB at {den['peak_step']}, final {den['final_psnr']:.2f} dB",
                 fontsize=9)
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = parser(__doc__, STEM)
    p.add_argument("--image", default="astronaut", help="skimage.data image (default astronaut)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64; depth = log2(size/4))")
    p.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128], help="channel counts k")
    p.add_argument("--iters", type=int, default=1500, help="iterations of each noise fit (default 1500)")
    p.add_argument("--denoise-k", type=int, default=32, help="k of the denoising run (default 32)")
    p.add_argument("--denoise-iters", type=int, default=3000, help="iterations of the denoising run (default 3000)")
    args = parse(p, argv)
    base = DDConfig()  # the defaults: lr 0.005, output average 0.99 (switched off for the noise fits)
    if args.quick:
        args.size, args.ks, args.iters, args.denoise_k, args.denoise_iters = 32, [4, 16, 64], 200, 16, 200
        base = DDConfig(lr=0.01, ema=0.9)  # short runs: a higher rate, a shorter average
    base = dataclasses.replace(base, depth=max(0, int(np.log2(args.size / 4))))  # a 4x4 input
    image = load_image(args.image, args.size, channels=3)
    with timer() as took:
        rows = noise_sweep(image.shape, args.ks, base, args.iters, args.seed)
        den = denoise(image, args.denoise_k, base, args.denoise_iters, args.seed)
    title = (f"Deep Decoder (depth {base.depth}) fitting U(0,1) noise, {args.size}x{args.size}x3, "
             f"{args.iters} iterations")
    results = {"image": args.image, "size": args.size, "depth": base.depth, "noise_iters": args.iters,
               "noise_fit": rows, "denoise": den}
    finish(args, STEM, results, plot(rows, den, title), took())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
