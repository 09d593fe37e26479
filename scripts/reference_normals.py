"""What the kitten's reference normals measure: a study behind the kitten's normal-consistency row.

The kitten is the one shape of scripts/bench_surfaces.py without a reference surface: kitten.xyz holds 5,210 points
and a normal per point, and both the scan (those points plus noise) and the reference (those points and normals)
come from it. The first table compares the file's normals with the k-nearest-neighbour PCA normals of its own
points (open3d's estimate_normals) for several k; the k that matches best is the estimate the file carries.

The second table asks whether such a reference ranks the methods as their surfaces do. On shapes with a reference
surface it builds kitten-like scans (as many clean points as the kitten has, sampled on the surface, 0.5 % noise of
the diagonal) and scores the default preset and the peers three ways: against the surface (as bench_surfaces.py
does), against the clean points with their true normals, and against the clean points with the PCA normals of
that best k (as the kitten is scored). The peers' MLS scale is chosen per scan by Chamfer-L1 against the surface,
in their favour, as in bench_surfaces.py.

The third table asks where the kitten's normal consistency goes at 0.5 % noise: the preset's mesh stage fed with the
fit's points (the preset as it runs), with the clean points and the file's normals (what the mesh stage alone
loses), and with the noisy points and their estimated normals (what the fit gains), APSS at its best scale beside
them; and how much of the fit's error is the noise's own (its correlation between two fit seeds).

    python scripts/reference_normals.py [--shapes ...] [--out benchmarks/] [--quick]

Writes reference_normals.json and reference_normals.md in --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _bench import header
from bench_surfaces import (DETAILED, MLS_SCALES, SHAPES, _config, _mesh, _mesh_stage, _reconstruct,
                           make_scan)

from geomprior.io import read_points, write_json
from geomprior.metrics import evaluate, sample_surface

K_GRID = (4, 5, 6, 7, 8, 12, 16, 24)
NOISE = 0.005
PEERS = ("poisson9", "apss", "rimls")
REFERENCES = ("surface", "points, true normals", "points, PCA normals")


def pca_normals(points: np.ndarray, k: int) -> np.ndarray:
    """Unit normals (N, 3) of points (N, 3) from the PCA of each point's k nearest points (itself included)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=k))
    return np.asarray(cloud.normals)


def kitten_normals() -> tuple[list[dict], int, int]:
    """Per k of K_GRID the file's normals against PCA normals (1 - |cos|); the best k; the kitten's point count."""
    points, normals = read_points(str(SHAPES / "kitten.xyz"))
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    rows = []
    for k in K_GRID:
        off = 1 - np.abs(np.einsum("ij,ij->i", pca_normals(points, k), normals))
        rows.append({"k": k, "mean": float(off.mean()), "median": float(np.median(off)),
                     "share_within_1e-4": float((off < 1e-4).mean())})
    return rows, min(rows, key=lambda r: r["mean"])["k"], len(points)


def _method_mesh(method: str, points: np.ndarray, surface, max_epochs: int | None, resolution: int):
    """A method's mesh and its MLS scale: a preset or Poisson as bench_surfaces.py runs them (scale None), an MLS
    peer on a ``resolution``³ grid at its best scale by Chamfer-L1 against the surface (20,000 samples)."""
    if method not in ("apss", "rimls"):
        return _reconstruct(method, points, _config(method, {}, max_epochs))[0], None
    from geomprior.baselines import meshlab_mls

    tried = [(meshlab_mls(points, kind=method, filter_scale=s, resolution=resolution), s) for s in MLS_SCALES]
    return min(tried, key=lambda m: evaluate(m[0], surface, n_samples=20_000)["chamfer_l1"])


def shape_rows(shape: str, n_points: int, k: int, samples: int, preset: str, max_epochs: int | None = None,
               resolution: int = 200) -> list[dict]:
    """The default preset and the peers on a kitten-like scan of ``shape``, under the three references."""
    surface = _mesh(shape)
    clean, true_normals = sample_surface(surface, n_points, seed=np.random.default_rng(7))
    diag = float(np.linalg.norm(np.ptp(np.asarray(surface.vertices), axis=0)))
    points = clean + np.random.default_rng(0).normal(scale=NOISE * diag, size=clean.shape)
    references = dict(zip(REFERENCES, (surface, (clean, true_normals), (clean, pca_normals(clean, k)))))
    rows = []
    for method in (preset, *PEERS):
        t = time.perf_counter()
        mesh, scale = _method_mesh(method, points, surface, max_epochs, resolution)
        row = {"shape": shape, "method": method, "filter_scale": scale, "seconds": time.perf_counter() - t}
        for name, ref in references.items():
            e = evaluate(mesh, ref, n_samples=samples)
            row[name] = {"chamfer_l1": e["chamfer_l1"], "normal_consistency": e["normal_consistency"]}
        rows.append(row)
    return rows


def gaps(rows: list[dict], preset: str) -> list[dict]:
    """Per shape: the preset's normal consistency minus the best peer's, under each reference."""
    out = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        mine = {r["method"]: r for r in rows if r["shape"] == shape}
        ours, peers = mine.pop(preset), mine.values()
        row = {"shape": shape}
        for ref in REFERENCES:
            best = max(peers, key=lambda r: r[ref]["normal_consistency"])
            row[ref] = {"gap": ours[ref]["normal_consistency"] - best[ref]["normal_consistency"],
                        "best_peer": best["method"]}
        out.append(row)
    return out


def kitten_budget(preset: str, samples: int, max_epochs: int | None = None, resolution: int = 200) -> dict:
    """The third table's rows (see the module docstring) and the fit's error correlation between seeds 0 and 1.
    A row's offset: the RMS of its meshed points' offsets from their clean points along the file's normals, as a
    share of the diagonal (none for APSS, which meshes no points of its own)."""
    from geomprior.dgp import finish, fit_config, fit_dense, mesh_points, scan_layout

    reference, points = make_scan("kitten", NOISE, "", 0)
    clean, normals = reference
    diag = float(np.linalg.norm(np.ptp(clean, axis=0)))
    cfg = _config(preset, {}, max_epochs)
    scan = scan_layout(points, cfg)
    cfg = fit_config(points, scan, cfg)
    kept = np.flatnonzero(scan.kept)
    fits = [fit_dense(points[kept] - scan.center, None, cfg, device="cpu", seed=s, diagonal=scan.diagonal)
            for s in (0, 1)]
    used = kept[fits[0].inliers]
    unit = normals[used] / np.linalg.norm(normals[used], axis=1, keepdims=True)

    def offset(p):  # (M, 3) about the scan's centre, one per used point
        return np.einsum("ij,ij->i", p + scan.center - clean[used], unit) / diag

    fitted = [mesh_points(f, cfg) for f in fits]
    errors = [offset(p) for p, _ in fitted]
    radius = fits[0].patches.radius
    meshed = {  # name: (mesh, offsets of the meshed points)
        f"the fit's points ({preset})": (finish(*fitted[0], scan, cfg, radius, points, dense=fits[0].points)[0],
                                         errors[0]),
        "the clean points, the file's normals": (finish(clean[used] - scan.center, unit, scan, cfg, radius,
                                                        points)[0], np.zeros(len(used))),
        "the noisy points, their estimated normals": (_mesh_stage(points, cfg), offset(points[used] - scan.center))}
    rows = [{"points": name, "offset_rms": float(np.sqrt(np.mean(e**2))), **evaluate(m, reference, n_samples=samples)}
            for name, (m, e) in meshed.items()]
    mesh, scale = _method_mesh("apss", points, reference, None, resolution)
    rows.append({"points": f"APSS (scale {scale:g})", "offset_rms": None,
                 **evaluate(mesh, reference, n_samples=samples)})
    return {"rows": rows, "radius": cfg.radius, "seed_correlation": float(np.corrcoef(*errors)[0, 1])}


def _method(r: dict) -> str:
    return r["method"] if r["filter_scale"] is None else f"{r['method']} (scale {r['filter_scale']:g})"


def tables(kitten: list[dict], k: int, n_points: int, rows: list[dict], gap_rows: list[dict], preset: str,
           argv, budget: dict) -> str:
    """The study's markdown: the kitten's normals, the scores per reference, the gaps."""
    lines = [header("The kitten's reference normals", (
        "1 - |cos| between kitten.xyz's normals and the k-nearest-neighbour PCA normals of its own points (open3d "
        f"estimate_normals, the point itself among the k). Best: k = {k}."), __file__, argv),
        "| k | mean 1 - abs cos | median | share below 1e-4 |", "|---|---|---|---|",
        *(f"| {r['k']} | {r['mean']:.5f} | {r['median']:.2e} | {r['share_within_1e-4']:.2f} |" for r in kitten), ""]
    lines += [header("Kitten-like references on shapes with a surface", (
        f"{n_points} clean points on each surface (as many as the kitten has), {100 * NOISE:g} % noise of the "
        f"diagonal. Chamfer-L1 against the surface; normal consistency (NC) against the surface, against the "
        f"clean points with their true normals, and against the clean points with their {k}-NN PCA normals (how "
        f"the kitten is scored). The MLS peers at their best scale of {', '.join(f'{s:g}' for s in MLS_SCALES)} "
        "by Chamfer-L1 against the surface."), __file__, argv),
        "| shape | method | Chamfer-L1 | NC: surface | NC: points, true normals | NC: points, PCA normals |",
        "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {_method(r)} | {r['surface']['chamfer_l1']:.6f} | "
                     + " | ".join(f"{r[ref]['normal_consistency']:.4f}" for ref in REFERENCES) + " |")
    lines += ["", f"NC of the {preset} preset minus the best peer's (which peer in brackets), per reference:", "",
              "| shape | surface | points, true normals | points, PCA normals |", "|---|---|---|---|"]
    for g in gap_rows:
        lines.append(f"| {g['shape']} | " + " | ".join(
            f"{g[ref]['gap']:+.4f} ({g[ref]['best_peer']})" for ref in REFERENCES) + " |")
    lines += ["", header("Where the kitten's normal consistency goes", (
        f"The kitten at {100 * NOISE:g} % noise (patch radius {budget['radius']:.3g} of the extent). The {preset} "
        "preset's mesh stage fed with three point sets; APSS at its best scale by Chamfer-L1. Offset: the RMS of the "
        "meshed points' offsets from their clean points along the file's normals, share of the diagonal. The fit's "
        f"offsets under fit seeds 0 and 1 correlate by {budget['seed_correlation']:.2f}: that share of its error "
        "follows this noise, not the seed."), __file__, argv),
        "| points meshed | offset RMS | Chamfer-L1 | NC |", "|---|---|---|---|",
        *(f"| {r['points']} | {'-' if r['offset_rms'] is None else format(r['offset_rms'], '.5f')} | "
          f"{r['chamfer_l1']:.6f} | {r['normal_consistency']:.4f} |" for r in budget["rows"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=["bunny00", "fandisk", *DETAILED])
    p.add_argument("--samples", type=int, default=100_000, help="surface samples of each evaluation")
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--quick", action="store_true", help="a 1,000-point sphere and a short fast fit: checks it runs")
    args = p.parse_args(argv)
    kitten, k, n_points = kitten_normals()
    preset, max_epochs, resolution = ("fast", 30, 40) if args.quick else ("default", None, 200)
    if args.quick:
        args.shapes, n_points, args.samples = ["sphere"], 1000, 5000
    rows = []
    for shape in args.shapes:
        t = time.perf_counter()
        rows += shape_rows(shape, n_points, k, args.samples, preset, max_epochs, resolution)
        print(f"{shape}: {time.perf_counter() - t:.0f} s", flush=True)
    gap_rows = gaps(rows, preset)
    t = time.perf_counter()
    budget = kitten_budget(preset, args.samples, max_epochs, resolution)
    print(f"kitten budget: {time.perf_counter() - t:.0f} s", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    write_json(str(out / f"reference_normals{suffix}.json"),
               {"kitten": kitten, "k": k, "points": n_points, "rows": rows, "gaps": gap_rows, "budget": budget})
    text = tables(kitten, k, n_points, rows, gap_rows, preset, argv, budget)
    (out / f"reference_normals{suffix}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
