"""How many of a scan's uniform outliers the outlier filter keeps, by shape and scan size: a study behind the 2 %
outlier rows of scripts/bench_surfaces.py.

Each scan is that script's outlier variant (points on a shape's surface at 0.5 % noise of the diagonal, plus 2 % as
many uniform in the bounding box padded by 5 %), at the sizes below. It goes through what ``reconstruct`` does
before a fit with the default preset: the layout sets far clusters aside, and ``geomprior.scan.find_inliers``
judges the rest at the preset's patch reach. Counted: the outliers kept, those of them farther than 4 and 8 noise σ
from every surface point (closer ones lie in the noise), the surface points dropped, and the filter's seconds; once
for the filter as it is and once without its tests against the surface (``curved=0, fewer=inf``: a point with
``min_points`` neighbours within reach stays, one with fewer where it is as sparse as its neighbours and flat).

    python scripts/outlier_study.py [--cases shape:points ...] [--out benchmarks/] [--quick]

Writes outlier_study.json and outlier_study.md in --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _bench import header
from bench_surfaces import _config, make_scan
from scipy.spatial import cKDTree

from geomprior.dgp import fit_config, scan_layout
from geomprior.io import write_json
from geomprior.scan import find_inliers

NOISE = 0.005
CASES = ("bunny00:20000", "fandisk:20000", "kitten:5210", "sphere:20000", "torus:20000", "diplodocus:20000",
         "mannequin-devil:20000", "camel:20000", "dino:20000", "bunny00:50000", "camel:100000", "bunny00:200000",
         "bunny00:500000")
FILTERS = {"counts": {"curved": 0, "fewer": np.inf}, "filter": {}}


def case_row(shape: str, n_points: int) -> dict:
    """One scan: per filter of FILTERS, the outliers kept (all, beyond 4 σ, beyond 8 σ), surface points dropped,
    seconds."""
    _, points = make_scan(shape, NOISE, "outliers", n_points)
    n_surface = int(round(len(points) / 1.02))  # make_scan appends round(0.02 x the surface points) outliers
    outlier = np.arange(len(points)) >= n_surface
    cfg = _config("default", {}, None)
    scan = scan_layout(points, cfg)
    cfg = fit_config(points, scan, cfg)
    pts, outlier = points[scan.kept] - scan.center, outlier[scan.kept]
    sigma = NOISE * scan.diagonal
    off = cKDTree(pts[~outlier]).query(pts[outlier], workers=-1)[0] / sigma
    row = {"shape": shape, "points": len(points), "outliers": int(outlier.sum()), "set_aside": int((~scan.kept).sum()),
           "beyond_4": int((off > 4).sum()), "beyond_8": int((off > 8).sum())}
    for name, kwargs in FILTERS.items():
        t = time.perf_counter()
        keep = find_inliers(pts, cfg.padding * cfg.radius * scan.diagonal, cfg.min_points, **kwargs)
        kept = keep[outlier]
        row[name] = {"kept": int(kept.sum()), "kept_beyond_4": int((kept & (off > 4)).sum()),
                     "kept_beyond_8": int((kept & (off > 8)).sum()), "surface_dropped": int((~keep[~outlier]).sum()),
                     "seconds": time.perf_counter() - t}
    return row


def table(rows: list[dict], argv) -> str:
    lines = [header("Outliers the filter keeps", (
        f"Scans of bench_surfaces.py's outlier variant ({100 * NOISE:g} % noise, 2 % uniform outliers), judged at "
        "the default preset's patch reach after the layout. Kept: outliers kept / those beyond 4 σ / beyond 8 σ of "
        "every surface point (σ: the noise); dropped: surface points dropped. 'counts': `find_inliers(..., "
        "curved=0, fewer=inf)`, the filter without the tests against the surface: a point with min_points "
        "neighbours within reach stays, one with fewer where it is as sparse as its neighbours and flat."),
        __file__, argv),
        "| shape | points | outliers (beyond 4 σ / 8 σ) | counts: kept | dropped | s | filter: kept | dropped | s |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['shape']} | {r['points']} | {r['outliers']} ({r['beyond_4']} / {r['beyond_8']})"]
        for name in FILTERS:
            f = r[name]
            cells.append(f"{f['kept']} / {f['kept_beyond_4']} / {f['kept_beyond_8']} | {f['surface_dropped']} | "
                         f"{f['seconds']:.1f}")
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), help="shape:points (kitten: its own 5,210 points)")
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--quick", action="store_true", help="a 2,000-point sphere: checks it runs")
    args = p.parse_args(argv)
    cases = ["sphere:2000"] if args.quick else args.cases
    rows = []
    for case in cases:
        shape, n = case.split(":")
        rows.append(case_row(shape, int(n)))
        print(f"{case}: kept {rows[-1]['filter']['kept']} of {rows[-1]['outliers']} outliers", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    write_json(str(out / f"outlier_study{suffix}.json"), {"noise": NOISE, "rows": rows})
    (out / f"outlier_study{suffix}.md").write_text(table(rows, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
