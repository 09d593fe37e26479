"""What a scan is made of, measured from its points: their spacing, the clusters they form, which of them are stray
returns set aside before a fit, the objects the rest form, and the extent every length of a reconstruction is a share
of (the bounding box of the kept points: a few stray points far away do not inflate it).

Clusters and objects are connected components of occupied voxels (26-neighbourhood), so that they cost a sort of the
points, whatever their number: clusters on voxels of half ``LINK`` spacings (points chained by steps of a few
spacings), objects on voxels of half a patch reach (a patch could span the gap).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .errors import InputError
from .patches import bbox_diagonal

log = logging.getLogger(__name__)

SPACING_K = 8  # the spacing of a scan: the median distance of a point to its SPACING_K-th nearest neighbour
LINK = 8.0  # points chained by steps of about this many spacings form one cluster
SMALL = 0.01  # a cluster with fewer than this share of the points is small; small clusters out of a patch's reach
# of every large one are stray returns (a passer-by, a bird, multipath), not the scanned surface
LINE = 1e-6  # points spread across their main axis by less than this share of their spread along it: a line
SAMPLE = 200_000  # the spacing is measured on at most this many points
NOISE_K = (20, 128)  # a point's noise is measured over its neighbours within reach, at least / at most this many
NOISE_POINTS = 20_000  # ... among at most this many of the scan's points (on a denser scan, at most NOISE_K[1] of
# the nearest would span little more than the noise, and the fitted surface would take up part of it)
QUIET = 0.004  # a scan whose noise is below this share of its extent gets patches smaller in proportion ...
FINE = 0.7  # ... down to this share of the radius: less noise to average away, finer detail to keep
NOISE_REACH = 0.6  # the noise is measured over this share of the patch radius (detail finer than it counts as noise)
CURVED = 5.0  # a point lies on the surface through its neighbours within this many times the noise (find_inliers) ...
STRAY = 6.0  # ... and off it beyond this many (more than a Gaussian noise puts there: a stray point)


@dataclass
class Layout:
    """What ``layout`` found in a scan of N points.

    objects  : (N,) int  the object each point belongs to (0..n_objects-1), -1 for points set aside
    spacing  : float     median distance of a point to its ``SPACING_K``-th nearest neighbour
    diagonal : float     extent of the scanned surface: the bounding-box diagonal of the points within reach of its
                         large clusters (the unit of the patch radius; small clusters kept with ``keep_small`` do
                         not count)
    center   : (3,) float64 centre of that bounding box (a fit runs on the points minus it)
    clusters : int       clusters found (steps of ``LINK`` spacings)
    set_aside: list of dicts, one per cluster set aside: its points, and its distance from the kept points
    """

    objects: np.ndarray
    spacing: float
    diagonal: float
    center: np.ndarray
    clusters: int
    set_aside: list[dict] = field(default_factory=list)

    @property
    def kept(self) -> np.ndarray:
        """(N,) bool: the points a reconstruction fits."""
        return self.objects >= 0

    @property
    def n_objects(self) -> int:
        return int(self.objects.max()) + 1 if len(self.objects) else 0

    def summary(self) -> dict:
        """JSON-serialisable account (for a run's history)."""
        return {"spacing": self.spacing, "extent": self.diagonal, "clusters": self.clusters,
                "objects": self.n_objects, "set_aside_points": int((self.objects < 0).sum()),
                "set_aside_clusters": self.set_aside}


def spacing(points: np.ndarray, *, k: int = SPACING_K, sample: int = SAMPLE, seed: int = 0) -> float:
    """Median distance of a point of ``points`` (N, 3) to its k-th nearest neighbour (measured on at most ``sample``
    of them, against all). 0 when fewer than k + 1 points."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) <= k:
        return 0.0
    rows = np.random.default_rng(seed).choice(len(points), min(len(points), sample), replace=False)
    dist, _ = cKDTree(points).query(points[rows], k + 1, workers=-1)
    return float(np.median(dist[:, -1]))


def _height_residuals(around: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods (n, k, 3) with weights (n, k) summing to 1 -> each point's height (n, k) above the quadratic
    height field fitted to its neighbourhood (weighted least squares over the plane of their principal axes; a point
    of weight 0 is measured, not fitted), and its squared distance (n, k) from their weighted mean in that plane."""
    centred = around - np.einsum("nk,nki->ni", weight, around)[:, None]
    _, axes = np.linalg.eigh(np.einsum("nk,nki,nkj->nij", weight, centred, centred))
    height, u, v = np.moveaxis(np.einsum("nki,nij->nkj", centred, axes), -1, 0)  # smallest axis first
    design = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], -1)
    gram = np.einsum("nk,nki,nkj->nij", weight, design, design) + 1e-12 * np.eye(6)
    coef = np.linalg.solve(gram, np.einsum("nk,nki,nk->ni", weight, design, height)[..., None])[..., 0]
    return height - np.einsum("nki,ni->nk", design, coef), u * u + v * v


def noise_level(points: np.ndarray, reach: float, *, samples: int = 1000, seed: int = 0) -> float:
    """The noise of a scan (N, 3): the spread of its points about a smooth surface, in the points' units.

    Around each of ``samples`` points, its neighbours within ``reach`` (at least ``NOISE_K[0]``, at most
    ``NOISE_K[1]`` of the nearest, among ``NOISE_POINTS`` of the points drawn at random) are fitted with a
    quadratic height field over the plane of their principal axes (least squares); their spread about it is 1.4826 ×
    the median absolute deviation of the heights (robust to a stray point or a nearby second side). Returns the
    median over the samples; 0 for fewer points than ``NOISE_K[0]``. Detail finer than ``reach`` counts as noise,
    and with a few points per neighbourhood the fit absorbs some of it.
    """
    points = np.asarray(points, dtype=np.float64)
    low, high = NOISE_K
    if len(points) <= low:
        return 0.0
    rng = np.random.default_rng(seed)
    if len(points) > NOISE_POINTS:
        points = points[rng.choice(len(points), NOISE_POINTS, replace=False)]
    rows = rng.choice(len(points), min(len(points), samples), replace=False)
    dist, near = cKDTree(points).query(points[rows], min(high, len(points)), workers=-1)
    use = (dist <= reach) | (np.arange(dist.shape[1]) < low)
    residual = np.where(use, _height_residuals(points[near], use / use.sum(1, keepdims=True))[0], np.nan)
    spread = np.nanmedian(np.abs(residual - np.nanmedian(residual, 1, keepdims=True)), 1)
    count = use.sum(1)
    return float(np.median(1.4826 * spread * np.sqrt(count / (count - 6))))


def quiet_radius(points: np.ndarray, radius: float, diagonal: float) -> float:
    """The patch radius (share of ``diagonal``) for a scan (N, 3) whose patches would have ``radius`` at a noise of
    ``QUIET`` × ``diagonal`` or more: radius × noise / (``QUIET`` × diagonal), at least ``FINE`` × radius
    (:func:`noise_level` over ``NOISE_REACH`` × radius × diagonal)."""
    noise = noise_level(points, NOISE_REACH * radius * diagonal) / diagonal
    return radius * float(np.clip(noise / QUIET, FINE, 1.0))


def voxel_components(points: np.ndarray, size: float) -> np.ndarray:
    """(N,) int: connected components of the voxels of side ``size`` that hold points (26-neighbourhood), numbered
    by their first point. Two points in one component are joined by steps shorter than 2√3 × size; points farther
    apart than that in every step are in different components."""
    if float(np.prod(np.ptp(points, axis=0) / size + 3)) >= 2.0**62:
        raise InputError(f"the scan spans {np.ptp(points, axis=0).max():.4g} units at a spacing of {size:.4g}: "
                         "too many voxels to number; is it in the units you think?")
    cells = np.floor((points - points.min(0)) / size).astype(np.int64) + 1
    dims = cells.max(0) + 2
    keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    occupied, of_point = np.unique(keys, return_inverse=True)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[: len(offsets) // 2]  # half the 26 neighbours: each pair is linked once
    rows, cols = [np.arange(len(occupied))], [np.arange(len(occupied))]
    for dx, dy, dz in offsets:
        target = occupied + (dx * dims[1] + dy) * dims[2] + dz
        at = np.minimum(np.searchsorted(occupied, target), len(occupied) - 1)
        hit = occupied[at] == target
        rows.append(np.flatnonzero(hit))
        cols.append(at[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(len(occupied),) * 2)
    _, label = connected_components(graph, directed=False)
    per_point = label[of_point.ravel()]
    # number components in order of their first point (deterministic, independent of the voxel order)
    _, first = np.unique(per_point, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[per_point]


def layout(points: np.ndarray, *, radius: float, padding: float, min_points: int, keep_small: bool = False,
           link: float = LINK, small: float = SMALL) -> Layout:
    """The clusters, objects and extent of a scan.

    points     : (N, 3) float64
    radius     : patch radius, share of the extent;  padding : a patch reaches padding × radius
    min_points : clusters with fewer points cannot carry a patch and are always set aside
    keep_small : keep the small clusters out of reach too (each becomes an object of its own) instead of setting
                 them aside
    link, small: see ``LINK`` and ``SMALL``

    Clusters: points chained by steps of about ``link`` spacings. Large clusters (at least ``small`` of the points)
    are the scanned surface; their bounding box gives a first extent, and a small cluster within a patch's reach of
    them (padding × radius × that extent) is part of it too (a sparse part, a stray point near the surface, which
    the outlier filter judges). Small clusters farther away are set aside: they would inflate the extent, every
    length that derives from it, and the mesh would span the gap to them. Objects: the kept points chained by steps
    of about a patch's reach (several separate objects of a street scene stay separate objects, each meshed on its
    own).

    Raises InputError when no cluster is large: nothing in the scan is a surface.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < min_points:
        raise InputError(f"need at least {min_points} points for one patch, got {n}")
    step = spacing(points)
    if n == 0 or not step > 0:
        raise InputError(f"need at least {SPACING_K + 1} distinct points to measure the scan, got {n}")
    cluster = voxel_components(points, link * step / 2)
    sizes = np.bincount(cluster)
    large = sizes >= max(min_points, small * n)
    if not large.any():
        raise InputError(f"no surface to fit: the {n} points form {len(sizes)} separate clusters of at most "
                         f"{sizes.max()} points (a surface needs a cluster of {max(min_points, small * n):.0f}); "
                         f"a scan of stray points?")
    body = large[cluster]
    reach = padding * radius * _diagonal(points[body])
    objects = voxel_components(points, reach / 2)
    on_body = np.zeros(objects.max() + 1, bool)
    on_body[objects[body]] = True
    near = on_body[objects]
    keep = near | (keep_small & (sizes[cluster] >= min_points))
    set_aside = []
    if not keep.all():
        tree = cKDTree(points[keep])
        for c in np.unique(cluster[~keep]):
            members = np.flatnonzero(cluster == c)
            gap = float(tree.query(points[members], workers=-1)[0].min())
            set_aside.append({"points": len(members), "distance": gap})
    _, renumbered = np.unique(objects[keep], return_inverse=True)
    labels = np.full(n, -1, np.int64)
    labels[keep] = renumbered.ravel()
    lo, hi = points[near].min(0), points[near].max(0)
    out = Layout(labels, step, float(np.linalg.norm(hi - lo)), (lo + hi) / 2, int(len(sizes)), set_aside)
    if set_aside:
        log.info("set aside %d points in %d small clusters farther than a patch's reach (%.4g) from the scanned "
                 "surface (up to %.4g away)", n - int(keep.sum()), len(set_aside), reach,
                 max(s["distance"] for s in set_aside))
    log.info("scan: spacing %.4g, extent %.4g (bounding-box diagonal %.4g), %d clusters, %d objects", step,
             out.diagonal, _diagonal(points), len(sizes), out.n_objects)
    return out


def _diagonal(points: np.ndarray) -> float:
    return float(np.linalg.norm(points.max(0) - points.min(0)))


def _scatter(around: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods (n, k, 3) -> their means (n, 3) and scatter matrices (n, 3, 3)."""
    mean = around.mean(1)
    centred = around - mean[:, None]
    return mean, np.einsum("nki,nkj->nij", centred, centred)


def find_inliers(points: np.ndarray, reach: float, min_points: int, *, k: int = 32, ratio: float = 1.5,
                 flat_k: int = 16, flatness: float = 0.2, curved: float = CURVED, fewer: float = 16.0) -> np.ndarray:
    """(N,) bool: the points that are not outliers.

    A point is kept when it has at least min(``min_points``, a quarter of the median count) other points within
    ``reach`` (so a uniformly sparse scan keeps its points; where every point has, nothing is dropped) and, where some
    point has fewer, at least 1/``fewer`` of the median count (a dense scan's strays have ``min_points`` neighbours
    within reach: each other), or when it lies in a sparse region of a surface. That is, either: the distance to its
    ``k``-th neighbour is at most ``ratio`` times the median of its ``k`` neighbours' own (it is no sparser than they
    are; a point off the surface is far sparser than the surface points around it) and it and its ``flat_k`` nearest
    neighbours are flat (smallest over middle covariance eigenvalue at most ``flatness``; a cloud of outliers can be as
    sparse as its members, but it fills a volume); or it lies within ``curved`` × the scan's noise (:func:`noise_level`
    over ``NOISE_REACH`` × ``reach``) of the surface through the points kept so far, grown from them round by round
    (``_grow_on_surface``, over ``flat_k`` neighbours; not a point with ``min_points`` neighbours but under 1/``fewer``
    of the median: a dense cloud of strays fits a quadric within the noise): a sparse surface that bends within a
    neighbourhood, an ear or a leg, is not flat. On a scan where some points lack neighbours, a point with enough of
    them is dropped all the same when it lies more than ``STRAY`` × the noise off the quadric through its ``flat_k``
    nearest kept points while they lie within ``curved`` × the noise of it (RMS): a stray point within reach of a
    surface (``_off_surface``). The test runs again without the points sparser than their neighbours (by ``ratio``, as
    above): strays close to a dense surface have its points within reach, but not as close as those have theirs, and a
    cloud of them spoils the quadrics. Those are judged last, against the quadric through the others, and dropped beyond
    ``curved`` × the noise (``curved`` 0 turns these tests off).
    """
    tree = cKDTree(points)
    others = tree.query_ball_point(points, reach, return_length=True, workers=-1) - 1
    median = np.median(others)
    keep = others >= min(min_points, int(median) // 4)
    k = min(k, len(points) - 1)
    if keep.all() or k < 2:
        return keep
    cloud = keep & (others < median // fewer)  # a dense cloud of strays (fits a quadric within the noise)
    keep &= ~cloud
    dist, near = tree.query(points, k + 1, workers=-1)
    kth = dist[:, -1]
    few = np.flatnonzero(~keep)
    alike = kth <= ratio * np.median(kth[near[:, 1:]], axis=1)
    flat_k = min(flat_k, k)
    eig = np.linalg.eigvalsh(_scatter(points[near[few, :flat_k + 1]])[1])
    keep[few] = alike[few] & (eig[:, 0] <= flatness * eig[:, 1])
    if curved > 0:
        noise = noise_level(points, NOISE_REACH * reach)
        tolerance = curved * noise
        off = _off_surface(points, keep, tolerance, STRAY * noise, flat_k)
        sparser = np.flatnonzero(keep & ~alike)
        keep[sparser] = False
        if len(sparser):  # the test again without them (else it would repeat the first)
            off |= _off_surface(points, keep, tolerance, STRAY * noise, flat_k)
        keep &= ~off
        keep[sparser] = ~(off | _off_surface(points, keep, tolerance, tolerance, flat_k, at=sparser))[sparser]
        _grow_on_surface(points, keep, ~cloud, kth, tolerance, flat_k, ratio)
    return keep


def _grow_on_surface(points: np.ndarray, keep: np.ndarray, growable: np.ndarray, kth: np.ndarray,
                     tolerance: float, m: int, ratio: float) -> None:
    """Add to ``keep`` (in place), round by round until none is added, the points of ``growable`` left out that lie on
    the surface the kept ones form: within ``tolerance`` of the quadratic height field through their ``m`` nearest kept
    points (which lie within ``tolerance`` of it, RMS), and no farther from the farthest of them than ``ratio`` times
    those points' distance to their own ``k``-th neighbour (``kth``): among them, where a quadric does not bend away to
    fit them. A quadric has 6 coefficients: m > 6."""
    while keep.sum() > m > 6 and (growable & ~keep).any():
        kept, left = np.flatnonzero(keep), np.flatnonzero(growable & ~keep)
        dist, near = cKDTree(points[kept]).query(points[left], m, workers=-1)
        near = kept[near]
        height, spread, _ = _off_quadric(points, left, near)
        among = dist[:, -1] <= ratio * np.median(kth[near], axis=1)
        on = among & (spread <= tolerance) & (height <= tolerance)
        if not on.any():
            return
        keep[left[on]] = True


def _off_surface(points: np.ndarray, keep: np.ndarray, tolerance: float, beyond: float, m: int,
                 at: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the points ``at`` (indices, points left out; default: the kept points) more than ``beyond`` off
    the quadratic height field through their ``m`` nearest (other) kept points while those lie within ``tolerance``
    of it (RMS), and over them: within their RMS distance from their mean, in the field's plane (at the border of a
    sparser region the quadric extrapolates). A sharp edge or a thin part, whose neighbours no quadric fits, stays."""
    off = np.zeros(len(points), dtype=bool)
    kept = np.flatnonzero(keep)
    own = int(at is None)  # a kept point is its own nearest kept point
    at = kept if at is None else at
    if len(kept) > m > 6 and len(at):
        _, near = cKDTree(points[kept]).query(points[at], m + own, workers=-1)
        height, spread, over = _off_quadric(points, at, kept[near[:, own:]])
        off[at] = (height > beyond) & (spread <= tolerance) & over
    return off


def _off_quadric(points: np.ndarray, at: np.ndarray, near: np.ndarray, chunk: int = 50_000
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points ``at`` (n,) and their neighbours ``near`` (n, m), indices into points (N, 3) -> each point's distance
    from the quadratic height field through its neighbours (n,), their RMS distance from it (n,) (6 of the m degrees
    of freedom go to the fit), and whether the point lies over them (n,) bool: in the field's plane, no farther from
    their mean than they are (RMS). ``chunk`` points at a time."""
    m = near.shape[1]
    weight = np.r_[0.0, np.full(m, 1 / m)]  # the point is measured against its neighbours' fit, not part of it
    height, planar = np.zeros((len(at), m + 1)), np.zeros((len(at), m + 1))
    for i in range(0, len(at), chunk):
        rows = slice(i, i + chunk)
        height[rows], planar[rows] = _height_residuals(np.concatenate([points[at[rows], None],
                                                                       points[near[rows]]], 1),
                                                       np.broadcast_to(weight, (len(at[rows]), m + 1)))
    over = planar[:, 0] <= planar[:, 1:].mean(1)
    return np.abs(height[:, 0]), np.sqrt((height[:, 1:] ** 2).sum(1) / (m - 6)), over


def _on_a_line(points: np.ndarray) -> bool:
    """Whether points (N, 3) spread across their main axis by less than LINE of their spread along it."""
    eig = np.linalg.eigvalsh(_scatter(points[None])[1][0])
    return bool(eig[1] <= LINE**2 * eig[2])


def check_points(points, normals=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate (N, 3) points and optional (N, 3) normals; returns float64 copies (unit normals)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError(f"{int((~np.isfinite(pts).all(1)).sum())} points have NaN or infinite coordinates")
    if len(pts) and not bbox_diagonal(pts) > 0:
        raise InputError("all points are identical: there is no surface to fit")
    if len(pts) > 2 and _on_a_line(pts):
        raise InputError("all points lie on one line: there is no surface to fit")
    if normals is None:
        return pts, None
    nrm = np.asarray(normals, dtype=np.float64)
    if nrm.shape != pts.shape:
        raise InputError(f"normals must have the points' shape {pts.shape}, got {nrm.shape}")
    length = np.linalg.norm(nrm, axis=1, keepdims=True)
    if not (np.isfinite(nrm).all() and (length > 0).all()):
        return pts, None
    return pts, nrm / length


def check_colors(colors, n: int) -> np.ndarray | None:
    """None, or colours (n, 3) float in [0, 1] as a float64 array."""
    if colors is None:
        return None
    out = np.asarray(colors, dtype=np.float64)
    if out.shape != (n, 3):
        raise InputError(f"colors must have the points' shape ({n}, 3), got {out.shape}")
    if not (np.isfinite(out).all() and out.min(initial=0) >= 0 and out.max(initial=0) <= 1):
        raise InputError("colors must be numbers in [0, 1]")
    return out
