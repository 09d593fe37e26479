"""Where the time of a reconstruction goes: a preset on one scan, stage by stage, beside open3d's Screened Poisson.

The scan of bench_surfaces.py (20k points of a shape of ../shared/data/shapes, Gaussian noise, no normals). The
stages are the library's own functions, timed by wrapping them for this run (their wall time, nested calls
inside the stage they belong to); "other" is the rest of ``geomprior.dgp.reconstruct``'s wall time. Screened
Poisson at depth 9 (``geomprior.baselines.screened_poisson``: normals estimated and oriented as its benchmark row
does) runs on the same points in the same process, before and after ours, and the faster of its two times counts.

    python scripts/stage_times.py [--shape bunny00] [--noise 0.005] [--preset default] [--out benchmarks]
    python scripts/stage_times.py --quick      # 2,000 points of the torus, few epochs: checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import time
from pathlib import Path
from unittest import mock

import torch
from _bench import header
from _scans import scan

import geomprior.dgp as dgp
from geomprior.baselines import screened_poisson
from geomprior.device import training_dtype
from geomprior.io import write_json

STAGES = (  # (label, function name in geomprior.dgp)
    ("layout: far clusters set aside, spacing", "scan_layout"),
    ("outliers", "find_inliers"),
    ("normals: estimated, oriented, turned outward", "estimate_normals"),
    ("patches", "cover"),
    ("local fit", "_local_fit"),  # also "consistency": told apart by the call's stage
    ("fitted points (consistency targets)", "_consensus"),
    ("dense points", "_dense_output"),
    ("mesh (closed/open, manifold)", "mesh_surface"),
    ("quality report", "scan_quality"),
)


def timed_run(points, cfg) -> tuple[dict[str, float], float, object]:
    """Reconstruct with every stage of STAGES timed: (seconds per stage, total seconds, the reconstruction)."""
    seconds: dict[str, float] = {}
    saved = {name: getattr(dgp, name) for _, name in STAGES}

    def wrap(label, func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            key = kwargs.get("stage", label) if func is saved["_local_fit"] else label
            t = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t
        return run

    with contextlib.ExitStack() as patched:  # the library's own functions again on the way out
        for label, name in STAGES:
            patched.enter_context(mock.patch.object(dgp, name, wrap(label, saved[name])))
        t = time.perf_counter()
        rec = dgp.reconstruct(points, config=cfg, device="cpu", seed=0)
        total = time.perf_counter() - t
    return seconds, total, rec


def poisson_seconds(points) -> float:
    t = time.perf_counter()
    screened_poisson(points, depth=9)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="bunny00")
    p.add_argument("--noise", type=float, default=0.005)
    p.add_argument("--preset", default="default")
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 2000 if args.quick else 20_000
    _, points = scan("torus" if args.quick else args.shape, n_points=n, noise=args.noise)
    cfg = dgp.DGPConfig.preset(args.preset)
    if args.quick:
        cfg = dataclasses.replace(cfg, max_epochs=10, min_epochs=0, consistency_epochs=2)
    first = poisson_seconds(points)
    seconds, total, rec = timed_run(points, cfg)
    poisson = min(first, poisson_seconds(points))
    rows = [{"stage": k, "seconds": v} for k, v in seconds.items()]
    rows.append({"stage": "other", "seconds": total - sum(seconds.values())})
    result = dict(shape=args.shape if not args.quick else "torus", points=n, noise=args.noise, preset=args.preset,
                  threads=torch.get_num_threads(), load=os.getloadavg()[0], total=total, poisson9=poisson,
                  epochs=int(rec.history["local"]["steps"]), rows=rows,
                  training=str(training_dtype(cfg.precision, torch.device("cpu"))).removeprefix("torch."))
    lines = [header("Where the time goes", (
        f"{n:,} points of {result['shape']} with {args.noise:.1%} noise, no normals; preset {args.preset}, CPU, "
        f"training steps in {result['training']}, {result['threads']} torch threads, 1-minute load "
        f"{result['load']:.1f} when it ended. Each stage is the wall time of the library function named, wrapped "
        f"for this run; Screened Poisson depth 9 "
        f"(geomprior.baselines.screened_poisson, normals estimated as its benchmark row does) on the same points, "
        f"the faster of a run before and one after ours."), __file__, argv),
        "| stage | s | share |", "|---|---|---|"]
    lines += [f"| {r['stage']} | {r['seconds']:.1f} | {r['seconds'] / total:.0%} |" for r in rows]
    lines += [f"| **total** ({result['epochs']} local-fit epochs) | **{total:.1f}** | 100% |", "",
              f"Screened Poisson depth 9: {poisson:.1f} s; the preset takes {total / poisson:.1f}× its time."]
    text = "\n".join(lines)
    print(text)
    stem = "stage_times" + ("_quick" if args.quick else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(str(out / f"{stem}.json"), result)
    (out / f"{stem}.md").write_text(text + "\n")
    print(json.dumps({"total": total, "poisson9": poisson}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
