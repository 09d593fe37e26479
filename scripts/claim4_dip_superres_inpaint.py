"""Claim 4: DIP super-resolves and inpaints; could it inpaint LARGE holes well?

Super-resolution ×4: a clean image is downsampled (antialiased) and restored by DIP (``tasks.superresolve``),
against bicubic upsampling. Inpainting: the same image loses the same fraction of its pixels either as a few
large disks (holes) or as random pixels; DIP (``tasks.inpaint``) and the biharmonic baseline
(skimage.restoration.inpaint_biharmonic) fill them; the PSNR is measured over the missing pixels only. The DIP
runs use the package's "fast" preset and its automatic stop (held-out pixels, no ground truth); the best PSNR in
hindsight (the clean image is recorded, never used) is reported next to it.

    python scripts/claim4_dip_superres_inpaint.py [--image astronaut] [--size 128] [--missing 0.2] [--iters 900]
                                                  [--out out/]
    python scripts/claim4_dip_superres_inpaint.py --quick     # 32x32, a tiny net: seconds (tests/test_claims.py)

Writes claim4_dip_superres_inpaint.json and .png (picture grid). Default size: 222 s (218 s CPU time) on AMD EPYC,
2 cores, no GPU, torch 2.13.0 CPU build, CPU shared with other jobs (load average 2.9); --quick: about 6 s CPU time.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from _experiments import finish, load_image, masked_psnr, parse, parser, psnr_curve, pyplot, show, timer

from geomprior.image import tasks
from geomprior.image.dip import DIPConfig

STEM = "claim4_dip_superres_inpaint"
FACTOR = 4


def hole_masks(shape: tuple[int, int], missing: float, seed: int) -> dict[str, np.ndarray]:
    """Two known-pixel masks (H, W) bool (True = known) missing the same number of pixels: disks of radius
    ~H/8 at random places until ``missing`` of the image is gone, and as many random pixels."""
    h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    holes = np.zeros((h, w), bool)
    while holes.mean() < missing:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.8, 1.2) * min(h, w) / 8
        holes |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    pixels = np.zeros(h * w, bool)
    pixels[rng.permutation(h * w)[: int(holes.sum())]] = True
    return {"large holes": ~holes, "random pixels": ~pixels.reshape(h, w)}


def superres(image: np.ndarray, config: DIPConfig, iters: int, seed: int) -> dict:
    from skimage import transform

    h, w, _ = image.shape
    small = transform.resize(image, (h // FACTOR, w // FACTOR), anti_aliasing=True).astype(np.float32)
    bicubic = np.clip(transform.resize(small, (h, w), order=3), 0, 1).astype(np.float32)
    res = tasks.superresolve(small, FACTOR, method="dip", config=config, iters=iters, device="cpu", seed=seed,
                             reference=image)
    return {"images": {"low resolution": small, "bicubic": bicubic, "DIP": res.image},
            "numbers": {"factor": FACTOR, "bicubic_psnr": tasks.psnr(bicubic, image), "dip_psnr": res.psnr,
                        "dip_stopped_at": res.steps, "dip_kept_step": res.best_step, "stop_reason": res.reason,
                        **{f"dip_{k}": v for k, v in psnr_curve(res.history).items()}}}


def inpaint(image: np.ndarray, masks: dict, config: DIPConfig, iters: int, seed: int) -> dict:
    from skimage.restoration import inpaint_biharmonic

    out = {}
    for name, known in masks.items():
        damaged = image * known[:, :, None]
        holes = ~known
        bih = np.clip(inpaint_biharmonic(image, holes, channel_axis=-1), 0, 1).astype(np.float32)
        res = tasks.inpaint(damaged, known, method="dip", config=config, iters=iters, device="cpu", seed=seed,
                            reference=image)
        out[name] = {
            "images": {"damaged": damaged, "biharmonic": bih, "DIP": res.image},
            "numbers": {"missing_fraction": float(holes.mean()),
                        "dip_hole_psnr": masked_psnr(res.image, image, holes),
                        "biharmonic_hole_psnr": masked_psnr(bih, image, holes),
                        "dip_psnr": res.psnr, "biharmonic_psnr": tasks.psnr(bih, image),
                        "dip_stopped_at": res.steps, "dip_kept_step": res.best_step, "stop_reason": res.reason,
                        **{f"dip_{k}": v for k, v in psnr_curve(res.history).items()}}}
    return out


def plot(image: np.ndarray, sr: dict, inp: dict):
    plt = pyplot()
    fig, axes = plt.subplots(3, 4, figsize=(8, 6.4))
    n = sr["numbers"]
    row = [(sr["images"]["low resolution"], f"input {FACTOR}x smaller"),
           (sr["images"]["bicubic"], f"bicubic {n['bicubic_psnr']:.2f} dB"),
           (sr["images"]["DIP"], f"DIP {n['dip_psnr']:.2f} dB"), (image, "original")]
    for ax, (img, title) in zip(axes[0], row):
        show(ax, img, title)
    for axrow, (name, r) in zip(axes[1:], inp.items()):
        n = r["numbers"]
        row = [(r["images"]["damaged"], f"{name}: {100 * n['missing_fraction']:.0f}% missing"),
               (r["images"]["biharmonic"], f"biharmonic: holes {n['biharmonic_hole_psnr']:.2f} dB"),
               (r["images"]["DIP"], f"DIP: holes {n['dip_hole_psnr']:.2f} dB"), (image, "original")]
        for ax, (img, title) in zip(axrow, row):
            show(ax, img, title)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = parser(__doc__, STEM)
    p.add_argument("--image", default="astronaut", help="skimage.data image (default astronaut)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels, divisible by 4 (default 128)")
    p.add_argument("--missing", type=float, default=0.2, help="fraction of the pixels to remove (default 0.2)")
    p.add_argument("--iters", type=int, default=900, help="iteration cap of each DIP run (default 900)")
    args = parse(p, argv)
    config = tasks.make_config("dip", "fast")
    if args.quick:
        args.size, args.iters = 32, 150
        config = DIPConfig.width(16, scales=3, input_channels=8, ema=0.9)
    image = load_image(args.image, args.size, channels=3)
    masks = hole_masks(image.shape[:2], args.missing, args.seed)
    with timer() as took:
        sr = superres(image, config, args.iters, args.seed)
        inp = inpaint(image, masks, config, args.iters, args.seed)
    n = sr["numbers"]
    print(f"super-resolution x{FACTOR}: bicubic {n['bicubic_psnr']:.2f} dB, DIP {n['dip_psnr']:.2f} dB (kept "
          f"iteration {n['dip_kept_step']}; best in hindsight {n['dip_peak_psnr']:.2f} dB at {n['dip_peak_step']})")
    for name, r in inp.items():
        n = r["numbers"]
        print(f"inpainting, {name} ({100 * n['missing_fraction']:.1f}% missing): PSNR in the holes DIP "
              f"{n['dip_hole_psnr']:.2f} dB, biharmonic {n['biharmonic_hole_psnr']:.2f} dB")
    results = {"image": args.image, "size": args.size, "iters": args.iters, "config": dataclasses.asdict(config),
               "superresolution": sr["numbers"], "inpainting": {k: r["numbers"] for k, r in inp.items()}}
    finish(args, STEM, results, plot(image, sr, inp), took(), palette=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
