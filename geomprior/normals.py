"""Normals of a point cloud: PCA over neighbourhoods whose size adapts to the scan's density, oriented consistently
(open3d's tangent-plane spanning tree), with a variant for thin parts whose two sides lie a few noise levels apart."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from .native import _native_output_captured
from .patches import RADIUS, bbox_diagonal
from .scan import _scatter

log = logging.getLogger(__name__)


OUTWARD_VIEWS = 128  # directions over the sphere that outward orientation looks from
VIEW_PIXEL = 1.5  # ... through a depth buffer of pixels this many point spacings wide
VIEW_DEPTH = 2.0  # ... where a point within this many spacings of the nearest depth at its pixel is seen
ENCLOSES = 0.8  # outward="auto": the median one-sidedness above which a scan is taken to enclose a volume
ONE_SIDED = 0.5  # a point whose one-sidedness is above this takes the side it is seen from
INTERLEAVED = 0.1  # the share of points whose NORMAL_K neighbours' outward normals oppose theirs (over a quarter of
# them) above which none is turned, unless the spanning tree LEAKED:
LEAKED = 0.25  # ... it faces the wrong way on more than this share of the other points (up to one global flip)
INWARD = 0.75  # the share of the points seen from one side that face inward above which the unseen ones turn too
THIN_PART_SWITCH = 0.1  # thin_parts="auto": the share of points on which the two orientations may disagree
NORMAL_K = 30  # the fewest neighbours a normal is estimated from ...
NORMAL_REACH = 0.3  # ... or as many as lie within this share of the patch radius (the median over the points)
NORMAL_K_MAX = 400
JIGGLE = 1e-7  # points in one plane are oriented moved by noise of this share of their diagonal (Qhull)


def normal_neighbours(points: np.ndarray, scale: float | None = None) -> int:
    """How many neighbours a point's normal is estimated from: ``NORMAL_K``, or more on a scan so dense that they
    would lie within the noise: the median number of points within ``NORMAL_REACH`` patch radii, at most
    ``NORMAL_K_MAX``: on a dense scan a fixed count spans little more than the noise, and its normals are mostly
    noise (BENCHMARKS.md, "Normal estimate: neighbours against density").

    scale: the patch radius (None: the default patch radius, ``patches.RADIUS`` × the bounding-box diagonal).
    """
    n = len(points)
    if n <= NORMAL_K:
        return NORMAL_K
    if scale is None:
        scale = RADIUS * bbox_diagonal(points)
    sample = points[np.random.default_rng(0).choice(n, min(n, 2000), replace=False)]
    within = cKDTree(points).query_ball_point(sample, NORMAL_REACH * scale, return_length=True)
    return int(np.clip(np.median(within), NORMAL_K, min(NORMAL_K_MAX, n - 1)))


def estimate_normals(points: np.ndarray, *, k: int | None = None, scale: float | None = None,
                     thin_parts: bool | Literal["auto"] = False, outward: bool | Literal["auto"] = False
                     ) -> np.ndarray:
    """(N, 3) unit normals by PCA over k neighbours, oriented consistently (open3d's tangent-plane MST).

    k: the neighbours (None: :func:`normal_neighbours` for this scan and ``scale``, the patch radius)
    thin_parts: for scans of thin parts (a plate, a blade) whose two sides are only a few noise levels apart, where
                the orientation leaks from one side to the other and both sides end up facing the same way (then
                every patch straddles the part): the normals are estimated on the points projected once onto the
                plane of their k nearest neighbours (less noise; the sides stay apart as long as they are farther
                apart than those neighbours reach), and the orientation propagates only within a cone around each
                normal (open3d's ``cos_alpha_tol`` = 0.5, after Piazza, Valentini and Varetti 2023).
                "auto": both estimates; the plain one unless they disagree (up to one global flip) on more than
                ``THIN_PART_SWITCH`` of the points. Where a leak turns a side, they disagree on that whole side;
                on scans without thin parts on a few points at most (BENCHMARKS.md, "Normal orientation").
    outward: then turn the normals to face the outside where they are seen from outside (:func:`orient_outward`);
             "auto": where the scan encloses a volume (its median one-sidedness is at least ``ENCLOSES``)
    """
    if k is None:
        k = normal_neighbours(points, scale)
    if thin_parts != "auto":
        normals = _oriented_normals(points, k, thin=bool(thin_parts))
    else:
        plain, thin = _oriented_normals(points, k, thin=False), _oriented_normals(points, k, thin=True)
        disagree = orientation_disagreement(plain, thin)
        use_thin = disagree > THIN_PART_SWITCH
        log.info("normals: the plain and thin-part orientations disagree on %.1f%% of the points: %s", 100 * disagree,
                 "thin part, using the thin-part normals" if use_thin else "using the plain normals")
        normals = thin if use_thin else plain
    if outward:
        normals = orient_outward(points, normals, only_enclosing=outward == "auto")
    return normals


def _view_directions(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r, angle = np.sqrt(1 - z * z), np.pi * (1 + 5**0.5) * i
    return np.stack([r * np.cos(angle), r * np.sin(angle), z], 1)


def orient_outward(points: np.ndarray, normals: np.ndarray, *, views: int = OUTWARD_VIEWS,
                   only_enclosing: bool = False) -> np.ndarray:
    """Normals (N, 3) turned to face the directions the points are seen from, where those agree.

    The scan is looked at from ``views`` directions spread over the sphere: each point is drawn as a disc into a
    depth buffer of pixels ``VIEW_PIXEL`` spacings wide (spacing: :func:`geomprior.scan.spacing`), and the points
    within ``VIEW_DEPTH`` spacings of the nearest depth at their pixel are seen. Each view votes, weighted by
    |cos| of the angle between a seen point's normal and the view, for the side the normal faces. A point seen
    from one side (one-sidedness, |sum of votes| / sum of |votes|, above ``ONE_SIDED``) takes that side; others keep
    their normal, unless more than ``INWARD`` of those seen from one side face inward: then the spanning tree faced
    inward as a whole, and the others (deep in a fold, where no view reaches) turn with it. On a scan that encloses
    a volume this fixes what a spanning tree gets wrong when it leaks between the two sides of a thin part (a leg, a
    fin); an open sheet is seen from both sides and is left as it is. Nothing is turned where, turned, more than
    ``INTERLEAVED`` of the points would have over a quarter of their ``NORMAL_K`` nearest neighbours facing the other
    way (the two sides within the noise somewhere: a sheet thinner than its noise, where one orientation fits better
    than two interleaved ones), unless the spanning tree's orientation is wrong on more than ``LEAKED`` of the points
    whose turned neighbourhoods agree (up to one global flip): then it leaked over whole stretches (a plate's side,
    half a body), which costs more than the interleaving.

    only_enclosing: change nothing unless the median one-sidedness of the seen points is at least ``ENCLOSES``
    """
    from scipy.ndimage import minimum_filter

    from .scan import spacing

    step = spacing(points)
    if len(points) <= NORMAL_K or not step > 0:
        return normals
    centred = points - points.mean(0)
    vote, weight = np.zeros(len(points)), np.zeros(len(points))
    for view in _view_directions(views):
        across = np.cross(view, [1.0, 0.0, 0.0] if abs(view[0]) < 0.9 else [0.0, 1.0, 0.0])
        across /= np.linalg.norm(across)
        pixel = np.floor(np.c_[centred @ across, centred @ np.cross(view, across)] / (VIEW_PIXEL * step))
        pixel = (pixel - pixel.min(0)).astype(np.int64)
        depth = -centred @ view  # seen from far along +view: nearer is smaller
        nearest = np.full(tuple(pixel.max(0) + 1), np.inf)
        np.minimum.at(nearest, (pixel[:, 0], pixel[:, 1]), depth)
        nearest = minimum_filter(nearest, size=3, mode="constant", cval=np.inf)  # discs, not dots
        seen = depth <= nearest[pixel[:, 0], pixel[:, 1]] + VIEW_DEPTH * step
        cos = normals[seen] @ view
        vote[seen] += cos
        weight[seen] += np.abs(cos)
    one_sided = np.abs(vote) / np.maximum(weight, 1e-12)
    median = float(np.median(one_sided[weight > 0])) if (weight > 0).any() else 0.0
    if only_enclosing and median < ENCLOSES:
        log.info("normals: median one-sidedness %.2f: the scan does not enclose a volume", median)
        return normals
    decided = one_sided > ONE_SIDED
    flip = (vote < 0) & decided
    # the spanning tree faces inward as a whole: the points seen from no side (deep in a fold) are turned with it
    inward = decided.any() and np.mean(flip[decided]) > INWARD
    flip = flip | (inward & ~decided)
    # where the two sides lie within the noise (a sheet thinner than it), outward normals of both sides interleave
    # and no patch could hold one side: then the spanning tree's single orientation is kept, unless it leaked
    turned = np.where(flip[:, None], -normals, normals)
    near = cKDTree(points).query(points, NORMAL_K + 1, workers=-1)[1][:, 1:]
    interleaved = np.mean(np.einsum("ij,ikj->ik", turned, turned[near]) < 0, axis=1) > 0.25
    if interleaved.mean() > INTERLEAVED:
        apart = ~interleaved
        wrong = orientation_disagreement(normals[apart], turned[apart]) if apart.any() else 0.0
        if wrong <= LEAKED:
            log.info("normals: median one-sidedness %.2f; outward normals would interleave on %.1f%% of the points (a "
                     "sheet thinner than its noise): none turned", median, 100 * interleaved.mean())
            return normals
        log.info("normals: outward normals would interleave on %.1f%% of the points, but the spanning tree faces the "
                 "wrong way on %.1f%% of the others (it leaked between two sides): %.1f%% turned outward all the same",
                 100 * interleaved.mean(), 100 * wrong, 100 * flip.mean())
        return turned
    log.info("normals: median one-sidedness %.2f; %.1f%% of the normals turned outward", median, 100 * flip.mean())
    return turned


def orientation_disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the points whose normals in ``a`` and ``b`` (N, 3) face opposite ways, up to one global flip."""
    same = float(np.mean(np.einsum("ij,ij->i", a, b) > 0))
    return min(same, 1 - same)


def _oriented_normals(points: np.ndarray, k: int, thin: bool) -> np.ndarray:
    import open3d as o3d

    if thin and len(points) > k:
        tree, projected = cKDTree(points), points.copy()
        for start in range(0, len(points), 20_000):  # in chunks: (chunk, k, 3) neighbourhoods
            rows = slice(start, start + 20_000)
            mean, scatter = _scatter(points[tree.query(points[rows], k, workers=-1)[1]])
            normal = np.linalg.eigh(scatter)[1][:, :, 0]  # the smallest eigenvalue's vector
            projected[rows] -= np.einsum("ni,ni->n", points[rows] - mean, normal)[:, None] * normal
        points = projected
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
    # open3d orients along a graph from Qhull's Delaunay triangulation: Qhull prints precision warnings on a flat
    # scan (logged at DEBUG here) and cannot triangulate points in one plane, which it is given jiggled instead
    graph = (15, 0.0, 0.5 if thin else 1.0)
    with _native_output_captured():
        try:
            pc.orient_normals_consistent_tangent_plane(*graph)
        except RuntimeError:
            jiggle = np.random.default_rng(0).normal(scale=JIGGLE * bbox_diagonal(points), size=points.shape)
            pc.points = o3d.utility.Vector3dVector(points + jiggle)  # the estimated normals stay
            pc.orient_normals_consistent_tangent_plane(*graph)
    return np.asarray(pc.normals).copy()
