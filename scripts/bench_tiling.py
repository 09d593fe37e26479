"""Tiled against untiled reconstruction of a large noisy scan: Chamfer-L1 of each mesh to the true surface and their
relative difference, wall time, peak memory, and a headless render of the tiled mesh (to look for seams).

The scan is scripts/make_big_scan.py's terrain (binary PLY, no normals; noise 0.05% of the diagonal). Every
reconstruction runs as its own ``python -m geomprior reconstruct`` process, so that its time and peak memory
(the command's "peak memory" line: the process, and the largest Ray worker) are its own. The patch radius is
make_big_scan's ``suggested_radius`` for the point count unless ``--radius`` is given. Metrics as in
``geomprior eval`` (diagonal 1, ``--samples`` samples per surface).

    python scripts/bench_tiling.py                                   # 100k points: tiled (local) and untiled
    python scripts/bench_tiling.py --points 1000000 --executors local ray --no-untiled   # the large tiled runs
    python scripts/bench_tiling.py --points 1000000 --executors                         # the large untiled run
    python scripts/bench_tiling.py --points 1000000 --executors local ray --reuse       # one table of all three
    python scripts/bench_tiling.py --quick     # 3000 points, a few steps: checks that the script runs (a test does)

Options: --tile-size F (default 0.2 of the diagonal: 16 tiles of this terrain), --preset (default fast), --radius, --samples, --out DIR
(default benchmarks/tiling; the scan is made there once and reused), --no-render (else OUT/<run>.png of every mesh).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _bench import header
from _scans import REPO, machine
from make_big_scan import make, suggested_radius

from geomprior.io import read_mesh, write_json
from geomprior.metrics import evaluate


def reconstruct(scan: Path, out: Path, name: str, extra: list[str]) -> dict:
    """Run ``geomprior reconstruct`` in a process of its own; returns its time, peak memory and history."""
    mesh, history = out / f"{name}.ply", out / f"{name}.json"
    cmd = [sys.executable, "-m", "geomprior", "reconstruct", str(scan), "-o", str(mesh), "--history", str(history),
           *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_tiling: {name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    peaks = [float(x) for x in re.findall(r"([\d.]+) GiB", proc.stdout.split("peak memory:")[-1])]
    hist = json.loads(history.read_text())
    return {"run": name, "seconds": seconds, "peak_gib": max(peaks), "peak_driver_gib": peaks[0],
            "tiles": hist.get("tiles", 1), "retried": hist.get("retried", 0), "mesh": str(mesh),
            "summary": hist.get("summary", "")}


def earlier_runs(out: Path, settings: dict) -> dict[str, dict]:
    """Runs recorded in earlier tables (``bench_tiling_*.json`` under ``out``) with the same settings whose mesh
    still exists, by run name: their time, memory and mesh, marked ``reused`` (the metrics are computed again)."""
    found = {}
    for path in sorted(out.glob("bench_tiling_*.json")):
        table = json.loads(path.read_text())
        if all(table.get(k) == v for k, v in settings.items()):
            for r in table["rows"]:
                if Path(r["mesh"]).exists():
                    found[r["run"]] = {**{k: r[k] for k in ("run", "seconds", "peak_gib", "peak_driver_gib", "tiles",
                                                            "retried", "mesh", "summary")}, "reused": True}
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--executors", nargs="*", default=["local"], choices=["local", "ray"],
                        help="tiled runs, one per executor (none: only the untiled run)")
    parser.add_argument("--tile-size", type=float, default=0.2)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--radius", type=float)
    parser.add_argument("--samples", type=int, default=300_000)
    parser.add_argument("--no-untiled", action="store_true")
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--out", default="benchmarks/tiling")
    parser.add_argument("--reuse", action="store_true",
                        help="take a run's time, memory and mesh from an earlier table of the same settings when "
                             "its mesh is still there (e.g. tiled and untiled runs made separately, one table)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    extra = ["--preset", args.preset, "--device", "cpu"]
    if args.quick:
        args.points, args.tile_size, args.samples, args.radius = 3000, 0.3, 20_000, args.radius or 0.05
        extra += ["--max-epochs", "20"]
    radius = args.radius or suggested_radius(args.points)
    extra += ["--radius", str(radius)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scan = out / f"terrain_{args.points}.ply"
    if not scan.exists():
        make(out, args.points, resolution=150 if args.quick else 600)
    truth = read_mesh(out / "terrain_truth.ply")

    settings = {"points": args.points, "radius": radius, "tile_size": args.tile_size, "preset": args.preset}
    earlier = earlier_runs(out, settings) if args.reuse else {}
    rows = []
    for ex in args.executors:
        name = f"tiled_{args.points}_{ex}"
        if name in earlier:
            rows.append(earlier[name])
            continue
        run_dir = out / f"run_{args.points}_{ex}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: its time counts every tile
        rows.append(reconstruct(scan, out, name, [
            *extra, "--tile-size", str(args.tile_size), "--executor", ex, "--run-dir", str(run_dir)]))
    if not args.no_untiled:
        name = f"untiled_{args.points}"
        rows.append(earlier[name] if name in earlier else reconstruct(scan, out, name, extra))
    for r in rows:
        r.update(evaluate(read_mesh(r["mesh"]), truth, n_samples=args.samples))
    base = next((r for r in rows if r["tiles"] == 1), None)
    for r in rows:
        r["chamfer_vs_untiled"] = (r["chamfer_l1"] / base["chamfer_l1"] - 1) if base else None
    if not args.no_render:
        from geomprior.viz import render_png

        for r in rows:  # the untiled mesh too, to tell seams from the surface's own bumps
            mesh = read_mesh(r["mesh"])
            # the terrain's up (z) tilted toward the camera (which looks along -z, y up): an oblique view in which
            # shading shows any step or crease along tile borders
            mesh.rotate(mesh.get_rotation_matrix_from_xyz((-math.pi / 2.6, 0, 0)), center=mesh.get_center())
            r["render"] = str(out / f"{r['run']}.png")
            render_png(r["render"], mesh, width=1000, height=800, zoom=0.7)

    head = header(f"Tiled vs untiled, {args.points} points", (
        f"Terrain scan of {args.points} points (scripts/make_big_scan.py: noise 0.05% of the diagonal, no normals), "
        f"preset {args.preset}, radius {radius}, tile size {args.tile_size}; each run its own process; metrics as in "
        f"`geomprior eval` on {args.samples} samples per surface."
        + (" Runs marked * were timed by an earlier invocation with the same settings (`--reuse`)."
           if any(r.get("reused") for r in rows) else "")), __file__, argv)
    lines = [head,
             "| run | tiles | seconds | peak memory GiB (largest process) | Chamfer-L1 | vs untiled | Hausdorff | "
             "normal consistency | F-score@1% |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rel = "" if r["chamfer_vs_untiled"] is None or r["tiles"] == 1 else f"{100 * r['chamfer_vs_untiled']:+.1f}%"
        lines.append(f"| {r['run']}{'*' if r.get('reused') else ''} | {r['tiles']} | {r['seconds']:.0f} | {r['peak_gib']:.2f} | {r['chamfer_l1']:.6f} | "
                     f"{rel} | {r['hausdorff']:.5f} | {r['normal_consistency']:.4f} | {r['fscore']:.4f} |")
    text = "\n".join(lines)
    print(text)
    runs = [*args.executors, *([] if args.no_untiled else ["untiled"])]
    name = "bench_tiling_quick" if args.quick else f"bench_tiling_{args.points}_{'_'.join(runs)}"
    (out / f"{name}.md").write_text(text + "\n")
    write_json(out / f"{name}.json", {"machine": machine(), **settings, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
