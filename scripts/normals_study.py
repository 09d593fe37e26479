"""Do the two normal orientations disagree on thin parts only? (the rule behind DGPConfig.thin_parts = "auto")

For each scan of scripts/bench_surfaces.py (six shapes; 0.25 / 0.5 / 1 % noise, 2 % outliers, uneven density) and
for thin plates at more noise levels and seeds, the input points a fit uses (outliers dropped as the default preset
drops them) get their normals both ways (geomprior.normals.estimate_normals, thin_parts False and True). Printed per
scan: the share of each estimate that faces the way the reference surface's normal at the nearest reference sample
faces (up to one global flip; 0.5 = half the surface turned), the share on which the two disagree (up to one global
flip), and which one "auto" takes (the thin-part one above THIN_PART_SWITCH).

A second table follows the bunny at 0.5 % noise as the scan grows denser (``--dense`` point counts): the normals
from a fixed 30 neighbours against those from geomprior.normals.normal_neighbours (30, or the points within 0.3 patch
radii on a dense scan), as the mean |cos| to the reference normal and the share facing the right way.

    python scripts/normals_study.py [--points 20000] [--dense 20000 80000 320000] [--out benchmarks/] [--quick]

Writes normals_study.json and normals_study.md in --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from _bench import header
from bench_surfaces import SHAPES, VARIANTS, _mesh, make_scan
from scipy.spatial import cKDTree

from geomprior.dgp import DGPConfig, prepare_points
from geomprior.normals import (
    NORMAL_K,
    NORMAL_REACH,
    THIN_PART_SWITCH,
    estimate_normals,
    normal_neighbours,
    orientation_disagreement,
)
from geomprior.io import write_json
from geomprior.metrics import sample_surface
from geomprior.synthetic import noisy_scan

PLATE_NOISE = (0.003, 0.004, 0.005, 0.006, 0.007, 0.008)
PLATE_SEEDS = (0, 1, 2)


def study(reference, points: np.ndarray) -> dict:
    """Both orientations of the points a default fit uses, against the reference surface and each other."""
    pts, plain = prepare_points(points, config=dataclasses.replace(DGPConfig(), thin_parts=False))[:2]
    truth = _truth(reference, pts)
    thin = estimate_normals(pts, thin_parts=True)
    disagree = orientation_disagreement(plain, thin)
    return {"points": len(pts), "plain_facing": 1 - orientation_disagreement(plain, truth),
            "thin_facing": 1 - orientation_disagreement(thin, truth),
            "disagree": disagree, "auto": "thin-part" if disagree > THIN_PART_SWITCH else "plain"}


def _truth(reference, points: np.ndarray) -> np.ndarray:
    """The reference normal at the nearest of 200,000 reference samples (or of the kitten's own points)."""
    if isinstance(reference, tuple):
        ref_pts, ref_nrm = reference
    else:
        ref_pts, ref_nrm = sample_surface(reference, 200_000, seed=np.random.default_rng(1))
    return ref_nrm[cKDTree(ref_pts).query(points, workers=-1)[1]]


def dense(shape: str, points: int) -> dict:
    """Plain normals of one 0.5 % scan from NORMAL_K neighbours and from as many as normal_neighbours gives."""
    reference, noisy = make_scan(shape, 0.005, "", points)
    truth = _truth(reference, noisy)
    k = normal_neighbours(noisy)  # at the default patch radius
    row = {"scan": f"{shape} 0.5% plain", "points": points, "neighbours": k}
    for name, kk in (("fixed", NORMAL_K), ("adapted", k)):
        n = estimate_normals(noisy, k=kk)
        row[f"{name}_cos"] = float(np.abs(np.einsum("ij,ij->i", n, truth)).mean())
        row[f"{name}_facing"] = 1 - orientation_disagreement(n, truth)
    return row


def scans(points: int, quick: bool):
    """(label, reference, noisy points) of the study."""
    if quick:
        reference, noisy = make_scan("sphere", 0.005, "", points)
        yield "sphere 0.5% plain seed 0", reference, noisy
        return
    for shape in ("bunny00", "fandisk", "kitten", "sphere", "torus", "plate"):
        if shape == "kitten" and not (SHAPES / "kitten.xyz").exists():
            continue
        for noise, variant in [(n, "") for n in (0.0025, 0.005, 0.01)] + [(0.005, v) for v in VARIANTS]:
            reference, noisy = make_scan(shape, noise, variant, points)
            yield f"{shape} {noise * 100:g}% {variant or 'plain'} seed 0", reference, noisy
    plate = _mesh("plate")
    for noise in PLATE_NOISE:
        for seed in PLATE_SEEDS:
            yield f"plate {noise * 100:g}% plain seed {seed}", plate, noisy_scan(plate, points, noise, seed)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=20_000)
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--dense", type=int, nargs="*", default=[20_000, 80_000, 320_000],
                   help="point counts of the bunny for the table of normals against density")
    p.add_argument("--quick", action="store_true", help="one 2,000-point sphere scan: checks that it runs")
    args = p.parse_args(argv)
    if args.quick:
        args.points, args.dense = 2000, [2000]
    rows = []
    lines = ["| scan | points | plain: facing right | thin-part: facing right | disagree | auto takes |",
             "|---|---|---|---|---|---|"]
    for label, reference, noisy in scans(args.points, args.quick):
        t = time.perf_counter()
        row = {"scan": label, **study(reference, noisy)}
        rows.append(row)
        lines.append(f"| {label} | {row['points']} | {row['plain_facing']:.3f} | {row['thin_facing']:.3f} | "
                     f"{100 * row['disagree']:.1f}% | {row['auto']} |")
        print(lines[-1], f"({time.perf_counter() - t:.0f} s)", flush=True)
    conventions = ("Facing right: the share of the estimated normals that face the way the reference surface's "
                   "normal at the nearest of 200,000 reference samples faces, up to one global flip (0.5: half of "
                   "the surface turned). Disagree: the share on which the two estimates face opposite ways, up to "
                   f"one global flip; \"auto\" takes the thin-part estimate above {100 * THIN_PART_SWITCH:g}%. "
                   "Points: those a default fit uses (outliers dropped). Scans as in bench_surfaces.py.")
    dense_rows, dense_lines = [], [
        f"| scan | points | neighbours | mean abs cos, {NORMAL_K} | mean abs cos, adapted | facing right, {NORMAL_K} | "
        "facing right, adapted |", "|---|---|---|---|---|---|---|"]
    for n in args.dense:
        row = dense("sphere" if args.quick else "bunny00", n)
        dense_rows.append(row)
        dense_lines.append(f"| {row['scan']} | {n} | {row['neighbours']} | {row['fixed_cos']:.3f} | "
                           f"{row['adapted_cos']:.3f} | {row['fixed_facing']:.3f} | {row['adapted_facing']:.3f} |")
        print(dense_lines[-1], flush=True)
    dense_conventions = (
        f"Plain normals (no outlier filter, no thin-part estimate) of the whole scan from {NORMAL_K} neighbours and "
        "from geomprior.normals.normal_neighbours' count (neighbours: the median number of points within "
        f"{NORMAL_REACH:g} patch radii, at least {NORMAL_K}); mean abs cos: to the reference normal at the nearest of 200,000 reference "
        "samples; facing right as above. Scans as in bench_surfaces.py (its scaling suite).")
    text = "\n".join([header("Normal orientation: plain against thin-part estimate", conventions, __file__, argv),
                      *lines, "",
                      header("Normal estimate: neighbours against density", dense_conventions, __file__, argv),
                      *dense_lines, ""])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    write_json(str(out / f"normals_study{suffix}.json"), {"scans": rows, "dense": dense_rows})
    (out / f"normals_study{suffix}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
