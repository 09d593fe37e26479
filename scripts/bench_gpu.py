"""GPU subset of the benchmarks (run by scripts/bench_gpu.sh after bench_dgp): a 100k-point reconstruction, Deep
Image Prior on a 512² image, and the local fit's loss and matching choices (``--loss``/``--matching`` of
reconstruct, on a smaller scan: the data for the device's default), on one device. Writes bench_gpu.json and
bench_gpu.md (with bench_dgp's table).

Self-contained for a bare GPU machine: the scan is an analytic torus with its true normals (no ../shared, no
normal estimation); when open3d is not installed the Screened Poisson step is skipped and the time up to the
dense oriented points is reported. Quality of the dense points: mean distance to the true torus (exact, analytic),
against the noisy input's.

    python scripts/bench_gpu.py [--device cuda] [--points 100000] [--preset default] [--image-size 512]
                                [--dip-iters 3000] [--out benchmarks/gpu]
    python scripts/bench_gpu.py --quick --device cpu     # 3,000 points, 64² image, few steps: checks that it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import types
from pathlib import Path

import numpy as np
import torch
from _bench import header
from _scans import machine
from skimage import data, transform

import geomprior.dgp as dgp
from geomprior.image import tasks
from geomprior.io import write_json
from geomprior.synthetic import torus_scan

SIGMA = 25 / 255


def torus_distance(points: np.ndarray, big: float = 1.0, small: float = 0.3) -> np.ndarray:
    """Exact distance of points to the torus of torus_scan."""
    return np.abs(np.hypot(np.hypot(points[:, 0], points[:, 1]) - big, points[:, 2]) - small)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


LOSSES = ("assignment/exact", "assignment/sinkhorn", "sinkhorn/exact")
"""(--loss, --matching) pairs compared by --losses: the CPU default, the original's matching, the design's loss."""


def reconstruction(n_points: int, preset: str, device: str, max_epochs: int | None, **changes) -> dict:
    points, normals = torus_scan(n_points, 0.005, seed=0)
    cfg = dataclasses.replace(dgp.DGPConfig.preset(preset), **changes)
    if max_epochs is not None:
        cfg = dataclasses.replace(cfg, max_epochs=max_epochs, min_epochs=0, consistency_epochs=5)
    stamps: dict[str, float] = {}

    def progress(stage, step, total, info):
        stamps.setdefault(stage, time.perf_counter())

    try:
        import open3d  # noqa: F401
        meshing = "Screened Poisson"
    except ImportError:  # bare GPU machine: keep everything up to the dense points, skip the mesh
        meshing = "skipped (open3d not installed)"
        dgp.finish = lambda *a, **k: (types.SimpleNamespace(triangles=[], vertices=[]), {}, "")
    _sync(device)
    t0 = time.perf_counter()
    rec = dgp.reconstruct(points, normals, cfg, device=device, progress=progress)
    _sync(device)
    total = time.perf_counter() - t0
    diag = float(np.linalg.norm(np.ptp(points, axis=0)))
    local = rec.history["local"]
    return {
        "points": n_points, "preset": preset, "loss": cfg.loss, "matching": cfg.matching,
        "patches": rec.history["patches"], "epochs": int(local["steps"]),
        "stop_reason": local["reason"], "seconds_total": total,
        "seconds_to_dense_points": stamps.get("mesh", time.perf_counter()) - t0, "meshing": meshing,
        "triangles": len(rec.mesh.triangles), "dense_points": len(rec.points),
        "input_mean_distance": float(torus_distance(points).mean() / diag),
        "dense_mean_distance": float(torus_distance(rec.points).mean() / diag),
    }


def dip(size: int, iters: int, device: str, preset: str) -> dict:
    clean = transform.resize(data.astronaut(), (size, size), anti_aliasing=True).astype(np.float32)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32)
    _sync(device)
    t0 = time.perf_counter()
    res = tasks.denoise(noisy, method="dip", preset=preset, runs=1, iters=iters, device=device, reference=clean)
    _sync(device)
    seconds = time.perf_counter() - t0
    best = int(np.argmax(res.history["psnr"]))
    return {"size": size, "preset": preset, "iterations": res.steps, "chosen": res.best_step,
            "stop_reason": res.reason, "psnr": res.psnr, "noisy_psnr": tasks.psnr(noisy, clean),
            "oracle_psnr": res.history["psnr"][best], "seconds": seconds, "seconds_per_iteration": seconds / res.steps,
            "weights": res.parameters}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--preset", default="default")
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--dip-preset", default="quality", help="DIP preset (quality = the reference 128 channels)")
    p.add_argument("--dip-iters", type=int, default=3000)
    p.add_argument("--loss-points", type=int, default=20_000,
                   help="scan size of the loss/matching comparison (0: leave it out)")
    p.add_argument("--out", default="benchmarks/gpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    max_epochs = None
    if args.quick:
        args.points, args.preset, args.image_size, args.dip_iters, args.dip_preset = 2000, "fast", 64, 20, "fast"
        args.loss_points = min(args.loss_points, 1000)
        max_epochs = 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    rec = reconstruction(args.points, args.preset, args.device, max_epochs)
    print(json.dumps(rec), flush=True)
    im = dip(args.image_size, args.dip_iters, args.device, args.dip_preset)
    print(json.dumps(im), flush=True)
    compared = []
    for pair in LOSSES if args.loss_points else ():
        loss, matching = pair.split("/")
        compared.append(reconstruction(args.loss_points, args.preset, args.device, max_epochs, loss=loss,
                                       matching=matching))
        print(json.dumps(compared[-1]), flush=True)
    dgp_table = out / "bench_dgp.md"
    result = {"machine": machine(), "device": args.device, "gpu": gpu, "reconstruction": rec, "dip": im,
              "losses": compared,
              "bench_dgp": json.loads((out / "bench_dgp.json").read_text()) if (out / "bench_dgp.json").exists()
              else None}
    write_json(str(out / "bench_gpu.json"), result)
    lines = [
        header("GPU subset", f"Device {args.device} ({gpu}). Reconstruction: analytic torus scan, 0.5 % noise, true "
               f"normals given, preset {args.preset}; distances relative to the bounding-box diagonal. DIP: "
               f"astronaut resized to {args.image_size}², noise σ = 25/255, preset {args.dip_preset}, automatic stop "
               f"(held-out pixels), cap {args.dip_iters}.", __file__, argv),
        "| job | size | time | result |", "|---|---|---|---|",
        f"| reconstruction ({rec['patches']} patches, {rec['epochs']} epochs) | {rec['points']:,} points | "
        f"{rec['seconds_to_dense_points']:.1f} s to dense points, {rec['seconds_total']:.1f} s total (mesh: "
        f"{rec['meshing']}) | mean distance to the true torus {rec['dense_mean_distance']:.6f} "
        f"(noisy input {rec['input_mean_distance']:.6f}) |",
        f"| DIP denoising ({im['weights']:,} weights) | {im['size']}² | {im['seconds']:.1f} s, "
        f"{im['seconds_per_iteration'] * 1e3:.1f} ms/iteration, {im['iterations']} iterations | PSNR {im['psnr']:.2f} "
        f"dB at iteration {im['chosen']} (best seen {im['oracle_psnr']:.2f}, noisy {im['noisy_psnr']:.2f}) |",
    ] + [f"| reconstruction, --loss {r['loss']} --matching {r['matching']} ({r['epochs']} epochs) | {r['points']:,} "
         f"points | {r['seconds_to_dense_points']:.1f} s to dense points | mean distance to the true torus "
         f"{r['dense_mean_distance']:.6f} (noisy input {r['input_mean_distance']:.6f}) |" for r in compared]
    if dgp_table.exists():
        lines += ["", dgp_table.read_text().strip()]
    (out / "bench_gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
