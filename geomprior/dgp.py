"""Deep Geometric Prior: noisy points -> one small MLP per patch (all patches batched) -> dense oriented points -> mesh.

Pipeline (Williams et al. 2019, batched):
1. cover the points with patches, each normalised to its own frame (``patches.cover``);
2. local fit: φ_p : [0,1]² -> R³ per patch, matched to the patch's points by optimal transport; the run stops when
   the held-out points' score stops falling (``fit.EarlyStopping``), every patch at its best weights;
3. consistency (optional): every patch refit to the mean of all patch predictions matched to each point;
4. output: those means (or φ_p on a dense uv grid), normals ∂φ/∂u × ∂φ/∂v oriented by the patch frames (made
   consistent along a maximum spanning tree); ``mesh.mesh_surface``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from .errors import InputError
from .device import pick_device, training_dtype
from .fit import EarlyStopping, FitResult, Progress, fit
from .nets import BatchedMLP
from .mesh import mesh_surface
from .metrics import scan_quality
from .normals import estimate_normals
from .patches import RADIUS, Patches, bbox_diagonal, cover
from .presets import PRECISIONS, check_preset
from .scan import SPACING_K, Layout, check_colors, check_points, find_inliers, layout, quiet_radius
from .transport import assign, sinkhorn_divergence, trimmed_weights
from .uv import blue_noise

log = logging.getLogger(__name__)

PLANAR = math.sqrt(math.pi) / 2  # the planar skip maps [0,1]² onto a square of the unit disc's area
MIN_WEIGHT = 1e-3  # the consensus weight of a patch's farthest members: a point only such members cover still moves

# the stopping rule's basin (DGPConfig.tolerance) that suits each validation score (DGPConfig.val_score)
SCORE_TOLERANCE = {"surface": 0.0, "transport": 0.01}


@dataclass(frozen=True)
class DGPConfig:
    """Settings of a reconstruction. Use ``DGPConfig.preset(name)`` and ``dataclasses.replace`` to change fields."""

    # patches
    radius: float = RADIUS  # patch radius, share of the scan's extent (geomprior.scan: stray clusters set aside)
    adapt_radius: bool = True  # smaller patches on a quiet scan (geomprior.scan.quiet_radius); False: radius as set
    padding: float = 1.3  # members lie within padding × radius of the centre
    min_points: int = 16  # fewer members: a patch takes its nearest neighbours; a mesh piece nearest to as many stays
    max_points: int = 384  # members per patch at most (the nearest ones)
    # drop input points off the surface the rest form (see find_inliers: too few neighbours within a patch's reach,
    # or too far off the quadric through them): patches built on them float off the surface
    drop_outliers: bool = True
    # small clusters out of a patch's reach of the surface (stray returns, geomprior.scan): set aside, or objects too
    small_clusters: Literal["drop", "keep"] = "drop"
    # normals for thin parts (see estimate_normals: a plate's two sides otherwise get oriented alike, its patches
    # straddle it); "auto": both estimates, the thin-part one when they disagree widely
    thin_parts: bool | Literal["auto"] = "auto"
    # turn the normals outward by where they are seen from (see orient_outward); "auto": if the scan encloses a volume
    outward: bool | Literal["auto"] = "auto"
    # networks
    widths: tuple[int, ...] = (64, 64, 64)  # hidden layer widths of each patch MLP (the original: 128,256,512,512)
    planar_skip: bool = True  # φ = MLP + a flat square in the patch plane (start flat, avoid folds)
    lr: float = 2e-3  # Adam learning rate
    # float type of the training passes (geomprior.device.training_dtype; weights and evaluations stay float32)
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # correspondences / loss
    loss: Literal["assignment", "sinkhorn"] = "assignment"  # MSE to matched points, or the Sinkhorn divergence
    # exact one-to-one matching, or the hardened Sinkhorn plan (the original's; on a CPU slower and no better)
    matching: Literal["exact", "sinkhorn"] = "exact"
    refresh_every: int = 40  # recompute correspondences every this many steps
    loss_trim: float = 0.0  # > 0: pairs matched beyond √loss_trim × the patch median distance leave the loss
    blur: float = 0.01  # Sinkhorn blur (ε = blur²), in patch units (unit ball)
    scaling: float = 0.7  # Sinkhorn ε-scaling factor (0.5 fast, 0.9 accurate)
    # local fit and early stopping
    max_epochs: int = 400  # cap on local-fit steps (full batch: one step = one epoch)
    early_stop: Literal["run", "item", "none"] = "run"  # stop the run, freeze patches one by one, or never
    holdout: float = 0.1  # share of each patch's points held out for validation
    # validation score: "surface" = each held-out point's squared offset from the fitted surface over its own
    # position in the patch plane (see _surface_offset); "transport" = the former score, the matching cost of the
    # held-out points, which rises while the surface still nears the truth (BENCHMARKS.md, ablations)
    val_score: Literal["surface", "transport"] = "surface"
    # "surface" measures along normals averaged over this many² lattice cells (odd; see _surface_offset)
    val_normal_cells: int = 5
    eval_every: int = 10  # validation interval in steps
    patience: int = 4  # evaluations outside the validation minimum's basin before stopping
    smoothing: float = 0.5  # EMA on the validation curve
    # basin: within this share of (peak − minimum) of the minimum, the latest weights in it kept (SCORE_TOLERANCE)
    tolerance: float = SCORE_TOLERANCE["surface"]
    min_epochs: int = 50  # no stop before this step
    # consistency stage
    consistency: bool = True  # refit all patches to the mean of overlapping predictions
    consistency_epochs: int = 30  # steps of the consistency refit
    consistency_lr: float = 1e-4  # its Adam learning rate: small, the fitted patches only need a nudge
    # output. The points the mesh is made from: "fitted" = the fit's input points, each moved to the mean of the
    # patch predictions matched to it; "dense" = every patch's uv grid (which can bridge a gap between two legs)
    mesh_points: Literal["fitted", "dense"] = "fitted"
    # that mean: "partition" weighs each prediction 1 − |x|², x the point in the patch's unit ball; "mean": alike
    blend: Literal["partition", "mean"] = "partition"
    grid: int = 12  # dense output: grid × grid uv samples per patch
    grid_margin: float = 0.1  # ... on [margin, 1 − margin]²
    poisson_depth: int = 9  # Screened Poisson octree depth
    edge_filter: int = 5  # mesh.keep_edges iterations: the noise left in the mesh out, its edges kept (0: off)
    max_cell: float = 0.2  # mesh cells ≤ this × patch radius (a sparse scan's Poisson mesh: facets, chords inside)
    fidelity: float = 1.0  # > 0: mesh moved onto its points, offsets averaged over this × radius (follow_points)
    taubin: int = 2  # last, steps of Taubin smoothing: the roughness left at a triangle's scale out (taubin_smooth)
    trim: float = 0.2  # an open mesh ends trim × patch radius beyond the dense points (0.5: past a sheet's edges)
    reach: float = 0.5  # closed="auto" measures the closed surface beyond reach × patch radius of the dense points
    # ... both at least gap × the scan's local spacing (8th nearest input point): a sparse scan's gaps are no holes
    gap: float = 1.0
    # True: every object's mesh is watertight; False: open, trimmed; "auto": closed where the points enclose a volume
    # (at most mesh.CLOSED_SHARE of the closed surface beyond the reach distance)
    closed: bool | Literal["auto"] = "auto"
    # "manifold": each object's Poisson surface re-extracted as an edge-manifold mesh (mesh.mesh_surface);
    # "poisson": open3d's Poisson mesh of all dense points as it comes, trimmed (the former output; an ablation)
    surface: Literal["manifold", "poisson"] = "manifold"

    @classmethod
    def preset(cls, name: str) -> "DGPConfig":
        """Named settings: "fast", "default" or "quality"."""
        check_preset(name)
        if name == "fast":
            return cls(widths=(64, 64), lr=2e-3, refresh_every=30, patience=3, consistency_epochs=10, grid=10,
                       poisson_depth=8)
        if name == "quality":
            return cls(widths=(128, 128, 128), lr=1e-3, refresh_every=10, patience=6, max_epochs=800,
                       consistency_epochs=60, grid=14)
        return cls()

    def stopper(self, mode: str | None = None) -> EarlyStopping:
        """The early-stopping rule of the local fit (``mode``: this config's ``early_stop`` unless given; "run"
        replays a recorded curve as a run-wide stop would)."""
        return EarlyStopping(mode=mode or self.early_stop, patience=self.patience, smoothing=self.smoothing,
                             tolerance=self.tolerance, warmup=self.min_epochs)

    def validate(self) -> None:
        """Raise InputError naming the first bad field."""
        checks = {
            "radius": 0 < self.radius <= 1, "padding": self.padding >= 1, "min_points": self.min_points >= 3,
            "max_points": self.max_points >= self.min_points, "max_epochs": self.max_epochs >= 0,
            "holdout": 0 <= self.holdout < 0.5, "lr": self.lr > 0, "grid": self.grid >= 2,
            "refresh_every": self.refresh_every >= 1, "eval_every": self.eval_every >= 1, "max_cell": self.max_cell > 0,
            "trim": self.trim > 0, "reach": self.reach > 0, "gap": self.gap >= 0, "tolerance": self.tolerance >= 0,
            "min_epochs": self.min_epochs >= 0, "consistency_epochs": self.consistency_epochs >= 0,
            "edge_filter": self.edge_filter >= 0, "fidelity": self.fidelity >= 0, "taubin": self.taubin >= 0,
            "val_normal_cells": self.val_normal_cells in range(1, VAL_GRID+1, 2), "loss_trim": self.loss_trim >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"invalid setting {bad[0]}={getattr(self, bad[0])!r}")
        for name, valid in (("loss", ("assignment", "sinkhorn")), ("matching", ("exact", "sinkhorn")),
                            ("early_stop", ("run", "item", "none")), ("val_score", ("surface", "transport")),
                            ("thin_parts", (True, False, "auto")), ("outward", (True, False, "auto")),
                            ("small_clusters", ("drop", "keep")), ("closed", (True, False, "auto")),
                            ("precision", PRECISIONS), ("surface", ("manifold", "poisson")),
                            ("mesh_points", ("fitted", "dense")), ("blend", ("partition", "mean"))):
            if getattr(self, name) not in valid:
                raise InputError(f"invalid {name} {getattr(self, name)!r}; valid: {', '.join(map(str, valid))}")


@dataclass
class Reconstruction:
    """Result of ``reconstruct``.

    mesh    : open3d.geometry.TriangleMesh
    points  : (M, 3) float dense points on the fitted patches
    normals : (M, 3) float their unit normals (Jacobian cross products, oriented)
    history : JSON-serialisable record of the run (settings, per-evaluation losses, stop step and reason)
    summary : one line saying where the fit stopped and why
    """

    mesh: object
    points: np.ndarray
    normals: np.ndarray
    history: dict = field(default_factory=dict)
    summary: str = ""
    patches: Patches | None = None


class _PatchSurfaces:
    """φ_p(uv) = MLP_p(uv) (+ planar square) for all patches at once, in patch-local coordinates."""

    def __init__(self, n: int, widths, planar: bool, gen: torch.Generator, device):
        self.mlp = BatchedMLP(n, 2, 3, widths, last_scale=0.1 if planar else 1.0, generator=gen, device=device)
        self.planar = planar

    def __call__(self, uv: torch.Tensor) -> torch.Tensor:
        out = self.mlp(uv)
        if self.planar:
            out = out + torch.cat([PLANAR * (2 * uv - 1), torch.zeros_like(uv[..., :1])], -1)
        return out

    def with_normals(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """φ(uv) (P, M, 3) and unit ∂φ/∂u × ∂φ/∂v (P, M, 3)."""
        with torch.enable_grad():
            uv = uv.detach().requires_grad_(True)
            y = self(uv)
            jac = [torch.autograd.grad(y[..., c].sum(), uv, retain_graph=c < 2)[0] for c in range(3)]
        jac = torch.stack(jac, -2)  # (P, M, 3, 2): rows = components, columns = d/du, d/dv
        nrm = torch.linalg.cross(jac[..., 0], jac[..., 1], dim=-1)
        return y.detach(), nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-12)


VAL_GRID = 16  # the surface score compares held-out points with a VAL_GRID × VAL_GRID uv lattice over [0, 1]²


@torch.no_grad()
def _surface_offset(surf: _PatchSurfaces, grid, target, mask, cells: int) -> torch.Tensor:
    """Per-patch mean squared offset (P,) of the masked target points (P,K,3) from the patch surfaces.

    ``grid``: (P, n², 2) a square uv lattice (``_grid``). Each point is compared with the lattice sample nearest to it
    in the patch plane (x, y), along the lattice's normal there (cross product of its differences, averaged over
    ``cells`` × ``cells`` lattice cells): the surface's offset over the point's own position, to first order.
    Nearest in the plane, not in space: a surface crumpled into the noise comes closer in space to every point (that
    one-sided distance keeps falling), but not over the points' own positions; and along averaged normals: wrinkles
    tilt each cell's normal, shrinking the offset along it, while over several cells they cancel and the slope
    stays. So for held-out points this score is the noise variance plus the squared error of the surface there, and
    it rises when the surface starts to fit the noise.
    """
    y = surf(grid)
    n = math.isqrt(y.shape[1])
    du, dv = torch.gradient(y.reshape(len(y), n, n, 3), dim=(1, 2))
    normal = F.normalize(torch.linalg.cross(du, dv, dim=-1).permute(0, 3, 1, 2), dim=1, eps=1e-12)
    if cells > 1:
        normal = F.normalize(F.avg_pool2d(normal, cells, 1, cells // 2, count_include_pad=False), dim=1, eps=1e-12)
    normal = normal.permute(0, 2, 3, 1).reshape(y.shape)
    near = torch.cdist(target[..., :2].contiguous(), y[..., :2].contiguous()).argmin(2)[..., None].expand(-1, -1, 3)
    offset = ((target - torch.gather(y, 1, near)) * torch.gather(normal, 1, near)).sum(-1)
    m = mask.float()
    return (offset**2 * m).sum(1) / m.sum(1).clamp_min(1)


def _matched_sq_dist(pred, target, mask) -> torch.Tensor:
    """Per-patch mean squared distance between pred (P,K,3) and target (P,K,3) under exact one-to-one matching."""
    idx = assign(pred, target, mask, method="exact")
    matched = torch.gather(target, 1, idx[..., None].expand(-1, -1, 3))
    d = ((pred - matched) ** 2).sum(-1) * mask
    return d.sum(1) / mask.sum(1).clamp_min(1)


def _local_fit(
    surf: _PatchSurfaces, uv, target, train, val, cfg: DGPConfig, *, stage: str, epochs: int, lr: float,
    stopper: EarlyStopping, progress: Progress | None, monitor: Callable[[int], dict] | None,
) -> FitResult:
    """Fit all patch surfaces to ``target`` (P,K,3) on the ``train`` slots; validate on the ``val`` slots."""
    # the steps leave out the slots past the last training one (held out or padding in every patch)
    cols = int(train.any(0).nonzero().max()) + 1 if bool(train.any()) else 1
    uv_t, target_t, train_t = uv[:, :cols], target[:, :cols], train[:, :cols]
    w_train = train_t.float() / train_t.sum(1, keepdim=True).clamp_min(1)
    dtype = training_dtype(cfg.precision, target.device)
    matched = {"idx": None}

    def refresh(step):
        with torch.no_grad():
            matched["idx"] = assign(surf(uv_t), target_t, train_t, method=cfg.matching, blur=cfg.blur,
                                    scaling=cfg.scaling)

    def predict(at):
        with torch.autocast(target.device.type, dtype=dtype, enabled=dtype != torch.float32):
            return surf(at).float()

    def loss_fn():
        if cfg.loss == "sinkhorn":
            return sinkhorn_divergence(predict(uv_t), target_t, train_t, blur=cfg.blur, scaling=cfg.scaling)
        sq = ((predict(uv_t) - torch.gather(target_t, 1, matched["idx"][..., None].expand(-1, -1, 3))) ** 2).sum(-1)
        return (sq * (trimmed_weights(sq, train_t, cfg.loss_trim) if cfg.loss_trim > 0 else w_train)).sum(1)

    has_val = bool(val.any()) and stopper.mode != "none"
    if has_val:  # the held-out slots first: (P, V) with V the most any patch holds out
        first = torch.argsort((~val).to(torch.uint8), dim=1, stable=True)[:, : int(val.sum(1).max())]
        val_uv, val_mask = torch.gather(uv, 1, first[..., None].expand(-1, -1, 2)), torch.gather(val, 1, first)
        val_target = torch.gather(target, 1, first[..., None].expand(-1, -1, 3))
        val_grid = _grid(VAL_GRID, 0.0, target.device).expand(len(target), -1, -1)

    def validate():
        if cfg.val_score == "surface":
            return _surface_offset(surf, val_grid, val_target, val_mask, cfg.val_normal_cells)
        return _matched_sq_dist(surf(val_uv), val_target, val_mask)

    return fit(list(surf.mlp.parameters()), loss_fn, max_steps=epochs, lr=lr,
               validate=validate if has_val else None, eval_every=cfg.eval_every, stopper=stopper,
               refresh=refresh if cfg.loss == "assignment" else None, refresh_every=cfg.refresh_every,
               monitor=monitor, progress=progress, stage=stage)


@dataclass
class DenseOutput:
    """Result of ``fit_dense``: the fitted patches of a region evaluated densely, before meshing.

    points        : (M, 3) float dense points on the fitted patches
    normals       : (M, 3) float their unit normals (Jacobian cross products, oriented)
    patch         : (M,) int the patch each dense point comes from
    fitted_points : (F, 3) float the fit's points (the inliers), each the mean of the patch predictions matched to
                    it after the local fit (weighted by ``config.blend``); fitted_normals: (F, 3) their unit
                    normals, the mean of those predictions' Jacobian normals
    patches       : the covering (``patches.Patches``)
    input_normals : (N, 3) float the input points' normals the run used (given, or estimated and oriented; zero
                    for dropped outliers)
    inliers       : (N,) bool the input points the fit used (``config.drop_outliers``)
    history       : JSON-serialisable record of the run
    summary       : one line saying where the fit stopped and why
    """

    points: np.ndarray
    normals: np.ndarray
    patch: np.ndarray
    fitted_points: np.ndarray
    fitted_normals: np.ndarray
    patches: Patches
    input_normals: np.ndarray
    inliers: np.ndarray
    history: dict
    summary: str


def reconstruct(
    points,
    normals=None,
    config: DGPConfig | None = None,
    *,
    colors=None,
    device: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    monitor: Callable[[np.ndarray, np.ndarray], dict] | None = None,
) -> Reconstruction:
    """Reconstruct a clean mesh from a noisy point cloud.

    points  : (N, 3) float (any offset: the fit runs about the scan's centre, in float64 until then)
    normals : (N, 3) float, optional; estimated and oriented (open3d) when absent
    config  : DGPConfig (default preset when None)
    colors  : (N, 3) float in [0, 1], optional; carried to the mesh's vertices (from the nearest points)
    device  : "auto" | "cpu" | "cuda"
    seed    : same seed ⇒ same result (on the same device and library versions)
    progress: (stage, step, total, info) callback for progress bars
    monitor : (dense points (M,3), dense normals (M,3)) -> dict, called at every local-fit evaluation; its numbers
              go into the history (e.g. distance to a known true surface, for studies; never used to stop)

    First the scan's layout (``geomprior.scan.layout``): small clusters out of reach of the scanned surface are set
    aside, and the patch radius is a share of the extent of what is left. The history's "quality" holds the
    ground-truth-free report (``geomprior.metrics.scan_quality``) and what was set aside.

    Scans too large for one fit: ``geomprior.tiling.reconstruct_tiled`` runs ``fit_dense`` tile by tile.
    """
    cfg = config or DGPConfig()
    cfg.validate()
    pts, nrm = check_points(points, normals)
    colors = check_colors(colors, len(pts))
    scan = scan_layout(pts, cfg)
    cfg = fit_config(pts, scan, cfg)
    kept = np.flatnonzero(scan.kept)
    shift = (lambda p, n: monitor(p + scan.center, n)) if monitor is not None else None
    out = fit_dense(pts[kept] - scan.center, None if nrm is None else nrm[kept], cfg, device=device, seed=seed,
                    progress=progress, monitor=shift, diagonal=scan.diagonal)
    mesh, report, summary = finish(*mesh_points(out, cfg), scan, cfg, out.patches.radius, pts, colors,
                                   dense=out.points, progress=progress)
    patches = dataclasses.replace(out.patches, index=kept[out.patches.index],
                                  centers=out.patches.centers + scan.center, origin=out.patches.origin + scan.center)
    summary = out.summary + summary
    history = {**out.history, **report, "summary": summary}
    return Reconstruction(mesh, out.points + scan.center, out.normals, history, summary, patches)


def mesh_points(out: DenseOutput, cfg: DGPConfig) -> tuple[np.ndarray, np.ndarray]:
    """The oriented points (M, 3), (M, 3) a fit's mesh is made from (``cfg.mesh_points``)."""
    return (out.fitted_points, out.fitted_normals) if cfg.mesh_points == "fitted" else (out.points, out.normals)


def scan_layout(points: np.ndarray, cfg: DGPConfig) -> Layout:
    """The layout of a scan (N, 3) float64 for a fit with ``cfg`` (``geomprior.scan.layout``)."""
    return layout(points, radius=cfg.radius, padding=cfg.padding, min_points=cfg.min_points,
                  keep_small=cfg.small_clusters == "keep")


def fit_config(points: np.ndarray, scan: Layout, cfg: DGPConfig) -> DGPConfig:
    """``cfg`` with the patch radius the noise of the points ``scan`` keeps calls for (``geomprior.scan.quiet_radius``;
    ``cfg.adapt_radius`` False: ``cfg`` as it is), fixed from then on."""
    if not cfg.adapt_radius:
        return cfg
    radius = quiet_radius(points[scan.kept], cfg.radius, scan.diagonal)
    if radius < cfg.radius:
        log.info("little noise: patch radius %.3g of the extent instead of %.3g", radius, cfg.radius)
    return dataclasses.replace(cfg, radius=radius, adapt_radius=False)


def finish(mesh_pts: np.ndarray, mesh_nrm: np.ndarray, scan: Layout, cfg: DGPConfig, radius: float,
           points: np.ndarray, colors: np.ndarray | None = None, *, dense: np.ndarray | None = None,
           progress: Progress | None = None) -> tuple[object, dict, str]:
    """The mesh of a fit and its report: what every reconstruction does after its fit.

    mesh_pts, mesh_nrm : (M, 3) the oriented points the mesh is made from (``mesh_points``), about ``scan.center``
    scan   : the scan's layout;  radius : the patch radius (absolute)
    points : (N, 3) the whole scan (world coordinates);  colors : (N, 3) in [0, 1] or None
    dense  : (D, 3) the fit's dense points, about ``scan.center``: with ``cfg.mesh_points`` "fitted", the open
             mesh's trim and the closed-or-open decision measure from them (as dense as the uv grid, where the
             fitted points are only as dense as the scan); unused with "dense" (they are ``mesh_pts`` then)

    Each object of the layout is meshed on its own (``mesh.mesh_surface``: closed or open by ``cfg.closed``). Returns
    the mesh in world coordinates (vertex colours from the 4 nearest kept points when ``colors`` is given), the
    history entries "scan" (the layout), "mesh" (per object) and "quality" (``metrics.scan_quality`` and the points
    set aside), and the end of the run's summary line.
    """
    if progress is not None:
        progress("mesh", 0, 1, {"points": len(mesh_pts)})
    kept = np.flatnonzero(scan.kept)
    tree = cKDTree(points[kept] - scan.center)

    def object_of(p):
        return scan.objects[kept][tree.query(p, workers=-1)[1]] if len(p) else None

    support = None if dense is None or cfg.mesh_points == "dense" else (dense, object_of(dense))
    reach, trim = cfg.reach * radius, cfg.trim * radius
    if cfg.gap > 0 and cfg.surface == "manifold" and len(kept) >= SPACING_K:
        local = cfg.gap * tree.query(mesh_pts if support is None else dense, k=[SPACING_K], workers=-1)[0][:, 0]
        reach, trim = np.maximum(reach, local), np.maximum(trim, local)
    mesh, pieces = mesh_surface(mesh_pts, mesh_nrm, objects=object_of(mesh_pts), depth=cfg.poisson_depth,
                                closed=cfg.closed, max_distance=reach, trim=trim, min_area=math.pi * radius**2,
                                min_points=cfg.min_points, edge_filter=cfg.edge_filter, support=support,
                                max_cube=cfg.max_cell * radius, fidelity=cfg.fidelity * radius, taubin=cfg.taubin,
                                manifold=cfg.surface == "manifold")
    if colors is not None and len(mesh.vertices):
        import open3d as o3d

        _, near = tree.query(np.asarray(mesh.vertices), k=min(4, len(kept)), workers=-1)
        mesh.vertex_colors = o3d.utility.Vector3dVector(colors[kept][near.reshape(len(near), -1)].mean(1))
    mesh.translate(scan.center)
    quality = {**scan_quality(mesh, points, spacing=scan.spacing), "set_aside": int((~scan.kept).sum())}
    if progress is not None:
        progress("mesh", 1, 1, {"points": len(mesh_pts), "triangles": len(mesh.triangles)})
    kinds = sorted({"closed" if p["closed"] else "open" for p in pieces}) if cfg.surface == "manifold" else ["Poisson"]
    summary = (f"; {len(mesh_pts)} {cfg.mesh_points} points -> {'/'.join(kinds) or 'empty'} mesh with "
               f"{len(mesh.triangles)} triangles, {quality['components']} component(s)")
    if quality["set_aside"]:
        summary = f"; {quality['set_aside']} points in {len(scan.set_aside)} far clusters set aside" + summary
    return mesh, {"scan": scan.summary(), "mesh": pieces, "quality": quality}, summary


def prepare_points(points, normals=None, config: DGPConfig | None = None, *, diagonal: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The points and normals a fit uses: checked, outliers dropped (``config.drop_outliers``), normals estimated
    when not given (``config.thin_parts``). Returns (points (M, 3), unit normals (M, 3), inliers (N,) bool,
    whether the normals were given)."""
    cfg = config or DGPConfig()
    pts, nrm = check_points(points, normals)
    given = nrm is not None
    inliers = np.ones(len(pts), dtype=bool)
    radius = cfg.radius * (diagonal or bbox_diagonal(pts))
    if cfg.drop_outliers:
        inliers = find_inliers(pts, cfg.padding * radius, cfg.min_points)
        pts, nrm = pts[inliers], (None if nrm is None else nrm[inliers])
    if nrm is None:
        nrm = estimate_normals(pts, scale=radius, thin_parts=cfg.thin_parts, outward=cfg.outward)
    return pts, nrm, inliers, given


def fit_dense(
    points,
    normals=None,
    config: DGPConfig | None = None,
    *,
    device: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    monitor: Callable[[np.ndarray, np.ndarray], dict] | None = None,
    diagonal: float | None = None,
    origin: np.ndarray | None = None,
) -> DenseOutput:
    """Cover the points with patches, fit them (local fit, consistency) and evaluate them densely; no mesh.

    points, normals, config, device, seed, progress, monitor: as in ``reconstruct``
    diagonal : the length ``config.radius`` is a fraction of (default: the points' bounding-box diagonal)
    origin   : (3,) corner of the patch centres' voxel grid (default: the points' minimum)

    A tile of a larger scan passes the scan's ``diagonal`` and ``origin``, so its patches are the ones the whole
    scan gets there.
    """
    cfg = config or DGPConfig()
    cfg.validate()
    dev = pick_device(device)
    pts, nrm, inliers, given_normals = prepare_points(points, normals, cfg, diagonal=diagonal)
    n_input = len(inliers)
    patches = cover(pts, radius=cfg.radius, padding=cfg.padding, min_points=cfg.min_points,
                    max_points=cfg.max_points, normals=nrm, diagonal=diagonal, origin=origin)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    # shuffle each patch's members so that the last `holdout` share of its real slots is the validation set
    counts = patches.counts
    keys = np.where(patches.mask, rng.random(patches.mask.shape), np.inf)
    order = np.argsort(keys, axis=1)
    patches.index = np.take_along_axis(patches.index, order, 1)
    n_val = np.where(counts >= 2 * cfg.min_points, np.floor(cfg.holdout * counts), 0).astype(int)
    slot = np.arange(patches.mask.shape[1])[None]
    mask = torch.from_numpy(patches.mask).to(dev)
    train = torch.from_numpy(slot < (counts - n_val)[:, None]).to(dev)
    val = mask & ~train
    target = torch.from_numpy(patches.to_local(pts)).float().to(dev)
    uv = blue_noise(counts, width=patches.mask.shape[1], seed=seed).to(dev)
    surf = _PatchSurfaces(len(patches), cfg.widths, cfg.planar_skip, gen, dev)
    grid = _grid(cfg.grid, cfg.grid_margin, dev).expand(len(patches), -1, -1)
    tree = cKDTree(pts)

    def dense():
        return _dense_output(surf, grid, patches, nrm, tree)

    fit_monitor = (lambda step: monitor(*dense()[:2])) if monitor is not None else None

    local = _local_fit(surf, uv, target, train, val, cfg, stage="local fit", epochs=cfg.max_epochs, lr=cfg.lr,
                       stopper=cfg.stopper(), progress=progress, monitor=fit_monitor)
    history = {"config": dataclasses.asdict(cfg), "device": str(dev), "seed": seed, "matching": cfg.matching,
               "patches": len(patches), "points": n_input, "outliers_dropped": int(n_input - len(pts)),
               "normals_given": given_normals,
               "local": {**local.history, "steps": local.steps, "reason": local.reason,
                         "best_step": local.best_step}}
    summary = f"local fit: {local.reason}; {len(patches)} patches"
    if n_input > len(pts):
        summary = f"{n_input - len(pts)} outlying points dropped; " + summary

    fitted_pts, fitted_nrm = _consensus(surf, uv, target, mask, patches, pts, nrm, cfg.blend)
    if cfg.consistency and cfg.consistency_epochs > 0:
        target_c = torch.from_numpy(patches.to_local(fitted_pts)).float().to(dev)
        cons = _local_fit(surf, uv, target_c, mask, torch.zeros_like(mask), cfg, stage="consistency",
                          epochs=cfg.consistency_epochs, lr=cfg.consistency_lr, stopper=EarlyStopping(mode="none"),
                          progress=progress, monitor=None)
        history["consistency"] = {**cons.history, "steps": cons.steps}
        summary += f"; consistency refit {cons.steps} steps"

    dense_pts, dense_nrm, pid = dense()
    history["summary"] = summary
    ids = np.flatnonzero(inliers)  # patch members and normals refer to the input points again
    patches.index = ids[patches.index]
    input_normals = np.zeros((n_input, 3))
    input_normals[ids] = nrm
    return DenseOutput(dense_pts, dense_nrm, pid, fitted_pts, fitted_nrm, patches, input_normals, inliers, history,
                       summary)


def _consensus(surf: _PatchSurfaces, uv, target, mask, patches: Patches, pts: np.ndarray, normals: np.ndarray,
               blend: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) world points: each point's weighted mean over the patch predictions matched to it (one-to-one per
    patch), and (N, 3) unit normals: the weighted mean of those predictions' Jacobian normals, each turned to the
    point's side (``normals``); a point no patch matched keeps both. Weights (``blend``, see DGPConfig): "partition"
    1 − |x|², x the point in the patch's unit ball (``target``): a fit is least constrained toward its edge."""
    y, n = surf.with_normals(uv)
    idx = assign(y, target, mask, method="exact")
    owner = np.take_along_axis(patches.index, idx.cpu().numpy(), 1)
    m = patches.mask
    x = torch.take_along_dim(target, idx[..., None], 1).cpu().double().numpy()[m]  # each prediction's point, local
    r2 = np.einsum("mi,mi->m", x, x)
    weight = (np.maximum(1.0 - r2, MIN_WEIGHT) if blend == "partition" else np.ones_like(r2))[:, None]
    world = patches.to_world(y.cpu().numpy().astype(np.float64))[m]
    turned, _ = _world_normals(patches, n.cpu().numpy().astype(np.float64), m, normals[owner[m]])
    hits = np.bincount(owner[m], weight[:, 0], minlength=len(pts))[:, None]
    total, direction = np.zeros_like(pts), np.zeros_like(pts)
    np.add.at(total, owner[m], weight * world)
    np.add.at(direction, owner[m], weight * turned)
    length = np.linalg.norm(direction, axis=1, keepdims=True)
    return (np.where(hits > 0, total / np.maximum(hits, MIN_WEIGHT), pts),
            np.where((hits > 0) & (length > 0), direction / np.maximum(length, 1e-300), normals))


def _grid(size: int, margin: float, dev) -> torch.Tensor:
    """(1, size², 2) uv grid over [margin, 1 − margin]²."""
    t = torch.linspace(margin, 1 - margin, size)
    return torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(1, -1, 2).to(dev)


def _dense_output(surf: _PatchSurfaces, grid, patches: Patches, normals: np.ndarray, tree):
    """φ on the uv grid of every patch, kept within the patch radius of its centre, with oriented normals.

    Returns dense points (M, 3), their unit normals (M, 3) and the patch of each (M,) int.

    Each Jacobian normal takes the side of the mean input normal of its 8 nearest input points: a patch that
    folds flips its normal field at the fold, so orienting per point is safer than one sign per patch.
    """
    y, n = surf.with_normals(grid)
    y, n = y.cpu().double().numpy(), n.cpu().double().numpy()
    world = patches.to_world(y)
    keep = np.linalg.norm(world - patches.centers[:, None], axis=2) <= patches.radius
    pts = world[keep]
    _, near = tree.query(pts, k=8, workers=-1)
    nrm, pid = _world_normals(patches, n, keep, normals[near].mean(1))
    return pts, nrm, pid


def _world_normals(patches: Patches, local: np.ndarray, keep: np.ndarray, toward: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Patch-local normals (P, K, 3) at the slots ``keep`` (P, K) bool as world normals (M, 3), each turned to the
    side of ``toward`` (M, 3), and the patch of each (M,)."""
    pid = np.broadcast_to(np.arange(len(patches))[:, None], keep.shape)[keep]
    out = patches.rotate_to_world(local[keep], pid)
    out *= np.where(np.einsum("mi,mi->m", out, toward) < 0, -1.0, 1.0)[:, None]
    return out, pid
