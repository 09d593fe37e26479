"""Acceptance table: geomprior presets vs open3d Screened Poisson on noisy scans, measured in one run.

Scans: 20k points sampled on ../shared/data/shapes/{bunny00,fandisk}.off, Gaussian noise σ = 0.5% of the
bounding-box diagonal, seed 0, no normals. Poisson: depth 9, normals estimated and oriented by open3d, 2% lowest-
density vertices trimmed. Metrics (geomprior.metrics.evaluate, DESIGN.md §6): shapes scaled to diagonal 1, 100k
samples each, Chamfer-L1, Hausdorff, normal consistency, F-score@1%.

    python scripts/bench_quality.py [--shapes bunny00 fandisk] [--presets fast default] [--points 20000] [--out out/]
                                    [--set FIELD=VALUE ...]   (override DGPConfig fields, e.g. --set matching=sinkhorn)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import time

from _scans import machine, scan

from geomprior.baselines import screened_poisson
from geomprior.dgp import DGPConfig, reconstruct
from geomprior.io import write_json
from geomprior.metrics import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["bunny00", "fandisk"])
    parser.add_argument("--presets", nargs="+", default=["fast", "default"])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--out", default="out")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override DGPConfig fields")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.shapes:
        mesh, noisy = scan(name, n_points=args.points)
        t = time.perf_counter()
        poisson = screened_poisson(noisy)
        rows.append({"shape": name, "method": "open3d Poisson d9", "seconds": time.perf_counter() - t,
                     **evaluate(poisson, mesh)})
        for preset in args.presets:
            t = time.perf_counter()
            cfg = dataclasses.replace(DGPConfig.preset(preset), **overrides)
            rec = reconstruct(noisy, config=cfg, device="cpu")
            label = " ".join([f"geomprior {preset}", *args.set])
            rows.append({"shape": name, "method": label, "seconds": time.perf_counter() - t,
                         "stopped": rec.history["local"]["reason"], **evaluate(rec.mesh, mesh)})
    print(f"machine: {machine()}; {args.points} points, noise 0.5% of the diagonal, no normals given")
    print("| shape | method | Chamfer-L1 | Hausdorff | normal consistency | F-score@1% | seconds | × Poisson time |")
    print("|---|---|---|---|---|---|---|---|")
    base = {}
    for r in rows:
        base.setdefault(r["shape"], r["seconds"])
        print(f"| {r['shape']} | {r['method']} | {r['chamfer_l1']:.6f} | {r['hausdorff']:.5f} | "
              f"{r['normal_consistency']:.4f} | {r['fscore']:.4f} | {r['seconds']:.1f} | "
              f"{r['seconds'] / base[r['shape']]:.1f} |")
    write_json(os.path.join(args.out, "bench_quality.json"), {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
