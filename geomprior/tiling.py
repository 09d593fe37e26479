"""Tiled reconstruction: scans too large for one fit, cut into tiles that are fitted independently (in this
process or on Ray), checkpointed, and merged into one dense oriented point set and one mesh.

How a scan is cut
-----------------
- **Cores** are axis-aligned boxes that partition space (half-open ``[lo, hi)`` per axis; the faces on the scan's
  outside are at ±inf), so every point lies in exactly one core. ``tile_size`` cuts a regular grid of cubes of that
  side (a share of the scan's extent, ``geomprior.scan``), dropping cells without points; ``tile_points`` splits
  the scan recursively at the median of its longest axis until each core holds about that many points.
- **Halo**: a tile's points are those within ``halo`` of its core (a box grown on every side). The default halo is
  (padding + 1) × the patch radius: the members of every patch centred in the core (within padding × radius of
  the centre) are in the tile, and so are the patches centred up to one radius outside the core, which share
  points with the core's patches in the consistency stage. Patches of a tile are covered with the whole scan's
  diagonal (the patch radius) and voxel grid, so its patches centred in the core are the ones the untiled
  scan gets there.
- **What a tile keeps**: the dense points of its patches whose CENTRE lies in its core, and its fitted points
  (``DenseOutput.fitted_points``) that lie in its core. Patch centres are input points, so every patch is kept by
  exactly one tile (whole patches, no seams of half patches); patches centred in the halo only help their
  neighbours' consistency and orientation, and are fitted again by their own tile.
- **Normals**: given normals are used as they are. Otherwise each tile estimates and orients them on its own
  points (open3d, as the untiled path does); the tiles' orientations are then made consistent with each other
  from the points they share (core of one, halo of another): signs are propagated along a maximum spanning tree
  of the tiles' agreement, and each tile's dense normals are flipped with its tile.
- **Mesh**: the union of the tiles' fitted (or dense: ``DGPConfig.mesh_points``) points is meshed as an untiled
  run's are (``dgp.finish``: per object, Screened Poisson and its manifold re-extraction), not per tile: these
  points (48 bytes each) are far smaller than the
  fit's working set, open3d's Poisson at depth <= 10 meshes millions of them in a few GB, and one global solve has
  no seams to stitch.
- **Seeds**: tile ``t`` of ``T > 1`` runs with a seed drawn from (seed, t) (``numpy.random.SeedSequence``); a single
  tile uses ``seed`` itself, so a one-tile run is exactly the untiled reconstruction.

Checkpoints (``run_dir``)
-------------------------
``run_dir/settings.json`` records what defines the result (input digest, settings, seed, tiling); resuming with
different ones is refused (the executor and device are not recorded: a run may move between them).
``run_dir/tiles/NNNNN.npz`` holds each finished tile's dense points, normals and labels, written atomically;
``resume=True`` loads them and runs the others. At the end ``run_dir/patches.npz`` holds ``points`` (N, 3) float32
(the input, world coordinates) and ``labels`` (N,) int64 (global index of a patch containing each point, -1 for
none; patches numbered tile by tile), written by ``patches.save_patch_labels``.

Memory
------
A tile's fit holds only the tile's points. The scan is read once into memory as float64 (24 bytes a point) for its
layout (``geomprior.scan``: stray clusters set aside, extent, objects) and recentred about its centre; tiles are cut
from the kept points in chunks of a million rows. What stays O(N) besides are small per-point arrays of the merge
(orientation, labels: ~50 bytes a point) and the dense points meshed at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dgp import DGPConfig, finish, fit_config, fit_dense, scan_layout
from .errors import InputError
from .executors import LocalExecutor, RayExecutor
from .fit import Progress
from .io import atomic_path
from .patches import PATCH_LABELS_FILE, Patches, point_labels, save_patch_labels
from .scan import check_colors, check_points

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # rows read at a time from (possibly memory-mapped) input arrays
SETTINGS = "settings.json"


@dataclass(frozen=True)
class Tiles:
    """Tiles of a scan: core boxes partitioning space, each grown by a halo.

    lo, hi : (T, 3) float core boxes, half-open [lo, hi) per axis; outer faces at ±inf
    halo   : float absolute width added on every side of a core to get the tile's points
    """

    lo: np.ndarray
    hi: np.ndarray
    halo: float

    def __len__(self) -> int:
        return len(self.lo)

    def in_core(self, t: int, points: np.ndarray) -> np.ndarray:
        """(n,) bool: the points (n, 3) in core ``t``."""
        return _in_core(points, self.lo[t], self.hi[t])

    def in_tile(self, t: int, points: np.ndarray) -> np.ndarray:
        """(n,) bool: the points (n, 3) within ``halo`` of core ``t`` (the tile's points)."""
        return ((points >= self.lo[t] - self.halo) & (points <= self.hi[t] + self.halo)).all(1)


def _in_core(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n,) bool: the points (n, 3) in the half-open box [lo, hi)."""
    return ((points >= lo) & (points < hi)).all(1)


def _chunks(points, normals=None):
    """(start, points (c, 3) float64, normals (c, 3) float64 or None) over rows of possibly memory-mapped arrays."""
    for start in range(0, len(points), CHUNK):
        p = np.asarray(points[start:start + CHUNK], dtype=np.float64)
        n = None if normals is None else np.asarray(normals[start:start + CHUNK], dtype=np.float64)
        yield start, p, n


def bounds(points) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min (3,), max (3,)) of points (N, 3), read in chunks."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    bad = 0
    for _, p, _ in _chunks(points):
        bad += int((~np.isfinite(p).all(1)).sum())
        lo, hi = np.minimum(lo, p.min(0)), np.maximum(hi, p.max(0))
    if bad:
        raise InputError(f"{bad} points have NaN or infinite coordinates")
    return lo, hi


def grid_tiles(points, size: float, halo: float) -> Tiles:
    """Cores on a grid of cubes of side ``size`` (absolute) over the points (N, 3); cells without points dropped."""
    lo, hi = bounds(points)
    counts = np.maximum(1, np.ceil((hi - lo) / size).astype(np.int64))
    edges = [lo[d] + size * np.arange(1, counts[d]) for d in range(3)]  # interior grid planes per axis
    occupied = set()
    for _, p, _ in _chunks(points):
        cell = np.stack([np.searchsorted(edges[d], p[:, d], side="right") for d in range(3)], 1)
        occupied.update(map(tuple, np.unique(cell, axis=0).tolist()))
    cells = np.array(sorted(occupied), dtype=np.int64).reshape(-1, 3)
    planes = [np.r_[-np.inf, e, np.inf] for e in edges]
    core_lo = np.stack([planes[d][cells[:, d]] for d in range(3)], 1)
    core_hi = np.stack([planes[d][cells[:, d] + 1] for d in range(3)], 1)
    return Tiles(core_lo, core_hi, float(halo))


def balanced_tiles(points, target: int, halo: float, *, sample: int = 1_000_000) -> Tiles:
    """Cores by recursive median splits of the longest axis until each holds about ``target`` points.

    The splits are chosen on an evenly strided subsample of at most ``sample`` points (so the counts are
    approximate when N > sample).
    """
    n = len(points)
    step = max(1, math.ceil(n / sample))
    pts = np.asarray(points[::step], dtype=np.float64)
    leaf = max(1, target / step)
    boxes: list[tuple[np.ndarray, np.ndarray]] = []
    stack = [(np.arange(len(pts)), np.full(3, -np.inf), np.full(3, np.inf))]
    while stack:
        idx, lo, hi = stack.pop()
        sub = pts[idx]
        if len(idx) > leaf:
            axis = int(np.argmax(sub.max(0) - sub.min(0)))
            cut = float(np.median(sub[:, axis]))
            left = sub[:, axis] < cut
            if left.any() and not left.all():
                hi_left, lo_right = hi.copy(), lo.copy()
                hi_left[axis] = lo_right[axis] = cut
                stack.append((idx[~left], lo_right, hi))
                stack.append((idx[left], lo, hi_left))
                continue
        boxes.append((lo, hi))
    return Tiles(np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes]), float(halo))


# --------------------------------------------------------------------------------------------------------------------
# one tile


@dataclass
class TileJob:
    """The inputs of one tile's fit (what travels to a Ray worker)."""

    index: int
    ids: np.ndarray  # (n,) int64 global indices of the tile's points
    points: np.ndarray  # (n, 3) float64
    normals: np.ndarray | None  # (n, 3) float64 or None (then estimated in the tile)
    lo: np.ndarray  # (3,) core box
    hi: np.ndarray
    config: DGPConfig
    seed: int
    diagonal: float  # the scan's extent (patch radius = config.radius × diagonal)
    origin: np.ndarray | None  # (3,) the scan's minimum (voxel grid of the patch centres); None: the tile's own
    device: str = "auto"


def run_tile(job: TileJob) -> dict:
    """Fit one tile and keep what its core owns. Returns a dict of arrays (the checkpoint's content):

    points, normals   : (M, 3) float64 dense points of the patches centred in the core, unit normals
    fitted_points, fitted_normals : (F, 3) float64 the fit's points in the core (``DenseOutput.fitted_points``)
    patch             : (M,) int64 their patch, numbered 0..n_patches-1 within the tile
    n_patches         : () int64
    label_ids, label_patch, label_dist : global point ids that are members of a kept patch, the kept patch
                        with the nearest centre (``patches.point_labels``) and that distance
    normal_ids, normal_vals, normal_core : the tile's points, the normals its fit used (float32), and which are
                        in its core (for orienting tiles against each other)
    history           : () str JSON of the fit's history;  seconds, peak_rss : () float
    """
    start = time.perf_counter()
    cfg = job.config
    points = np.array(job.points)  # writeable (Ray hands over read-only arrays; open3d wants writeable ones)
    normals = None if job.normals is None else np.array(job.normals)
    core = _in_core(points, job.lo, job.hi)
    empty_f = np.zeros((0, 3))
    out = None
    if len(points) >= cfg.min_points and np.ptp(points, axis=0).max() > 0:
        out = fit_dense(points, normals, cfg, device=job.device, seed=job.seed, diagonal=job.diagonal,
                        origin=job.origin)
    if out is None:  # a few stray points: nothing to fit
        log.info("tile %d: %d points, too few to fit", job.index, len(points))
        result = {"points": empty_f, "normals": empty_f, "fitted_points": empty_f, "fitted_normals": empty_f,
                  "patch": np.zeros(0, np.int64), "n_patches": 0,
                  "label_ids": np.zeros(0, np.int64), "label_patch": np.zeros(0, np.int64),
                  "label_dist": np.zeros(0), "history": "{}",
                  "normal_ids": job.ids, "normal_vals": np.zeros((len(job.ids), 3), np.float32),
                  "normal_core": core}
    else:
        kept = _in_core(out.patches.centers, job.lo, job.hi)
        number = np.cumsum(kept) - 1  # tile-local number of each kept patch
        dense = kept[out.patch]
        p = out.patches
        mine = Patches(p.centers[kept], p.index[kept], p.mask[kept], p.origin[kept], p.scale[kept], p.rotation[kept],
                       p.radius)
        labels = point_labels(mine, points)
        (who,) = np.nonzero(labels >= 0)
        fitted = core[out.inliers]  # the fit's points that the core owns
        result = {"points": out.points[dense], "normals": out.normals[dense],
                  "fitted_points": out.fitted_points[fitted], "fitted_normals": out.fitted_normals[fitted],
                  "patch": number[out.patch[dense]].astype(np.int64), "n_patches": int(kept.sum()),
                  "label_ids": job.ids[who], "label_patch": labels[who],
                  "label_dist": np.linalg.norm(points[who] - mine.centers[labels[who]], axis=1),
                  "history": json.dumps({**out.history, "summary": out.summary}),
                  "normal_ids": job.ids, "normal_vals": out.input_normals.astype(np.float32), "normal_core": core}
    result["seconds"] = time.perf_counter() - start
    result["peak_rss"] = _peak_rss()
    return result


def _peak_rss() -> float:
    """Peak resident memory of this process, bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss if sys.platform == "darwin" else rss * 1024)


def tile_seed(seed: int, index: int, count: int) -> int:
    """Seed of tile ``index`` of ``count``: ``seed`` itself for a single tile, else drawn from (seed, index)."""
    if count == 1:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


# --------------------------------------------------------------------------------------------------------------------
# run directory


class RunDir:
    """A run directory: settings.json, tiles/NNNNN.npz (finished tiles), patches.npz (at the end)."""

    def __init__(self, path: str | Path, settings: dict, *, resume: bool):
        self.path = Path(path)
        self.tiles = self.path / "tiles"
        settings = json.loads(json.dumps(settings))  # tuples -> lists, as they come back from the file
        saved = self.path / SETTINGS
        if resume:
            if not saved.is_file():
                raise InputError(f"{self.path}: nothing to resume (no {SETTINGS}); start a new run")
            try:
                old = json.loads(saved.read_text())
            except (OSError, ValueError) as e:
                raise InputError(f"{saved}: unreadable ({e})") from None
            diff = _differences(old, settings)
            if diff:
                raise InputError(f"{self.path} was made with other settings ({'; '.join(diff[:4])}); resume with "
                                 f"the same input and options, or use another run folder")
        else:
            if saved.exists():
                raise InputError(f"{self.path} already holds a run; resume it, or use another run folder")
            if self.path.exists() and not self.path.is_dir():
                raise InputError(f"{self.path}: is a file, not a folder")
            try:
                self.tiles.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InputError(f"{self.path}: cannot create: {e.strerror or e}") from None
            with atomic_path(saved) as tmp:
                Path(tmp).write_text(json.dumps(settings, indent=2) + "\n")
        self.tiles.mkdir(exist_ok=True)

    def tile_path(self, index: int) -> Path:
        return self.tiles / f"{index:05d}.npz"

    def finished(self, count: int) -> list[int]:
        return [t for t in range(count) if self.tile_path(t).is_file()]

    def save(self, index: int, result: dict) -> None:
        with atomic_path(self.tile_path(index)) as tmp:
            np.savez(tmp, **result)

    def load(self, index: int) -> dict:
        with np.load(self.tile_path(index)) as data:
            return {k: (data[k].item() if data[k].ndim == 0 else data[k]) for k in data.files}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for every leaf that differs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def digest(points, normals=None) -> str:
    """SHA-256 of the points (and normals) as float64, read in chunks: identifies a scan for resuming."""
    h = hashlib.sha256()
    for _, p, n in _chunks(points, normals):
        h.update(np.ascontiguousarray(p).tobytes())
        if n is not None:
            h.update(np.ascontiguousarray(n).tobytes())
    return f"{len(points)}:{h.hexdigest()}"


# --------------------------------------------------------------------------------------------------------------------
# merge


def _orientation(results: dict[int, dict], count: int, n_points: int) -> np.ndarray:
    """(T,) ±1 per tile making the tiles' estimated normals agree on the points they share."""
    owner = np.full(n_points, -1, np.int64)
    ref = np.zeros((n_points, 3), np.float32)
    for t, r in results.items():
        ids = r["normal_ids"][r["normal_core"]]
        owner[ids], ref[ids] = t, r["normal_vals"][r["normal_core"]]
    rows, cols, vals = [], [], []
    for t, r in results.items():
        halo = ~r["normal_core"]
        ids = r["normal_ids"][halo]
        dots = np.einsum("ij,ij->i", r["normal_vals"][halo], ref[ids]).astype(np.float64)
        total = np.bincount(owner[ids], weights=dots, minlength=count)
        (nz,) = np.nonzero(total)
        rows += [np.full(len(nz), t), nz]
        cols += [nz, np.full(len(nz), t)]  # symmetric: t's view of j's points and j's of t's add up
        vals += [total[nz], total[nz]]
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

    agree = coo_matrix((np.concatenate(vals or [np.zeros(0)]), (np.concatenate(rows or [np.zeros(0, int)]),
                        np.concatenate(cols or [np.zeros(0, int)]))), shape=(count, count)).tocsr()  # sums duplicates
    weight = agree.copy()
    weight.data = 1.0 / np.maximum(np.abs(weight.data), 1e-300)  # the most agreement (either sign) = the least weight
    tree = minimum_spanning_tree(weight)
    tree = tree + tree.T
    sign = np.ones(count)
    _, comp = connected_components(tree, directed=False)
    for c in np.unique(comp):
        root = int(np.flatnonzero(comp == c)[0])
        order, pred = breadth_first_order(tree, root, directed=False, return_predecessors=True)
        for node in order[1:]:
            sign[node] = sign[pred[node]] * (1.0 if agree[pred[node], node] >= 0 else -1.0)
    return sign


@dataclass
class TiledReconstruction:
    """Result of ``reconstruct_tiled``.

    mesh    : open3d.geometry.TriangleMesh (Screened Poisson on the union of the tiles' dense points)
    points  : (M, 3) float dense points, tile by tile;  normals : (M, 3) float unit normals
    labels  : (N,) int64 global index of a patch containing each input point (-1: none)
    tiles   : the Tiles;  history : per-tile records and totals;  summary : one line
    peak_rss: bytes, this process;  worker_peak_rss : bytes, largest Ray worker (0 for the local executor)
    """

    mesh: object
    points: np.ndarray
    normals: np.ndarray
    labels: np.ndarray
    tiles: Tiles
    history: dict = field(default_factory=dict)
    summary: str = ""
    peak_rss: float = 0.0
    worker_peak_rss: float = 0.0


def make_tiles(points, config: DGPConfig, *, tile_size: float | None = None, tile_points: int | None = None,
               halo: float | None = None, extent: float | None = None) -> tuple[Tiles, float, np.ndarray]:
    """Tiles of the points (N, 3) for ``config``, with the scan's extent and minimum.

    extent      : the length the patch radius and tile size are shares of (default: the points' bounding-box
                  diagonal; a reconstruction passes its scan layout's)
    tile_size   : side of grid cubes, share of the extent; or
    tile_points : about this many points per core (median splits); neither: one tile
    halo        : halo width in patch radii (default: config.padding + 1)
    """
    if tile_size is not None and tile_points is not None:
        raise InputError("give either a tile size or a number of points per tile, not both")
    if tile_size is not None and not (math.isfinite(tile_size) and tile_size > 0):
        raise InputError(f"tile size must be a positive fraction of the diagonal, got {tile_size!r}")
    if tile_points is not None and tile_points < config.min_points:
        raise InputError(f"points per tile must be >= min_points ({config.min_points}), got {tile_points}")
    factor = config.padding + 1 if halo is None else halo
    if not factor >= 0:
        raise InputError(f"halo must be >= 0 patch radii, got {halo!r}")
    lo, hi = bounds(points)
    diagonal = float(np.linalg.norm(hi - lo)) if extent is None else float(extent)
    if not diagonal > 0:
        raise InputError("all points are identical: there is no surface to fit")
    width = factor * config.radius * diagonal
    if tile_size is not None:
        tiles = grid_tiles(points, tile_size * diagonal, width)
    elif tile_points is not None:
        tiles = balanced_tiles(points, tile_points, width)
    else:
        tiles = Tiles(np.full((1, 3), -np.inf), np.full((1, 3), np.inf), width)
    if len(tiles) > max(1, len(points) // config.min_points):
        raise InputError(f"{len(tiles)} tiles for {len(points)} points: fewer than min_points ({config.min_points}) "
                         f"per tile; choose larger tiles")
    return tiles, diagonal, lo


def _jobs(points, normals, ids_of, tiles: Tiles, todo: list[int], make: Callable[[int, np.ndarray, np.ndarray,
          np.ndarray | None], TileJob]):
    """TileJobs of the tiles ``todo``, one at a time, each read from ``points`` in chunks (``ids_of``: the input's
    index of each row)."""
    for t in todo:
        ids, pts, nrm = [], [], []
        for start, p, n in _chunks(points, normals):
            sel = np.flatnonzero(tiles.in_tile(t, p))
            ids.append(ids_of[start + sel])
            pts.append(p[sel])
            if n is not None:
                nrm.append(n[sel])
        yield make(t, np.concatenate(ids), np.concatenate(pts), np.concatenate(nrm) if nrm else None)


def reconstruct_tiled(
    points,
    normals=None,
    config: DGPConfig | None = None,
    *,
    colors=None,
    tile_size: float | None = None,
    tile_points: int | None = None,
    halo: float | None = None,
    seed: int = 0,
    device: str = "auto",
    executor: LocalExecutor | RayExecutor | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> TiledReconstruction:
    """Reconstruct a scan tile by tile (see the module's docstring) and mesh the union.

    points      : (N, 3) float array, in memory or memory-mapped (``io.map_points``)
    normals     : (N, 3) float array or None (estimated per tile, orientations made consistent across tiles)
    config      : DGPConfig of every tile's fit (default preset when None)
    colors      : (N, 3) float in [0, 1] or None: carried to the mesh's vertices
    tile_size / tile_points / halo : the tiling (``make_tiles``); neither size nor points: a single tile
    seed        : same seed ⇒ same mesh, however the run was interrupted and resumed
    executor    : LocalExecutor (default) or RayExecutor; closing it is the caller's business
    run_dir     : folder for checkpoints (settings.json, tiles/, patches.npz); ``resume``: continue the run in it
    progress    : (stage, step, total, info) callback: stage "tiles" (info: running, retried), then "mesh"

    Long: the run's life in order (tiles, checkpoints and resume, executor, orientation, merge, mesh), each step
    short; splitting it would pass a dozen locals between the pieces.
    """
    cfg = config or DGPConfig()
    cfg.validate()
    if normals is not None and (np.shape(normals) != np.shape(points)):
        raise InputError(f"normals must have the points' shape {np.shape(points)}, got {np.shape(normals)}")
    if np.ndim(points) != 2 or np.shape(points)[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {np.shape(points)}")
    if resume and run_dir is None:
        raise InputError("resume needs a run_dir")
    executor = executor or LocalExecutor()
    n = len(points)
    world = check_points(np.concatenate([p for _, p, _ in _chunks(points)]) if n else np.zeros((0, 3)))[0]
    colors = check_colors(colors, n)
    scan = scan_layout(world, cfg)
    cfg = fit_config(world, scan, cfg)
    kept = np.flatnonzero(scan.kept)
    local = world[kept] - scan.center
    local_normals = None if normals is None else np.concatenate([q for _, _, q in _chunks(points, normals)])[kept]
    tiles, diagonal, origin = make_tiles(local, cfg, tile_size=tile_size, tile_points=tile_points, halo=halo,
                                         extent=scan.diagonal)
    count = len(tiles)
    settings = {"format": 1, "input": digest(points, normals), "config": dataclasses.asdict(cfg), "seed": seed,
                "tiling": {"tile_size": tile_size, "tile_points": tile_points, "halo": halo}}
    rd = RunDir(run_dir, settings, resume=resume) if run_dir is not None else None
    results: dict[int, dict] = {}
    if rd is not None and resume:
        for t in rd.finished(count):
            results[t] = rd.load(t)
        log.info("resuming: %d of %d tiles already done", len(results), count)
    todo = [t for t in range(count) if t not in results]
    log.info("%d tiles (halo %.4g, diagonal %.4g); %d to run on %s", count, tiles.halo, diagonal, len(todo),
             executor.name)

    def make(t, ids, pts, nrm):  # a single tile is exactly the untiled fit (its own voxel grid, its own seed)
        return TileJob(t, ids, pts, nrm, tiles.lo[t], tiles.hi[t], cfg, tile_seed(seed, t, count), diagonal,
                       origin if count > 1 else None, device)

    def report():
        if progress is not None:
            progress("tiles", len(results), count, {"running": executor.running, "retried": executor.retried})

    start = time.perf_counter()
    report()
    for t, result in executor.run(run_tile, _jobs(local, local_normals, kept, tiles, todo, make), tick=report):
        if rd is not None:
            rd.save(t, result)
        results[t] = result
        report()
    fit_seconds = time.perf_counter() - start

    # merge, in tile order (the same whatever order the tiles finished in)
    sign = _orientation(results, count, n) if normals is None else np.ones(count)
    dense_p = np.concatenate([results[t]["points"] for t in range(count)])
    dense_n = np.concatenate([results[t]["normals"] * sign[t] for t in range(count)])
    if not len(dense_p):
        raise InputError("no tile had enough points to fit a patch")
    offsets = np.cumsum([0] + [int(results[t]["n_patches"]) for t in range(count)])
    labels = np.full(n, -1, np.int64)
    best = np.full(n, np.inf)
    for t in range(count):
        r = results[t]
        closer = r["label_dist"] < best[r["label_ids"]]
        ids = r["label_ids"][closer]
        labels[ids], best[ids] = offsets[t] + r["label_patch"][closer], r["label_dist"][closer]
    del best
    if cfg.mesh_points == "fitted":
        mesh_p = np.concatenate([results[t]["fitted_points"] for t in range(count)])
        mesh_n = np.concatenate([results[t]["fitted_normals"] * sign[t] for t in range(count)])
    else:
        mesh_p, mesh_n = dense_p, dense_n
    mesh, report, ending = finish(mesh_p, mesh_n, scan, cfg, cfg.radius * diagonal, world, colors, dense=dense_p,
                                  progress=progress)
    if rd is not None:
        save_patch_labels(rd.path / PATCH_LABELS_FILE, world.astype(np.float32), labels)
    worker_rss = max([results[t]["peak_rss"] for t in todo], default=0.0) if isinstance(executor, RayExecutor) \
        else 0.0
    flipped = int((sign < 0).sum())
    summary = (f"{count} tiles ({len(todo)} run, {count - len(todo)} resumed), {int(offsets[-1])} patches, "
               f"{flipped} tile orientations flipped" + ending)
    history = {**report, "settings": settings, "tiles": count, "run": len(todo), "fit_seconds": fit_seconds,
               "executor": executor.name, "retried": executor.retried, "flipped": flipped,
               "per_tile": [{"tile": t, "seconds": float(results[t]["seconds"]), "patches": int(results[t]["n_patches"]),
                             "points": int(len(results[t]["normal_ids"])),
                             "history": json.loads(str(results[t]["history"]))} for t in range(count)],
               "summary": summary}
    return TiledReconstruction(mesh, dense_p + scan.center, dense_n, labels, tiles, history, summary, _peak_rss(),
                               worker_rss)
