"""Scans as they come: stray points, meshes a user would keep, and real scans without a reference (issue 28).

Suites (``--suite``, default all three):

- ``strays``: bunny00, fandisk and diplodocus (20,000 points, 0.5 % noise, seed 0) as they are; with 120 stray points
  in 4 clusters of 30 (σ 1 % of the diagonal; 0.15 % of the points a cluster, whatever the scan's size) centred 2 to
  4 diagonals from the object ("strays"); with 1 % of the
  points uniform in a box 3× the object's size about its centre ("box"). The default preset against open3d Screened
  Poisson at depth 9 (normals estimated and oriented by open3d, 2 % lowest-density vertices trimmed).
- ``closed``: bunny00, fandisk, diplodocus and camel at 0.5 %: what a user opening the default preset's mesh sees
  (components, edge-manifoldness, watertightness, Euler characteristic against the true mesh's), and its Chamfer-L1
  beside that of the former output of the same fit: open3d's Poisson mesh of the dense points as it comes, trimmed
  (``mesh.mesh_surface(..., manifold=False)``, what geomprior wrote before). Also from the same fit: the manifold
  mesh of its dense uv-grid points instead of its fitted points (``DGPConfig.mesh_points``); and the scan's
  samples before the noise with the true normals, meshed the same way (the topology the sampling allows).
- ``real``: the scans in ../shared/data/scans (CGAL demo data, no reference): the ground-truth-free report
  (``metrics.scan_quality``: coverage, invented surface, topology) for the default preset and Screened Poisson d9,
  and a picture of each (the points the fit kept | geomprior's mesh | Poisson's mesh).

Rows run in this process, one after another, and are cached under ``--out`` (``--reuse`` skips rows computed with
the same settings and DGPConfig); the Markdown fragment is assembled into BENCHMARKS.md by make_benchmarks.py.

    python scripts/bench_scans.py [--suite strays closed real] [--stray-shapes ...] [--closed-shapes ...]
                                  [--real ...] [--out benchmarks/bench_scans] [--reuse]
    python scripts/bench_scans.py --quick     # a 2,000-point sphere, capped epochs: checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
from _bench import RowCache, header
from _scans import REPO

from geomprior.io import write_json

SCANS = REPO.parent / "shared" / "data" / "scans"
STRAY_SHAPES = ("bunny00", "fandisk", "diplodocus")
CLOSED_SHAPES = ("bunny00", "fandisk", "diplodocus", "camel")
REAL = ("poste_france.xyz", "radar.xyz", "hippo1.ply")
VARIANTS = ("", "strays", "box")
METHODS = ("default", "poisson9")
# the closed suite also meshes the noise-free samples of the same scan with the true normals: the topology this
# sampling allows
ORACLE = "oracle"
# where the camera of a real scan's picture looks from, and the screen's up (poste_france: a sheet facing (0.7, 0, 0.7))
VIEWS = {"poste_france.xyz": ((0.6, 0.1, 0.8), (0.0, 1.0, 0.0)), "radar.xyz": ((0.35, 0.3, 0.9), (0, 1, 0)),
         "hippo1.ply": ((0.2, 0.45, 0.9), (0.0, 1.0, 0.0))}

FORMER_TRIM = 0.5  # the former output ended this many patch radii beyond the dense points (DGPConfig.trim then)
NOISE = 0.005  # the synthetic scans' noise σ, a share of the bounding-box diagonal
FACING = 0.9  # two samples face each other across a gap when both normals lie within 25° of the line joining them


def make_scan(shape: str, variant: str, n_points: int = 20_000, noise: float = NOISE, seed: int = 0):
    """(true mesh, points (N, 3)): ``_scans.scan``'s noisy scan, with stray clusters or a box of stray points."""
    from _scans import scan

    mesh, points = scan(shape, n_points=n_points, noise=noise, seed=seed)
    v = np.asarray(mesh.vertices)
    lo, hi = v.min(0), v.max(0)
    centre, diag = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
    rng = np.random.default_rng(seed + 1)
    if variant == "strays":
        way = rng.normal(size=(4, 3))
        way /= np.linalg.norm(way, axis=1, keepdims=True)
        centres = centre + way * diag * rng.uniform(2, 4, size=(4, 1))
        size = max(1, round(30 * n_points / 20_000))  # 30 a cluster in a 20,000-point scan
        points = np.concatenate([points, *(c + rng.normal(scale=0.01 * diag, size=(size, 3)) for c in centres)])
    elif variant == "box":
        points = np.concatenate([points, centre + rng.uniform(-1.5, 1.5, size=(len(points) // 100, 3)) * (hi - lo)])
    return mesh, points


def _config(max_epochs: int | None):
    from geomprior.dgp import DGPConfig

    cfg = DGPConfig()
    if max_epochs is not None:
        cfg = dataclasses.replace(cfg, max_epochs=max_epochs, min_epochs=0, consistency_epochs=5)
    return cfg


def _row(job: dict, args) -> dict:
    """Reconstruct one scan with one method and measure it."""
    from geomprior.baselines import screened_poisson
    from geomprior.dgp import finish, reconstruct, scan_layout
    from geomprior.io import read_points
    from geomprior.mesh import mesh_surface
    from geomprior.metrics import evaluate, mesh_facts, scan_quality
    from geomprior.scan import spacing

    if job["suite"] == "real":
        reference, (points, normals) = None, read_points(SCANS / job["shape"])
    else:
        reference, points = make_scan(job["shape"], job["variant"], args.points)
        normals = None
    start = time.perf_counter()
    row = {**job, "n_input": len(points)}
    if job["method"] == ORACLE:
        mesh = _oracle_mesh(reference, args.points)
        row["seconds"] = time.perf_counter() - start
        quality = scan_quality(mesh, points, spacing=spacing(points))
    elif job["method"] == "default":
        cfg = _config(args.max_epochs)
        rec = reconstruct(points, normals, config=cfg, device="cpu", seed=0)
        mesh, quality = rec.mesh, rec.history["quality"]
        row.update(seconds=time.perf_counter() - start, set_aside=quality["set_aside"],
                   closed=[m["closed"] for m in rec.history["mesh"]], summary=rec.summary, config=rec.history["config"])
        if reference is not None:  # other meshes of the same fit: the former output, the dense points' mesh
            radius, scan = rec.patches.radius, scan_layout(points, cfg)
            former, _ = mesh_surface(rec.points, rec.normals, depth=cfg.poisson_depth,
                                     max_distance=FORMER_TRIM * radius, manifold=False)
            dense_cfg = dataclasses.replace(cfg, mesh_points="dense")
            dense, _, _ = finish(rec.points - scan.center, rec.normals, scan, dense_cfg, radius, points)
            row["former"] = {**evaluate(former, reference, n_samples=args.samples), **mesh_facts(former)}
            row["dense"] = {**evaluate(dense, reference, n_samples=args.samples), **mesh_facts(dense)}
    else:
        mesh = screened_poisson(points, depth=9)
        row["seconds"] = time.perf_counter() - start
        quality = scan_quality(mesh, points, spacing=spacing(points))
    row.update(quality=quality, triangles=len(mesh.triangles), threads=_threads(), load=os.getloadavg()[0])
    if reference is not None:
        row.update(evaluate(mesh, reference, n_samples=args.samples), true_euler=mesh_facts(reference)["euler"])
    else:
        row["mesh"] = mesh  # for the picture; not cached
    return row


def _oracle_mesh(reference, n_points: int, seed: int = 0):
    """The default meshing (closed, default Poisson depth) of the scan's samples before the noise, with the true
    normals: what the sampling itself allows (a gap narrower than the samples' spacing closes even here)."""
    from geomprior.dgp import DGPConfig
    from geomprior.mesh import mesh_surface
    from geomprior.metrics import sample_surface
    from geomprior.patches import bbox_diagonal

    cfg = DGPConfig()
    points, normals = sample_surface(reference, n_points, seed=np.random.default_rng(seed))  # as noisy_scan draws
    radius = cfg.radius * bbox_diagonal(points)  # the patch radius: pieces smaller than its disc go, as in a fit
    return mesh_surface(points, normals, depth=cfg.poisson_depth, closed=True, min_area=np.pi * radius**2)[0]


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _jobs(args) -> list[dict]:
    scans = []  # (shape, variant)
    for shape in dict.fromkeys(args.stray_shapes + args.closed_shapes):
        if shape in args.closed_shapes or shape in args.stray_shapes and "strays" in args.suite:
            scans.append((shape, ""))
        if shape in args.stray_shapes and "strays" in args.suite:
            scans += [(shape, "strays"), (shape, "box")]
    jobs = [{"suite": "synthetic", "shape": s, "variant": v, "method": m} for s, v in scans for m in METHODS]
    jobs += [{"suite": "synthetic", "shape": s, "variant": "", "method": ORACLE} for s in args.closed_shapes]
    jobs += [{"suite": "real", "shape": s, "variant": "", "method": m} for s in args.real for m in METHODS]
    for job in jobs:
        job["key"] = "-".join([job["shape"], job["variant"] or "plain", job["method"]])
    return jobs


def _fmt(v, spec=".6f") -> str:
    return "-" if v is None else format(v, spec)


def strays_table(rows: list[dict]) -> list[str]:
    by = {(r["shape"], r["variant"], r["method"]): r for r in rows if r["suite"] == "synthetic"}
    lines = ["| shape | scan | method | points | set aside | Chamfer-L1 | vs plain | Hausdorff | normal cons. | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for shape in dict.fromkeys(r["shape"] for r in by.values()):
        if not any((shape, v, "default") in by for v in ("strays", "box")):
            continue
        for variant in VARIANTS:
            for method in METHODS:
                r = by.get((shape, variant, method))
                if r is None:
                    continue
                plain = by.get((shape, "", method))
                ratio = r["chamfer_l1"] / plain["chamfer_l1"] if plain else None
                lines.append(f"| {shape} | {variant or 'plain'} | {method} | {r['n_input']} | "
                             f"{r.get('set_aside', '-')} | {r['chamfer_l1']:.6f} | "
                             f"{'-' if ratio is None or not variant else f'{ratio:.2f}×'} | {r['hausdorff']:.5f} | "
                             f"{r['normal_consistency']:.4f} | {r['seconds']:.1f} |")
                if method == "default" and variant and ratio is not None:
                    verdicts.append(f"{shape} {variant}: {ratio:.3f}× {'PASS' if ratio <= 1.10 else 'FAIL'}")
    return lines + ["", "Default preset with stray points, Chamfer-L1 against the same scan without them (criterion: "
                        "at most 1.10×): " + ("; ".join(verdicts) or "not measured") + "."]


def narrow_gaps(mesh, within: float, samples: int = 100_000) -> list[float]:
    """Where a closed, consistently oriented mesh's parts face each other across air closer than ``within`` (a
    share of its bounding-box diagonal; two legs at the knees, a tail against a thigh): the narrowest gap of each
    such place (places: the gaps' samples linked within 5 ``within`` of each other), narrowest first, as shares of
    the diagonal. A gap: two surface samples whose outward normals both face along the line joining them."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from geomprior.metrics import sample_surface

    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    diag = float(np.linalg.norm(np.ptp(v, axis=0)))
    points, normals = sample_surface(mesh, samples, seed=0)
    if np.einsum("ij,ij->", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])) < 0:  # wound inward: turn them out
        normals = -normals
    pairs = cKDTree(points).query_pairs(within * diag, output_type="ndarray")
    step = points[pairs[:, 1]] - points[pairs[:, 0]]
    length = np.linalg.norm(step, axis=1)
    way = step / length[:, None].clip(1e-12)
    facing = ((np.einsum("ij,ij->i", normals[pairs[:, 0]], way) > FACING)
              & (np.einsum("ij,ij->i", normals[pairs[:, 1]], -way) > FACING))
    pairs, length = pairs[facing], length[facing] / diag
    if not len(pairs):
        return []
    near = cKDTree(points[pairs[:, 0]]).query_pairs(5 * within * diag, output_type="ndarray")
    graph = coo_matrix((np.ones(len(near)), (near[:, 0], near[:, 1])), shape=(len(pairs),) * 2)
    _, place = connected_components(graph, directed=False)
    return sorted(float(length[place == p].min()) for p in np.unique(place))


def closed_table(rows: list[dict], gaps: dict[str, list[float]] | None = None) -> list[str]:
    lines = ["| shape | mesh | components | edge-manifold | watertight | Euler (true) | Chamfer-L1 | normal cons. | "
             "verdict |", "|---|---|---|---|---|---|---|---|---|"]
    by = {(r["shape"], r["method"]): r for r in rows if r["suite"] == "synthetic" and not r["variant"]}
    for shape in dict.fromkeys(shape for shape, _ in by):
        r = by.get((shape, "default"))
        if r is None or "former" not in r:
            continue
        f, q = r["former"], r["quality"]  # the former output of the same fit: the yardstick
        ok = (q["components"] == 1 and q["edge_manifold"] and q["watertight"] and q["euler"] == r["true_euler"]
              and r["chamfer_l1"] <= 1.02 * f["chamfer_l1"])
        lines.append(f"| {shape} | default | {q['components']} | {_yes(q['edge_manifold'])} | "
                     f"{_yes(q['watertight'])} | {q['euler']} ({r['true_euler']}) | {r['chamfer_l1']:.6f} "
                     f"({100 * (r['chamfer_l1'] / f['chamfer_l1'] - 1):+.1f} %) | {r['normal_consistency']:.4f} | "
                     f"{'PASS' if ok else 'FAIL'} |")
        others = [("dense points instead of fitted", r.get("dense")), ("former (Poisson as it comes)", f)]
        if (shape, ORACLE) in by:
            o = by[(shape, ORACLE)]
            others.append(("noise-free samples, true normals", {**o, **o["quality"]}))
        for name, m in others:
            if m is not None:
                lines.append(f"| {shape} | {name} | {m['components']} | {_yes(m['edge_manifold'])} | "
                             f"{_yes(m['watertight'])} | {m['euler']} | {m['chamfer_l1']:.6f} | "
                             f"{m['normal_consistency']:.4f} | |")
    return lines + ["", "Verdict: one component, edge-manifold, watertight, the true mesh's Euler characteristic, and "
                        "Chamfer-L1 at most 2 % above the former output's (in brackets: the change). The other rows "
                        "of a shape: the same fit meshed from its dense uv-grid points (DGPConfig.mesh_points="
                        "'dense', the default before), and as geomprior wrote it before the manifold mesh; last, the "
                        "scan's samples before the noise, with the true normals, meshed the same way (closed, default "
                        "depth): the topology the sampling itself allows. Where that misses the true Euler "
                        "characteristic, some gap of the shape is narrower than the sampling resolves.", "",
                        "Where the true surface's parts face each other across less than the noise σ (0.5 % of the "
                        "diagonal), the noisy points of the two parts interleave and a mesh of them may join them: "
                        "such places per shape, and the narrowest gap of each in σ (`bench_scans.narrow_gaps`): "
                        + "; ".join(f"{shape} {len(g)}" + (f" ({', '.join(f'{x / NOISE:.2f}' for x in g)})" if g
                                                           else "") for shape, g in (gaps or {}).items()) + "."]


def real_table(rows: list[dict], pictures: dict[str, str]) -> list[str]:
    lines = ["| scan | points | method | set aside | coverage | invented | components | edge-manifold | "
             "watertight | s | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["suite"] != "real":
            continue
        q = r["quality"]
        ok = q["coverage"] >= 0.95 and q["invented"] <= 0.05
        lines.append(f"| {r['shape']} | {r['n_input']} | {r['method']} | {r.get('set_aside', '-')} | "
                     f"{q['coverage']:.3f} | {q['invented']:.3f} | {q['components']} | {_yes(q['edge_manifold'])} | "
                     f"{_yes(q['watertight'])} | {r['seconds']:.1f} | {'PASS' if ok else 'FAIL'} |")
    lines += ["", "Verdict: coverage at least 0.95 and invented surface at most 0.05. Pictures: the points the fit "
                  "kept | geomprior default | open3d Screened Poisson d9.", ""]
    lines += [f"![{name}](docs/benchmarks/{png})" for name, png in pictures.items()]
    return lines


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def picture(scan: str, meshes: list, out: Path) -> str:
    """PNG of a real scan: the points the default fit kept | geomprior's mesh | Poisson's mesh; returns its name."""
    import open3d as o3d
    from PIL import Image, ImageDraw

    from geomprior.dgp import DGPConfig, scan_layout
    from geomprior.io import read_points
    from geomprior.viz import render_png

    points, _ = read_points(SCANS / scan)
    kept = points[scan_layout(points, DGPConfig()).kept]
    front, up = VIEWS.get(scan, ((0.35, 0.3, 0.9), (0, 1, 0)))
    panels = []
    for i, geometry in enumerate([o3d.geometry.PointCloud(o3d.utility.Vector3dVector(kept)), *meshes]):
        path = out / f"_panel{i}.png"
        render_png(path, [geometry], width=480, height=400, front=front, up=up, zoom=0.6)
        panels.append(Image.open(path).convert("RGB"))
        path.unlink()
    sheet = Image.new("RGB", (480 * len(panels), 400), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (p, title) in enumerate(zip(panels, ("points kept", "geomprior (default)", "open3d Poisson d9"))):
        sheet.paste(p, (480 * i, 0))
        draw.text((480 * i + 12, 10), f"{Path(scan).name}: {title}" if i == 0 else title, fill=(60, 60, 60))
    name = f"scan_{Path(scan).stem}.png"
    sheet.save(out / name)
    return name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", nargs="+", default=["strays", "closed", "real"], choices=("strays", "closed", "real"))
    p.add_argument("--stray-shapes", nargs="*", default=list(STRAY_SHAPES), help="shapes of the strays suite")
    p.add_argument("--closed-shapes", nargs="*", default=list(CLOSED_SHAPES), help="shapes of the closed suite")
    p.add_argument("--real", nargs="+", default=list(REAL), help="scans of ../shared/data/scans")
    p.add_argument("--points", type=int, default=20_000)
    p.add_argument("--samples", type=int, default=100_000, help="surface samples per mesh for the metrics")
    p.add_argument("--max-epochs", type=int, default=None, help=argparse.SUPPRESS)  # --quick caps the fits
    p.add_argument("--out", default="benchmarks/bench_scans")
    p.add_argument("--reuse", action="store_true", help="skip rows already computed with the same settings")
    p.add_argument("--quick", action="store_true", help="a 2,000-point sphere, few epochs: checks that it runs")
    args = p.parse_args(argv)
    if "closed" not in args.suite:
        args.closed_shapes = []
    if "strays" not in args.suite:
        args.stray_shapes = []
    if "real" not in args.suite:
        args.real = []
    if args.quick:
        args.suite, args.stray_shapes, args.closed_shapes, args.real = ["strays", "closed"], ["sphere"], ["sphere"], []
        args.points, args.samples, args.max_epochs = 2000, 5000, 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"points": args.points, "samples": args.samples,
                "config": json.loads(json.dumps(dataclasses.asdict(_config(args.max_epochs))))}
    cache = RowCache(out / ("rows_quick" if args.quick else "rows"), settings)
    rows, pictures, meshes = [], {}, {}
    for job in _jobs(args):
        row = cache.get(job["key"]) if args.reuse and job["suite"] != "real" else None
        if row is None:
            row = _row(job, args)
            meshes[(row["shape"], row["method"])] = row.pop("mesh", None)
            cache.put(job["key"], row)
            print(f"{job['key']}: {row['seconds']:.1f} s, quality {row['quality']}", flush=True)
        rows.append(row)
    for scan in args.real:
        if all((scan, m) in meshes for m in METHODS):
            pictures[scan] = picture(scan, [meshes[(scan, m)] for m in METHODS], out)
        elif (out / f"scan_{Path(scan).stem}.png").exists():
            pictures[scan] = f"scan_{Path(scan).stem}.png"
    conventions = ("Scans of the shapes: 20,000 points sampled uniformly on the mesh, Gaussian noise 0.5 % of its "
                   "bounding-box diagonal, no normals, seed 0. Metrics as in geomprior.metrics (DESIGN.md §6): "
                   f"distances relative to the reference's diagonal, {args.samples:,} samples a surface. Without a "
                   "reference: coverage = share of the input points within 3 spacings of the mesh, invented = "
                   "share of the mesh's area farther than 6 spacings from every input point (spacing: median "
                   "distance to the 8th nearest neighbour). Time: the reconstruction alone, on the CPU "
                   f"({rows[0]['threads'] if rows else '-'} torch threads), one row at a time.")
    sections = [header("Scans as they come: stray points, meshes a user keeps, real scans", conventions, __file__,
                       argv)]
    if "strays" in args.suite:
        sections += ["#### Stray points", "", *strays_table(rows), ""]
    if "closed" in args.suite:
        gaps = {shape: narrow_gaps(make_scan(shape, "", args.points)[0], NOISE) for shape in args.closed_shapes}
        sections += ["#### Closed shapes: the mesh a user opens", "", *closed_table(rows, gaps), ""]
    if "real" in args.suite:
        sections += ["#### Real scans (no reference)", "", *real_table(rows, pictures), ""]
    text = "\n".join(sections)
    print(text)
    suffix = "_quick" if args.quick else ""
    write_json(str(out / f"bench_scans{suffix}.json"), {"rows": rows})
    (out / f"bench_scans{suffix}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
