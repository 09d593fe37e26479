"""Surface reconstruction against the peers: quality, time and peak memory, and how the cost grows (issue 5).

Suites (``--suite``, default all three):

- ``matrix``: noisy scans of bunny00, fandisk (meshes), kitten (its 5,210 points; the clean points with their
  normals are the reference), synthetic sphere, torus and a thin plate (1 × 1 × 0.04 box), and the detail-rich
  diplodocus, mannequin-devil, camel, dino and blade (meshes; ``DETAILED``), at Gaussian noise
  0.25 %, 0.5 % and 1 % of the bounding-box diagonal; at 0.5 % also a variant with 2 % outliers (uniform in the
  bounding box) and one with strongly non-uniform density (the half x > median 10× sparser). Methods: geomprior
  presets fast / default / quality; the default's mesh stage without the fit ("nofit": on the scan's own points and
  normals; what the fit adds, not a peer); open3d Screened Poisson at depths 8 / 9 / 10 (normals estimated and
  oriented by open3d, 2 % lowest-density vertices trimmed), open3d Ball Pivoting (radii 1, 2, 4 × the mean point
  spacing), MeshLab's (pymeshlab) RIMLS and APSS (marching cubes, 200³; the same normals; filter scale 2, 4 or 8,
  the best per scan by Chamfer-L1: chosen in the peer's favour with the reference) and Screened Poisson at depth 9
  ("mlpoisson9", its mesh as it comes). After the table: the best per scan, the fit against its mesh stage alone,
  and geomprior's rows against the same rows committed at ``BASELINE`` (read with git).
- ``scaling``: geomprior fast and Poisson depth 9 on the bunny at 5k, 20k, 80k and 320k points: time and peak
  memory against the point count, log-log plot, fitted exponent.
- ``ablations``: the default preset against one change at a time on bunny00 and fandisk at 0.5 % noise (the
  outlier filter and the trimmed loss also on the 2 % outlier variant); the thin-part normals, the mesh stage and the
  trimmed loss also on the plate. The default also runs with
  fit seeds 1 and 2 (same scan, same settings): their spread is the yardstick for the other rows' differences; so
  does it on the unevenly sampled scan of the matrix, whose spread is wider. One row has no fit at all: the default's
  mesh stage on the scan's own points and normals, what the fit adds.

Every row runs in a fresh process, so its peak memory (ru_maxrss) is its own; its time covers the
reconstruction only (not making the scan, not evaluating). Metrics: geomprior.metrics.evaluate (DESIGN.md §6:
Chamfer-L1, Hausdorff, normal consistency, F-score@1 %, distances relative to the reference's diagonal, 100k
samples). Rows are cached under ``--out``; ``--reuse`` skips rows already computed with the same settings (for geomprior
rows: the same DGPConfig the code gives them now), so the tables can be built over several runs (select with
``--shapes``, ``--noise``, ``--methods``; the 0.5 % variants come with a ``--noise`` list that holds 0.005).

    python scripts/bench_surfaces.py [--suite matrix scaling ablations] [--shapes ...] [--noise 0.005 ...]
                                     [--methods ...] [--points 20000] [--out benchmarks/bench_surfaces] [--reuse]
    python scripts/bench_surfaces.py --quick     # tiny scans, one shape, capped epochs, rows in this process:
                                                 # checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _bench import RowCache, header
from _scans import SHAPES, machine

from geomprior.dgp import SCORE_TOLERANCE
from geomprior.presets import PRESETS
from geomprior.io import write_json

# detail-rich shapes (organic, fine detail; blade: CAD with thin parts), from CGAL's demo data as bunny00 and fandisk
DETAILED = ("diplodocus", "mannequin-devil", "camel", "dino", "blade")
SHAPE_NAMES = ("bunny00", "fandisk", "kitten", "sphere", "torus", "plate", *DETAILED)
NOISE = (0.0025, 0.005, 0.01)
VARIANTS = ("outliers", "nonuniform")  # at 0.5 % noise
PEERS = ("poisson8", "poisson9", "poisson10", "bpa", "rimls", "apss", "mlpoisson9")
# the default preset's mesh stage on the scan's own points and normals, no fit (_mesh_stage): what the fit adds
NO_FIT = "nofit"
METHODS = (*PRESETS, NO_FIT, *PEERS)
# MeshLab's MLS peers run at each of these filter scales (multiples of the local spacing); a row keeps the one with
# the lowest Chamfer-L1 against the reference: the scale chosen per scan in the peer's favour
MLS_SCALES = (2.0, 4.0, 8.0)
SCALING_POINTS = (5_000, 20_000, 80_000, 320_000)
TRANSPORT = {"val_score": "transport", "tolerance": SCORE_TOLERANCE["transport"]}  # the former score, its basin
ABLATIONS = {
    "default": {},
    "default, fit seed 1": {},  # the spread of the default over the fit's own randomness (FIT_SEED)
    "default, fit seed 2": {},
    "default, uneven sampling": {},  # the matrix's nonuniform scan, with its own spread over the fit's randomness
    "default, uneven sampling, fit seed 1": {},
    "default, uneven sampling, fit seed 2": {},
    "fixed 400 epochs (no early stop)": {"early_stop": "none", "max_epochs": 400},
    "fixed 150 epochs (no early stop)": {"early_stop": "none", "max_epochs": 150},
    "no consistency stage": {"consistency": False},
    "Sinkhorn-plan matching": {"matching": "sinkhorn"},
    "widths 32-32-32": {"widths": (32, 32, 32)},
    "widths 128-128-128": {"widths": (128, 128, 128)},
    "refresh every 5": {"refresh_every": 5},
    "refresh every 60": {"refresh_every": 60},
    "default, 2 % outliers": {},
    "outliers kept, 2 % outliers": {"drop_outliers": False},
    # the loss without the pairs matched beyond 3 × their patch's median distance (DGPConfig.loss_trim)
    "trimmed loss": {"loss_trim": 9.0},
    "trimmed loss, 2 % outliers": {"loss_trim": 9.0},
    "thin-part normals": {"thin_parts": True},
    "plain normals": {"thin_parts": False},
    "transport validation (the former score)": TRANSPORT,
    "surface score along each cell's own normal (the former)": {"val_normal_cells": 1},
    "the former surface score, fit seed 1": {"val_normal_cells": 1},  # its own spread over the fit's randomness
    "the former surface score, fit seed 2": {"val_normal_cells": 1},
    # what geomprior wrote before the manifold mesh (DGPConfig.surface) and the fitted points (mesh_points)
    "former mesh (Poisson as it comes)": {"surface": "poisson", "mesh_points": "dense"},
    "dense points instead of fitted": {"mesh_points": "dense"},
    "equal-weight consensus (the former)": {"blend": "mean"},  # fitted points: the plain mean of the patches
    "normals not turned outward": {"outward": False},
    "mesh not moved onto its points (fidelity 0)": {"fidelity": 0.0},  # DGPConfig.fidelity, follow_points
    "mesh not smoothed last (taubin 0)": {"taubin": 0},  # DGPConfig.taubin, taubin_smooth
    "no fit (the mesh stage on the scan's points)": {},  # method NO_FIT
    "float32 training steps": {"precision": "float32"},  # the default takes bfloat16 where the CPU computes it
    "former rate and refresh (1e-3, every 20 steps)": {"lr": 1e-3, "refresh_every": 20},
    "fast, 2 % outliers, 200,000 points": {},  # a dense scan's strays have neighbours enough within reach
    "default, 5,000 points": {},
    "transport validation, 5,000 points": TRANSPORT,
    "Sinkhorn-divergence loss, 5,000 points": {"loss": "sinkhorn"},  # what a CPU affords
    # last: for a GPU (--device cuda: 70-80 s a row with the fit on one H100); on the 2-core CPU one step over the
    # 20,000-point bunny's 249 patches of <= 382 points takes about a minute (3 s over the 5,000-point scan's 213
    # patches of <= 114 points): hours a scan
    "Sinkhorn-divergence loss": {"loss": "sinkhorn"},
}
# the default at fit seeds 0, 1, 2 on the plain and on the unevenly sampled scan (seed_spread)
SEEDS = {variant: (name, f"{name}, fit seed 1", f"{name}, fit seed 2")
         for variant, name in (("plain", "default"), ("nonuniform", "default, uneven sampling"))}
# the seed of an ablation's fit (held-out points, uv samples, weights); 0 for those not named
FIT_SEED = {**{n: i for names in SEEDS.values() for i, n in enumerate(names) if i},
            "the former surface score, fit seed 1": 1, "the former surface score, fit seed 2": 2}
# the ablations run by another method than the default (NO_FIT: the default's settings, no fit)
ABLATION_METHOD = {"no fit (the mesh stage on the scan's points)": NO_FIT, "fast, 2 % outliers, 200,000 points": "fast"}
# the ablations that also run on the thin plate
ON_PLATE = ("default", "default, fit seed 1", "default, fit seed 2", "thin-part normals", "plain normals",
            "surface score along each cell's own normal (the former)", "the former surface score, fit seed 1",
            "the former surface score, fit seed 2", "former mesh (Poisson as it comes)",
            "dense points instead of fitted", "mesh not moved onto its points (fidelity 0)",
            "no fit (the mesh stage on the scan's points)",
            "mesh not smoothed last (taubin 0)", "default, 2 % outliers", "trimmed loss", "trimmed loss, 2 % outliers")
ABLATION_VARIANT = {"default, 2 % outliers": "outliers", "outliers kept, 2 % outliers": "outliers",  # else plain
                    "trimmed loss, 2 % outliers": "outliers", "fast, 2 % outliers, 200,000 points": "outliers",
                    **dict.fromkeys(SEEDS["nonuniform"], "nonuniform")}
ABLATION_POINTS = {**{name: 5_000 for name in ABLATIONS if name.endswith(", 5,000 points")},  # else --points
                   "fast, 2 % outliers, 200,000 points": 200_000}


# --------------------------------------------------------------------------------------------------------------
# scans


def _mesh(shape: str):
    import open3d as o3d

    from geomprior.io import read_mesh
    from geomprior.synthetic import sphere_mesh, torus_mesh

    if shape in ("bunny00", "fandisk", *DETAILED):
        return read_mesh(SHAPES / f"{shape}.off")
    if shape == "sphere":
        return sphere_mesh(resolution=80)
    if shape == "torus":
        return torus_mesh(radial_resolution=120, tubular_resolution=60)
    if shape == "plate":
        box = o3d.geometry.TriangleMesh.create_box(1.0, 1.0, 0.04)
        return box.subdivide_midpoint(4)
    raise ValueError(f"unknown shape {shape!r}")


def make_scan(shape: str, noise: float, variant: str, n_points: int, seed: int = 0):
    """(reference: a mesh or (points, normals), noisy points (N, 3)); deterministic in its arguments. The noise is
    a share of the reference's bounding-box diagonal; a plain scan of a mesh is exactly
    ``geomprior.synthetic.noisy_scan(mesh, n_points, noise, seed)`` (the scans of bench_quality and the README)."""
    from geomprior.io import read_points
    from geomprior.metrics import sample_surface
    from geomprior.synthetic import noisy_scan

    rng = np.random.default_rng(seed)
    if shape == "kitten":
        pts, nrm = read_points(str(SHAPES / "kitten.xyz"))
        reference, clean = (pts, nrm), pts.copy()
    else:
        reference = _mesh(shape)
        if not variant:
            return reference, noisy_scan(reference, n_points, noise, seed)
        clean, _ = sample_surface(reference, n_points * (5 if variant == "nonuniform" else 1), seed=rng)
    ref_points = reference[0] if isinstance(reference, tuple) else np.asarray(reference.vertices)
    lo, hi = ref_points.min(0), ref_points.max(0)
    diag = float(np.linalg.norm(hi - lo))
    if variant == "nonuniform":  # the half x > median keeps one point in ten; the dense half tops up to n_points
        sparse = clean[:, 0] > np.median(clean[:, 0])
        clean = clean[~sparse | (rng.random(len(clean)) < 0.1)]
        if shape != "kitten":
            clean = clean[rng.permutation(len(clean))[:n_points]]
    points = clean + rng.normal(scale=noise * diag, size=clean.shape)
    if variant == "outliers":
        pad = 0.05 * (hi - lo)
        points = np.concatenate([points, rng.uniform(lo - pad, hi + pad, size=(int(round(0.02 * len(points))), 3))])
    return reference, points


# --------------------------------------------------------------------------------------------------------------
# one row, in its own process


def _config(method: str, overrides: dict, max_epochs: int | None):
    """The DGPConfig a geomprior row runs with (None for the baselines)."""
    from geomprior.dgp import DGPConfig

    if method not in (*PRESETS, NO_FIT):
        return None
    cfg = dataclasses.replace(DGPConfig.preset("default" if method == NO_FIT else method), **overrides)
    if max_epochs is not None:
        cfg = dataclasses.replace(cfg, max_epochs=min(cfg.max_epochs, max_epochs), min_epochs=0,
                                  consistency_epochs=min(cfg.consistency_epochs, 5))
    return cfg


def _reconstruct(method: str, points: np.ndarray, cfg, device: str = "cpu", seed: int = 0):
    from geomprior.baselines import ball_pivoting, screened_poisson
    from geomprior.dgp import reconstruct

    if method.startswith("poisson"):
        return screened_poisson(points, depth=int(method[len("poisson"):])), None
    if method == "bpa":
        return ball_pivoting(points), None
    if method.startswith("mlpoisson"):
        from geomprior.baselines import meshlab_poisson

        return meshlab_poisson(points, depth=int(method[len("mlpoisson"):])), None
    if method == NO_FIT:
        return _mesh_stage(points, cfg), None
    rec = reconstruct(points, config=cfg, device=device, seed=seed)
    return rec.mesh, rec.history["local"]


def _mesh_stage(points: np.ndarray, cfg):
    """The mesh ``reconstruct`` makes with ``cfg`` when its mesh stage gets the scan's own points (outliers dropped)
    and their estimated normals instead of the fit's: the ablation of the fit itself."""
    from geomprior.dgp import finish, fit_config, prepare_points, scan_layout

    scan = scan_layout(points, cfg)
    cfg = fit_config(points, scan, cfg)
    pts, nrm, _, _ = prepare_points(points[scan.kept] - scan.center, None, cfg, diagonal=scan.diagonal)
    return finish(pts, nrm, scan, cfg, cfg.radius * scan.diagonal, points)[0]


def _row(job: dict) -> dict:
    from geomprior.metrics import evaluate

    reference, points = make_scan(job["shape"], job["noise"], job["variant"], job["points"])
    if job["method"] in ("rimls", "apss"):
        return _mls_row(job, reference, points)
    t = time.perf_counter()
    cfg = _config(job["method"], job.get("overrides", {}), job.get("max_epochs"))
    device = job.get("device", "cpu")
    mesh, local = _reconstruct(job["method"], points, cfg, device, job.get("seed", 0))
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch

    row = {**{k: v for k, v in job.items() if k != "overrides"}, "n_input": len(points), "seconds": seconds,
           "peak_mb": peak_mb, "triangles": len(mesh.triangles), "threads": torch.get_num_threads(),
           "load": os.getloadavg()[0], "config": _config_json(cfg)}
    if device.startswith("cuda"):  # the fit ran on a GPU: the table names it beside the time
        row["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if local is not None:
        row.update(epochs=int(local["steps"]), kept_epoch=int(np.max(np.asarray(local["best_step"]))),
                   stop_reason=local["reason"])
    if len(mesh.triangles) == 0:
        return {**row, "chamfer_l1": math.nan, "hausdorff": math.nan, "normal_consistency": math.nan, "fscore": 0.0}
    return {**row, **evaluate(mesh, reference, n_samples=job["samples"])}


def _mls_row(job: dict, reference, points: np.ndarray) -> dict:
    """A MeshLab MLS row: every scale of MLS_SCALES, the best kept (its time; the others' in "scales")."""
    from geomprior.baselines import meshlab_mls
    from geomprior.metrics import evaluate

    tried = []
    for scale in MLS_SCALES:
        t = time.perf_counter()
        mesh = meshlab_mls(points, kind=job["method"], filter_scale=scale)
        seconds = time.perf_counter() - t
        quality = evaluate(mesh, reference, n_samples=job["samples"]) if len(mesh.triangles) else {
            "chamfer_l1": math.inf, "hausdorff": math.inf, "normal_consistency": math.nan, "fscore": 0.0}
        tried.append({"filter_scale": scale, "seconds": seconds, "triangles": len(mesh.triangles), **quality})
    best = min(tried, key=lambda r: r["chamfer_l1"])
    return {**job, "n_input": len(points), **best, "scales": tried, "load": os.getloadavg()[0],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "config": None}


def _config_json(cfg) -> dict | None:
    return None if cfg is None else json.loads(json.dumps(dataclasses.asdict(cfg)))


# DGPConfig fields whose default changed after rows were cached: the value a row that does not record them ran with
FIRST_DEFAULTS = {"thin_parts": False, "val_score": "transport", "surface": "poisson", "mesh_points": "dense",
                  "outward": False, "precision": "float32", "gap": 0.0, "blend": "mean",
                  "val_normal_cells": 1, "edge_filter": 0, "max_cell": None, "fidelity": 0.0, "taubin": 0,
                  "adapt_radius": False}
# DGPConfig fields whose default changed after rows were cached: a row that differs from today's settings in these
# alone is shown, marked, until it is measured again
SINCE = ("surface", "mesh_points", "outward", "precision", "lr", "refresh_every", "trim", "gap", "blend",
         "val_normal_cells", "edge_filter", "max_cell", "fidelity", "taubin", "adapt_radius")


def _saved_config(saved: dict) -> dict:
    """A cached row's DGPConfig with every field: a field the row does not record was added to DGPConfig after it
    ran and counts as its first default (the behaviour before it: FIRST_DEFAULTS, else today's default)."""
    from geomprior.dgp import DGPConfig

    return {**_config_json(DGPConfig()), **FIRST_DEFAULTS, **saved}


def _same_config(saved: dict | None, current: dict | None) -> bool:
    """Whether a cached row ran with the current DGPConfig."""
    if saved is None or current is None:
        return saved == current
    return _saved_config(saved) == current


def _differs_in(saved: dict | None, current: dict | None, fields: str | tuple[str, ...]) -> bool:
    """Whether a cached geomprior row's DGPConfig differs from the current one in ``fields`` (one or several)
    alone."""
    if saved is None or current is None:
        return False
    fields = (fields,) if isinstance(fields, str) else fields
    return {**_saved_config(saved), **dict.fromkeys(fields)} == {**current, **dict.fromkeys(fields)}


def _normals_check(job: dict, saved: dict) -> dict:
    """Whether the job's scan gets the same normals with the row's thin_parts as with the current one (then the
    fit, which depends on thin_parts only through them, is the same), and how much longer the current estimate
    takes (the row's time does not include it)."""
    from geomprior.dgp import prepare_points

    cfg = _config(job["method"], job.get("overrides", {}), job.get("max_epochs"))
    _, points = make_scan(job["shape"], job["noise"], job["variant"], job["points"])
    seconds, normals = [], []
    for thin in (_saved_config(saved)["thin_parts"], cfg.thin_parts):
        t = time.perf_counter()
        normals.append(prepare_points(points, config=dataclasses.replace(cfg, thin_parts=thin))[1])
        seconds.append(time.perf_counter() - t)
    return {"thin_parts": cfg.thin_parts, "same": bool(np.array_equal(*normals)),
            "extra_seconds": seconds[1] - seconds[0]}


def _radius_check(job: dict, saved: dict) -> dict:
    """Whether the job's scan gets the row's patch radius with the current adapt_radius too (then the fit is the
    same)."""
    from geomprior.dgp import fit_config, scan_layout

    cfg = _config(job["method"], job.get("overrides", {}), job.get("max_epochs"))
    _, points = make_scan(job["shape"], job["noise"], job["variant"], job["points"])
    radius = fit_config(points, scan_layout(points, cfg), cfg).radius
    return {"adapt_radius": cfg.adapt_radius, "radius": radius, "same": radius == _saved_config(saved)["radius"]}


# the settings in which a cached row may differ from the current ones and still be reused when its check passes
CHECKS = {"thin_parts": "normals_check", "adapt_radius": "radius_check"}  # (the check kept in the row)


def _reusable(row: dict, job: dict, current: dict, cache: RowCache, compute: bool) -> dict | None:
    """The cached row if its settings differ from the current ones only in ``CHECKS`` fields and the check of each
    passes (thin_parts: its scan gets the same normals either way; adapt_radius: the same patch radius); each
    check is computed once if ``compute``, and kept in the row. Else None."""
    saved = _saved_config(row.get("config"))
    differ = [k for k in current if saved.get(k) != current[k]]
    if not differ or any(k not in CHECKS for k in differ):
        return None
    for name in differ:
        key = CHECKS[name]
        check = row.get(key)
        if check is not None and check[name] != current[name]:
            check = None  # checked against another setting
        if check is None and compute:
            row = {**row, key: (_normals_check if name == "thin_parts" else _radius_check)(job, row["config"])}
            cache.put(job["key"], row)
            check = row[key]
        if check is None or not check["same"]:
            return None
    return row


# rows measured before rows named their machine and run all ran on this one (the Machine line of every table they
# were published in)
EARLIER_MACHINE = "AMD EPYC, 2 cores, no GPU, torch 2.13.0+cpu"
RUN = datetime.datetime.now().isoformat(timespec="seconds")  # this invocation: rows measured in it carry it


def _machine(r: dict) -> str:
    return r.get("machine", EARLIER_MACHINE)


def run_rows(jobs: list[dict], cache: RowCache, reuse: bool, fresh_process: bool = True,
             cached_only: bool = False) -> tuple[list[dict], list[dict]]:
    """Each job's row, from the cache or computed (in a fresh process unless ``fresh_process`` is False), and the
    jobs left out (``cached_only``: rows not in the cache are not computed). A cached geomprior row is
    reused only if it ran with the settings the code gives that job now, or with settings that differ only where
    a check shows the fit is the same (``_reusable``: run once, kept in the row; not under ``cached_only``, which
    computes nothing). Under ``cached_only`` a row that differs in ``SINCE`` alone (it ran with former defaults)
    is shown too, marked "former_defaults"."""
    ctx = multiprocessing.get_context("spawn")
    out, missing = [], []
    for job in jobs:
        row = cache.get(job["key"]) if reuse or cached_only else None
        current = _config_json(_config(job["method"], job.get("overrides", {}), job.get("max_epochs")))
        if row is not None and not _same_config(row.get("config"), current):
            former = row
            row = _reusable(row, job, current, cache, compute=not cached_only)
            if row is None and cached_only and _differs_in(former.get("config"), current, SINCE):
                saved = _saved_config(former.get("config"))  # shown, marked ‡, until it is computed again
                row = {**former, "former_defaults": {k: saved[k] for k in SINCE if saved[k] != current[k]}}
        if row is None and cached_only:
            missing.append(job)
            continue
        if row is None:
            if fresh_process:
                with ctx.Pool(1, maxtasksperchild=1) as pool:
                    row = pool.apply(_row, (job,))
            else:
                row = _row(job)
            row = {**row, "machine": machine(), "run": RUN}
            cache.put(job["key"], row)
            print(f"{job['key']}: Chamfer-L1 {row['chamfer_l1']:.6f}, {row['seconds']:.1f} s, "
                  f"{row['peak_mb']:.0f} MB", flush=True)
        out.append(row)
    return out, missing


def _not_run(missing: list[dict]) -> list[str]:
    """One line per scan: the methods (or ablations) whose rows are not measured yet."""
    if not missing:
        return []
    scans: dict[str, list[str]] = {}
    for job in missing:
        points = "its own points" if job["shape"] == "kitten" else f"{job['points']:,} points"
        scan = f"{job['shape']} {job['noise'] * 100:g}% {job['variant'] or 'plain'} ({points})"
        scans.setdefault(scan, []).append(job.get("ablation", job["method"]))
    return [f"Not measured yet ({len(missing)} rows):", "",
            *(f"- {scan}: {', '.join(names)}" for scan, names in scans.items()), ""]


# --------------------------------------------------------------------------------------------------------------
# suites


def _job(shape, noise, variant, method, points, samples, **extra) -> dict:
    key = "-".join(str(x) for x in (shape, f"{noise:g}", variant or "plain", method, points, *extra.get("tag", ())))
    return {"key": key, "shape": shape, "noise": noise, "variant": variant, "method": method, "points": points,
            "samples": samples, **{k: v for k, v in extra.items() if k != "tag"}}


def matrix_jobs(args) -> list[dict]:
    jobs = []
    for shape in args.shapes:
        # the variants are 0.5 % scans: they run with --noise lists that hold 0.005
        with_variants = 0.005 in args.noise and not args.quick
        scans = [(n, "") for n in args.noise] + ([(0.005, v) for v in args.variants] if with_variants else [])
        for noise, variant in scans:
            for method in args.methods:
                jobs.append(_job(shape, noise, variant, method, args.points, args.samples, max_epochs=args.max_epochs))
    return jobs


def scaling_jobs(args) -> list[dict]:
    shape, sizes = ("sphere", (500, 1000)) if args.quick else ("bunny00", args.sizes)
    return [_job(shape, 0.005, "", m, n, args.samples, max_epochs=args.max_epochs)
            for n in sizes for m in ("fast", "poisson9")]


def ablation_jobs(args) -> list[dict]:
    shapes = (args.shapes[:1] if args.quick else
              [s for s in ("bunny00", "fandisk", "plate") if s in args.shapes] or ["bunny00"])
    names = [n for n in (list(ABLATIONS)[:2] if args.quick else list(ABLATIONS)) if n in args.ablations]
    return [_job(s, 0.005, ABLATION_VARIANT.get(name, ""), ABLATION_METHOD.get(name, "default"),
                 ABLATION_POINTS.get(name, args.points), args.samples, overrides=ABLATIONS[name], ablation=name,
                 max_epochs=args.max_epochs, tag=(name,),
                 **({"seed": FIT_SEED[name]} if name in FIT_SEED else {}))
            for s in shapes for name in names if s != "plate" or name in ON_PLATE]


def _fmt(v, spec="0.6f"):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _table_machine(rows: list[dict]) -> str:
    """The machine most of a table's rows were measured on: the table's Machine line; the others are marked §."""
    return Counter(_machine(r) for r in rows).most_common(1)[0][0] if rows else machine()


def _quality_table(rows: list[dict], label) -> list[str]:
    on = _table_machine(rows)
    lines = [f"| shape | noise | variant | {label} | Chamfer-L1 | Hausdorff | normal cons. | F-score@1% | "
             "s (threads, load) | peak MB |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['noise'] * 100:g}% | {r['variant'] or '-'} | "
                     f"{_label(r)} | {_fmt(r['chamfer_l1'])} | {_fmt(r['hausdorff'], '.5f')} | "
                     f"{_fmt(r['normal_consistency'], '.4f')} | {_fmt(r['fscore'], '.4f')} | {r['seconds']:.1f}"
                     f"{_checked(r)}{'§' * (_machine(r) != on)} {_ran_on(r)} | {r['peak_mb']:.0f} |")
    elsewhere = Counter(_machine(r) for r in rows if _machine(r) != on)
    return lines + _checked_note(rows) + ([] if not elsewhere else [
        "", "§ rows measured on another machine than the table's: " + "; ".join(
            f"{m} ({n} rows)" for m, n in elsewhere.items()) + ". Compare times only between rows of one machine."])


def _label(r: dict) -> str:
    """A row's method or ablation, with the filter scale an MLS peer's row kept."""
    scale = f" (scale {r['filter_scale']:g})" if "filter_scale" in r else ""
    return r.get("ablation", r["method"]) + scale


def _ran_on(r: dict) -> str:
    """What a row's time was measured on: (torch threads, load) on the CPU, or the GPU's name."""
    if "gpu" in r:
        return f"({r['gpu']})"
    return f"({r.get('threads', '-')}, {_fmt(r.get('load'), '.1f')})"


def _checked(r: dict) -> str:
    return ("†" if "normals_check" in r else "") + ("‡" if r.get("former_defaults") else "")


def _checked_note(rows: list[dict]) -> list[str]:
    """The footnotes on the rows shown with the former mesh (‡) and those reused through ``_normals_check`` (†)."""
    former = [r["former_defaults"] for r in rows if r.get("former_defaults")]
    counts = Counter(f"{k}={v!r}" for fields in former for k, v in fields.items())
    lines = [] if not former else [
        "", f"‡ {len(former)} rows ran with former defaults and are not measured again yet; the DGPConfig settings "
        "they differ in (rows): " + ", ".join(f"{k} ({n})" for k, n in counts.items()) + "; everything else as now."]
    checks = [r["normals_check"] for r in rows if "normals_check" in r]
    if not checks:
        return lines
    extra = [c["extra_seconds"] for c in checks]
    return lines + ["", f"† {len(checks)} rows ran with thin_parts={FIRST_DEFAULTS['thin_parts']!r}, before "
                    f"thin_parts={checks[0]['thin_parts']!r} became the default: their scans get exactly the same "
                    "normals either way (checked), so the fit is the same, but their time leaves out the longer normal "
                    f"estimate of today's setting ({min(extra):.1f} to {max(extra):.1f} s here, measured with the "
                    "check)."]


def winners(rows: list[dict]) -> list[str]:
    """Per scan, which method has the lowest Chamfer-L1 and the highest normal consistency, and geomprior's best
    preset against the best peer on Chamfer-L1; then the scans where a peer wins."""
    scans: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["method"] != NO_FIT:
            scans.setdefault((r["shape"], r["noise"], r["variant"]), []).append(r)
    out = ["| shape | noise | variant | best Chamfer-L1 | best normal consistency | geomprior vs best peer |",
           "|---|---|---|---|---|---|"]
    compared, lost, lost_default = 0, [], []
    for (shape, noise, variant), rs in scans.items():
        ok = [r for r in rs if not math.isnan(r["chamfer_l1"])]
        if not ok:
            continue
        c = min(ok, key=lambda r: r["chamfer_l1"])
        n = max(ok, key=lambda r: r["normal_consistency"])
        ours = [r for r in ok if r["method"] in PRESETS]
        peers = [r for r in ok if r["method"] in PEERS]
        versus = "-"
        if ours and peers:
            g, p = min(ours, key=lambda r: r["chamfer_l1"]), min(peers, key=lambda r: r["chamfer_l1"])
            versus = f"{g['method']} {100 * (g['chamfer_l1'] / p['chamfer_l1'] - 1):+.1f} % vs {p['method']}"
            scan = f"{shape} {noise * 100:g}% {variant or 'plain'}"
            compared += 1
            if g["chamfer_l1"] >= p["chamfer_l1"]:
                lost.append(f"{scan} ({p['method']})")
            default = next((r for r in ours if r["method"] == "default"), None)
            if default is not None and default["chamfer_l1"] >= p["chamfer_l1"]:
                lost_default.append(f"{scan} ({p['method']})")
        out.append(f"| {shape} | {noise * 100:g}% | {variant or '-'} | {c['method']} ({c['chamfer_l1']:.6f}) | "
                   f"{n['method']} ({n['normal_consistency']:.4f}) | {versus} |")
    if compared:
        out += ["", f"geomprior vs best peer: Chamfer-L1 of geomprior's best preset relative to the best of "
                    f"{', '.join(PEERS)} (negative: geomprior lower). A peer wins "
                    f"{len(lost)} of {compared} scans" + (f": {'; '.join(lost)}" if lost else "")
                + f". Against the default preset alone a peer wins {len(lost_default)}"
                + (f": {'; '.join(lost_default)}." if lost_default else ".")]
    return out


def fit_gain(rows: list[dict]) -> list[str]:
    """One line: on how many scans the default preset's Chamfer-L1 is lower and its normal consistency higher than
    its own mesh stage's without the fit (NO_FIT), and the scans where not."""
    pairs: dict[str, dict] = {}
    for r in rows:
        if r["method"] in ("default", NO_FIT) and not math.isnan(r["chamfer_l1"]):
            pairs.setdefault(f"{r['shape']} {r['noise'] * 100:g}% {r['variant'] or 'plain'}", {})[r["method"]] = r
    both = {scan: p for scan, p in pairs.items() if len(p) == 2}
    if not both:
        return []
    not_cd = [s for s, p in both.items() if p["default"]["chamfer_l1"] >= p[NO_FIT]["chamfer_l1"]]
    not_nc = [s for s, p in both.items() if p["default"]["normal_consistency"] <= p[NO_FIT]["normal_consistency"]]
    return [f"The fit against its own mesh stage ({NO_FIT}: the default's mesh stage on the scan's own points and "
            f"normals): the default preset's Chamfer-L1 is lower on {len(both) - len(not_cd)} of {len(both)} scans"
            + (f" (not on {'; '.join(not_cd)})" if not_cd else "") + f", its normal consistency higher on "
            f"{len(both) - len(not_nc)}" + (f" (not on {'; '.join(not_nc)})" if not_nc else "") + ".", ""]


# the matrix rows "no regression" is measured against: those committed when issue 30 was filed
BASELINE = ("ff61a85", "the matrix when issue 30 was filed")


def against(rows: list[dict], rev: str, what: str, out: Path) -> list[str]:
    """geomprior's rows against the same rows committed at git revision ``rev`` (their JSON under ``out``):
    how many are lower, within 1 %, higher in Chamfer-L1, and the higher ones listed; rows unchanged since are
    only counted. Rows git does not have at ``rev`` (or no git) are left out."""
    import subprocess

    then, now = {}, [r for r in rows if r["method"] in PRESETS and not math.isnan(r["chamfer_l1"])]
    for r in now:
        try:
            got = subprocess.run(["git", "show", f"{rev}:./matrix/{r['key']}.json"], capture_output=True, text=True,
                                 cwd=out)
        except FileNotFoundError:  # no git
            return []
        if got.returncode == 0:
            then[r["key"]] = json.loads(got.stdout)["row"]
    measured = ("chamfer_l1", "seconds")
    pairs = [(r, then[r["key"]]) for r in now
             if r["key"] in then and any(r[m] != then[r["key"]].get(m) for m in measured)]
    same = sum(r["key"] in then for r in now) - len(pairs)  # not remeasured since
    if not pairs:
        return []
    change = {r["key"]: r["chamfer_l1"] / t["chamfer_l1"] - 1 for r, t in pairs}
    worse = sorted((p for p in pairs if change[p[0]["key"]] > 0.01), key=lambda p: -change[p[0]["key"]])
    lower = sum(c < -0.01 for c in change.values())
    lines = [f"Against the rows at {rev} ({what}; `git show {rev}:benchmarks/bench_surfaces/matrix/KEY.json`): "
             f"of {len(pairs)} geomprior rows, Chamfer-L1 more than 1 % lower on {lower}, within 1 % on "
             f"{len(pairs) - lower - len(worse)}, more than 1 % higher on {len(worse)}"
             + (f" ({same} more not remeasured since)" if same else "") + (":" if worse else ".")]
    if worse:
        lines += ["", "| shape | noise | variant | method | Chamfer-L1 then → now | normal cons. then → now |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['shape']} | {r['noise'] * 100:g}% | {r['variant'] or '-'} | {r['method']} | "
                  f"{t['chamfer_l1']:.6f} → {r['chamfer_l1']:.6f} ({100 * change[r['key']]:+.1f} %) | "
                  f"{t['normal_consistency']:.4f} → {r['normal_consistency']:.4f} |" for r, t in worse]
    return lines


def seed_spread(rows: list[dict]) -> list[str]:
    """One line: per scan, the default preset's Chamfer-L1 over fit seeds 0, 1, 2 (the ablations of ``SEEDS``):
    max / min − 1, the yardstick for "within the seed spread"."""
    spreads = []
    for variant, names in SEEDS.items():
        for shape in dict.fromkeys(r["shape"] for r in rows):
            cd = [r["chamfer_l1"] for r in rows if r["shape"] == shape and r.get("ablation") in names]
            if len(cd) == len(names):
                spreads.append(f"{shape} {variant} {100 * (max(cd) / min(cd) - 1):.1f} % "
                               f"({min(cd):.6f}–{max(cd):.6f})")
    return [f"Spread of the default preset over fit seeds 0, 1 and 2 (Chamfer-L1, largest / smallest − 1): "
            f"{'; '.join(spreads)}.", ""] if spreads else []


def time_ratio(rows: list[dict]) -> list[str]:
    """Issue 30's time criterion: the default preset's time on the 20,000-point bunny00 (0.5 %, plain) over Screened
    Poisson depth 9's, both rows measured in one run (one invocation, one machine), else not stated."""
    scan = {r["method"]: r for r in rows if (r["shape"], r["noise"], r["variant"], r["points"]) ==
            ("bunny00", 0.005, "", 20_000)}
    ours, poisson = scan.get("default"), scan.get("poisson9")
    if ours is None or poisson is None:
        return []
    if ours.get("run") is None or ours.get("run") != poisson.get("run"):
        return ["Time, default preset against Screened Poisson depth 9 on the 20,000-point bunny00 (0.5 %): their "
                "rows were measured in different runs; run both in one (`--shapes bunny00 --noise 0.005 "
                "--variants --methods poisson9 default`) to compare them.", ""]
    ratio = ours["seconds"] / poisson["seconds"]
    return [f"Time, default preset against Screened Poisson depth 9 on the 20,000-point bunny00 (0.5 %), measured in "
            f"one run ({ours['run']}, {_machine(ours)}, {ours['threads']} torch threads, loads "
            f"{_fmt(poisson.get('load'), '.1f')} and {_fmt(ours.get('load'), '.1f')}): {ours['seconds']:.1f} s / "
            f"{poisson['seconds']:.1f} s = {ratio:.1f}× (issue 30: at most 10×).", ""]


def scaling_report(rows: list[dict], out: Path) -> list[str]:
    if not rows:
        return ["No rows measured yet."]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    lines = ["| method | points | s (threads, load) | peak MB | Chamfer-L1 |", "|---|---|---|---|---|"]
    fits = []
    for method in ("fast", "poisson9"):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["n_input"])
        if not rs:
            continue
        n = np.array([r["n_input"] for r in rs], float)
        t = np.array([r["seconds"] for r in rs])
        m = np.array([r["peak_mb"] for r in rs])
        for r in rs:
            lines.append(f"| {method} | {r['n_input']} | {r['seconds']:.1f}{_checked(r)} {_ran_on(r)} | "
                         f"{r['peak_mb']:.0f} | {_fmt(r['chamfer_l1'])} |")
        label = "geomprior fast" if method == "fast" else "open3d Poisson d9"
        if len(rs) > 1:
            slope = float(np.polyfit(np.log(n), np.log(t), 1)[0])
            mem_slope = float(np.polyfit(np.log(n), np.log(m), 1)[0])
            fits.append(f"{label}: time ∝ N^{slope:.2f}, peak memory ∝ N^{mem_slope:.2f}")
            label += f" (N^{slope:.2f})"
        axes[0].loglog(n, t, "o-", label=label)
        axes[1].loglog(n, m, "o-", label=label.split(" (")[0])
    axes[0].set(xlabel="input points", ylabel="seconds", title="time")
    axes[1].set(xlabel="input points", ylabel="peak MB (process)", title="peak memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    from geomprior.io import atomic_path

    with atomic_path(str(out)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return [*lines, *_checked_note(rows), "", "Fitted exponents (least squares on the log-log points): "
            + "; ".join(fits) + "."]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", nargs="+", default=["matrix", "scaling", "ablations"],
                   choices=("matrix", "scaling", "ablations"))
    p.add_argument("--shapes", nargs="+", default=list(SHAPE_NAMES), choices=SHAPE_NAMES)
    p.add_argument("--noise", nargs="+", type=float, default=list(NOISE))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                   help="the 0.5 %% variants of the matrix (default: all; none: plain scans only)")
    p.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS), metavar="NAME",
                   help="the ablation rows to run (default: all): " + "; ".join(ABLATIONS).replace("%", "%%"))
    p.add_argument("--points", type=int, default=20_000, help="points per scan (kitten: its own 5,210)")
    p.add_argument("--samples", type=int, default=100_000, help="surface samples per mesh for the metrics")
    p.add_argument("--sizes", nargs="+", type=int, default=list(SCALING_POINTS), help="point counts of the scaling suite")
    p.add_argument("--max-epochs", type=int, default=None, help=argparse.SUPPRESS)  # --quick caps the fits
    p.add_argument("--device", default="cpu",
                   help="where geomprior rows fit (cpu, cuda); a GPU row's time names the GPU in the table")
    p.add_argument("--out", default="benchmarks/bench_surfaces")
    p.add_argument("--reuse", action="store_true", help="skip rows already computed with the same settings")
    p.add_argument("--cached-only", action="store_true",
                   help="compute nothing: the tables of the rows already cached, listing the ones not measured yet")
    p.add_argument("--quick", action="store_true",
                   help="1,000-point scans of one shape, one noise level, few epochs: checks that it runs")
    args = p.parse_args(argv)
    if args.quick:
        args.shapes, args.noise, args.points, args.samples = ["sphere"], [0.005], 1000, 5000
        args.methods = [m for m in args.methods if m in ("fast", "poisson8")]
        args.max_epochs = 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    settings = dict(points=args.points, samples=args.samples, max_epochs=args.max_epochs)
    conventions = (
        "Scans: points sampled uniformly (area-weighted) on the shape, Gaussian noise of the given share of the "
        "bounding-box diagonal, no normals given, seed 0. Metrics as in geomprior.metrics (DESIGN.md §6): distances "
        f"relative to the reference's diagonal, {args.samples:,} samples per surface; F-score at 1 % of the diagonal. "
        "Time: the reconstruction only, with the torch threads it ran on and the 1-minute load average when it ended "
        "(a load above the core count means a shared machine and an inflated time; '-': not recorded); peak MB: the "
        "peak resident memory of the process that ran it (each row runs in a fresh process: Python, torch and open3d "
        "included). geomprior runs with automatic stopping, on the CPU unless the time names a GPU (its fit ran there; "
        "normals, meshing and the metrics stay on the CPU of that machine), with its patch radius adapted to the "
        "scan's noise (DGPConfig.adapt_radius: 0.05 of the extent, 0.035 to 0.05 on the 0.25 % scans; a row from "
        "before the rule is reused where its scan keeps the radius, checked and noted in the row).")
    sections, summary = [], {}

    caches = {suite: RowCache(out / f"{suite}{suffix}", settings) for suite in args.suite}

    def measure(jobs: list[dict], suite: str) -> tuple[list[dict], list[dict]]:
        if args.device != "cpu":
            jobs = [{**job, "device": args.device} for job in jobs]
        return run_rows(jobs, caches[suite], args.reuse, fresh_process=not args.quick, cached_only=args.cached_only)

    if args.cached_only:  # a suite with no row yet is left out (make_benchmarks keeps its published table)
        empty = [s for s in args.suite if not caches[s].rows()]
        args.suite = [s for s in args.suite if s not in empty]
        if empty:
            print(f"no rows yet, left out: {', '.join(empty)}", file=sys.stderr)
        if not args.suite:
            return 0
    if "matrix" in args.suite:
        rows, missing = measure(matrix_jobs(args), "matrix")
        sections += [header("Surfaces: quality, time and memory against the peers", conventions, __file__, argv,
                            _table_machine(rows)),
                     *_quality_table(rows, "method"), "", *_not_run(missing), "Best per scan:", "", *winners(rows), "",
                     *fit_gain(rows), *against(rows, *BASELINE, out), "", *time_ratio(rows)]
        summary["matrix"] = rows
    if "scaling" in args.suite:
        rows, missing = measure(scaling_jobs(args), "scaling")
        sections += [header("Surfaces: cost against the number of points (bunny, 0.5 % noise)", conventions,
                            __file__, argv, _table_machine(rows)),
                     f"![scaling](docs/benchmarks/scaling{suffix}.png)", "",
                     *scaling_report(rows, out / f"scaling{suffix}.png"), "", *_not_run(missing)]
        summary["scaling"] = rows
    if "ablations" in args.suite:
        rows, missing = measure(ablation_jobs(args), "ablations")
        sections += [header("Surfaces: ablations of the default preset (0.5 % noise)", conventions, __file__, argv,
                            _table_machine(rows)),
                     *_quality_table(rows, "setting"), "", *_not_run(missing), *seed_spread(rows)]
        summary["ablations"] = rows
    text = "\n".join(sections)
    print(text)
    write_json(str(out / f"bench_surfaces{suffix}.json"), summary)
    (out / f"bench_surfaces{suffix}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
