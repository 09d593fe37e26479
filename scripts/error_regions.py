"""Where a reconstruction is off: the parts of its mesh far from the true surface, and the parts of the true surface
far from its mesh, grouped into regions. A diagnosis for the shapes a method loses on (which part, how much of it).

The scan and the method are those of bench_surfaces.py (``make_scan``; a geomprior preset or a Screened Poisson /
Ball Pivoting peer, run as its row runs). Both surfaces are sampled uniformly (area-weighted); a sample farther than
``--threshold`` of the reference's bounding-box diagonal from the other surface is off. Off samples closer than
``--link`` (a share of the diagonal) chain into one region. Each region's line: its share of its surface's area, its
share of the Chamfer-L1 mean, its centre and extent, and for mesh regions the mesh component it lies on.

    python scripts/error_regions.py dino [--noise 0.0025] [--variant outliers] [--method default] [--out DIR]
    python scripts/error_regions.py --quick     # 2,000 points of the torus, few epochs: checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _bench import header
from bench_surfaces import METHODS, SHAPE_NAMES, _config, _reconstruct, make_scan
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geomprior.io import write_json
from geomprior.metrics import point_to_mesh_distance


def off_regions(samples: np.ndarray, dist: np.ndarray, threshold: float, link: float) -> list[dict]:
    """Regions of the samples (S, 3) whose distance ``dist`` (S,) to the other surface exceeds ``threshold``:
    connected components of the off samples under ``link``; largest first. Each: "share" of all samples, "cost"
    (share of the summed distance), "center" and "size" (bounding-box extent), "index" (the samples' indices)."""
    off = np.flatnonzero(dist > threshold)
    if not len(off):
        return []
    pairs = cKDTree(samples[off]).query_pairs(link, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(off),) * 2)
    _, label = connected_components(graph, directed=False)
    regions = []
    for k in np.argsort(-np.bincount(label)):
        index = off[label == k]
        pts = samples[index]
        regions.append({"share": len(index) / len(samples), "cost": float(dist[index].sum() / dist.sum()),
                        "center": pts.mean(0).tolist(), "size": (pts.max(0) - pts.min(0)).tolist(),
                        "index": index})
    return regions


def diagnose(mesh, reference, *, threshold: float = 0.01, link: float = 0.02, n: int = 50_000, seed: int = 0
             ) -> dict:
    """Off regions of ``mesh`` (against ``reference``) and of ``reference`` (against ``mesh``), distances and sizes
    as shares of the reference's diagonal; mesh regions name the mesh component (largest first) they lie on."""
    import open3d as o3d

    v = np.asarray(reference.vertices)
    diag = float(np.linalg.norm(v.max(0) - v.min(0)))
    o3d.utility.random.seed(seed)
    tri = np.asarray(mesh.cluster_connected_triangles()[0])
    rank = np.argsort(np.argsort(-np.bincount(tri)))  # component ids, largest first
    out = {"components": len(rank)}
    for name, surf, other in (("mesh", mesh, reference), ("reference", reference, mesh)):
        pcd = surf.sample_points_uniformly(n)
        samples = np.asarray(pcd.points)
        dist = point_to_mesh_distance(samples, other) / diag
        regions = off_regions(samples / diag, dist, threshold, link)
        if name == "mesh" and regions:
            _, face = cKDTree(np.asarray(surf.vertices)[np.asarray(surf.triangles)].mean(1)).query(samples)
            for r in regions:
                r["component"] = int(np.bincount(rank[tri[face[r["index"]]]]).argmax())
        for r in regions:
            del r["index"]
        out[name] = {"chamfer_half": float(dist.mean()), "off_share": float((dist > threshold).mean()),
                     "regions": regions}
    return out


def _lines(res: dict, top: int) -> list[str]:
    lines = ["| surface | region | area share | share of its Chamfer half | centre (× diagonal) | extent "
             "| component |", "|---|---|---|---|---|---|---|"]
    for name in ("mesh", "reference"):
        part = res[name]
        lines.append(f"| {name} (mean distance {part['chamfer_half']:.6f}) | all off | {part['off_share']:.2%} | "
                     f"{sum(r['cost'] for r in part['regions']):.0%} | | | |")
        for i, r in enumerate(part["regions"][:top]):
            centre = ", ".join(f"{c:.2f}" for c in r["center"])
            size = " × ".join(f"{s:.2f}" for s in r["size"])
            lines.append(f"| {name} | {i + 1} | {r['share']:.2%} | {r['cost']:.0%} | {centre} | {size} | "
                         f"{r.get('component', '')} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shape", nargs="?", default="dino", choices=SHAPE_NAMES)
    p.add_argument("--noise", type=float, default=0.005)
    p.add_argument("--variant", default="", choices=("", "outliers", "nonuniform"))
    p.add_argument("--method", default="default", choices=[m for m in METHODS if m not in ("rimls", "apss")])
    p.add_argument("--threshold", type=float, default=0.01, help="off: farther than this share of the diagonal")
    p.add_argument("--link", type=float, default=0.02, help="off samples this close (share of the diagonal) chain")
    p.add_argument("--top", type=int, default=8, help="regions listed per surface")
    p.add_argument("--out", default=None, help="also write error_regions-<scan>.md/.json there")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    shape, n_points = ("torus", 2000) if args.quick else (args.shape, 20_000)
    reference, points = make_scan(shape, args.noise, args.variant, n_points)
    cfg = _config(args.method, {}, 10 if args.quick else None)
    mesh, _ = _reconstruct(args.method, points, cfg)
    res = diagnose(mesh, reference, threshold=args.threshold, link=args.link)
    scan = f"{shape}-{args.noise}" + (f"-{args.variant}" if args.variant else "")
    text = "\n".join([header(f"Where {args.method} is off on {scan}", (
        f"{n_points:,} points, {args.noise:.2%} noise{', ' + args.variant if args.variant else ''}; the mesh has "
        f"{res['components']} component(s). Off: farther than {args.threshold:.0%} of the diagonal from the other "
        f"surface; regions: off samples chained within {args.link:.0%} of the diagonal."), __file__, argv),
        *_lines(res, args.top)])
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(str(out / f"error_regions-{scan}.json"), res)
        (out / f"error_regions-{scan}.md").write_text(text + "\n")
    print(json.dumps({"mesh_off": res["mesh"]["off_share"], "reference_off": res["reference"]["off_share"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
