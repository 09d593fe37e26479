"""Cover a point cloud with overlapping local patches, each in its own normalised frame.

Pure NumPy/SciPy, vectorised through KD-tree queries (no O(n²) loops).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .errors import InputError

log = logging.getLogger(__name__)

RADIUS = 0.05  # default patch radius, share of the scan's extent (its bounding-box diagonal)
# a patch with more than SPREAD × max_points members within its reach takes max_points of them spread over the whole
# reach instead of the nearest ones (see cover)
SPREAD = 2.0


@dataclass
class Patches:
    """A covering of N points by P patches, padded to K members each.

    centers : (P, 3) float   patch centres (input points)
    index   : (P, K) int     member indices into the points; padding repeats a member
    mask    : (P, K) bool    True for real members
    origin  : (P, 3) float   centroid of the members (frame origin)
    scale   : (P,) float     radius of the members around the origin (frame scale, unit ball)
    rotation: (P, 3, 3) float rows = PCA axes (largest first), det +1; row 2 is the patch normal
    radius  : float          absolute patch radius
    """

    centers: np.ndarray
    index: np.ndarray
    mask: np.ndarray
    origin: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    radius: float

    def __len__(self) -> int:
        return len(self.centers)

    @property
    def counts(self) -> np.ndarray:
        """(P,) int number of real members per patch."""
        return self.mask.sum(1)

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> padded local coordinates (P, K, 3), members in the unit ball."""
        x = points[self.index] - self.origin[:, None]
        return np.einsum("pij,pkj->pki", self.rotation, x) / self.scale[:, None, None]

    def to_world(self, local: np.ndarray, patch: np.ndarray | None = None) -> np.ndarray:
        """Local coordinates (P, M, 3) (or (M, 3) with ``patch`` (M,) int ids) -> world coordinates."""
        if patch is None:
            return np.einsum("pji,pmj->pmi", self.rotation, local) * self.scale[:, None, None] + self.origin[:, None]
        return np.einsum("mji,mj->mi", self.rotation[patch], local) * self.scale[patch, None] + self.origin[patch]

    def rotate_to_world(self, vectors: np.ndarray, patch: np.ndarray) -> np.ndarray:
        """Local directions (M, 3) of patches ``patch`` (M,) -> world directions (M, 3)."""
        return np.einsum("mji,mj->mi", self.rotation[patch], vectors)


def bbox_diagonal(points: np.ndarray) -> float:
    """Length of the axis-aligned bounding-box diagonal of points (N, 3)."""
    return float(np.linalg.norm(points.max(0) - points.min(0)))


def _voxel_representatives(points: np.ndarray, size: float, origin: np.ndarray | None = None) -> np.ndarray:
    """Index of the point nearest each occupied voxel's mean (Poisson-disk-like subsampling).

    origin : (3,) corner of the voxel grid (default: the points' minimum)
    """
    keys = np.floor((points - (points.min(0) if origin is None else origin)) / size).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n_vox = inverse.max() + 1
    means = np.stack([np.bincount(inverse, points[:, d], n_vox) for d in range(3)], 1)
    means /= np.bincount(inverse, minlength=n_vox)[:, None]
    dist = np.linalg.norm(points - means[inverse], axis=1)
    order = np.lexsort((dist, inverse))  # by voxel, nearest first
    first = np.r_[True, inverse[order][1:] != inverse[order][:-1]]
    return order[first]


def cover(
    points: np.ndarray,
    *,
    radius: float,
    padding: float = 1.3,
    min_points: int = 16,
    max_points: int = 384,
    spacing: float = 1.5,
    normals: np.ndarray | None = None,
    max_angle: float = 90.0,
    diagonal: float | None = None,
    origin: np.ndarray | None = None,
    spread: float = SPREAD,
) -> Patches:
    """Cover ``points`` with patches.

    points  : (N, 3) float
    radius  : patch radius as a fraction of the bounding-box diagonal
    padding : members are the points within padding × radius of the centre (the nearest ``max_points`` of them,
              unless there are more than ``spread`` × max_points: see below)
    min_points : a patch with fewer members takes its ``min_points`` nearest neighbours instead
    spacing : centres are voxel representatives, voxel side = spacing × radius (≈ Poisson-disk spacing)
    normals : (N, 3) float, optional; orients each patch's third axis to agree with them, and keeps out of a
              patch the points whose normal turns more than ``max_angle`` degrees from the centre's (the far
              side of a thin part, which would make the patch fold)
    diagonal : the length ``radius`` is a fraction of (default: the points' bounding-box diagonal)
    origin  : (3,) corner of the centres' voxel grid (default: the points' minimum). A tile of a larger scan passes
              the scan's diagonal and minimum, so that its patches are the ones the whole scan would get there
    spread  : on a scan so dense that a patch has more than ``spread`` × max_points members, the nearest max_points
              would shrink it to a fraction of its radius, a scale at which it fits the noise, and multiply the
              patches. Such a patch takes max_points members spread over its whole reach instead (every m-th in
              order of distance from the centre) and counts all its members as covered: it keeps its scale, and
              the patch count stays that of a sparser scan (BENCHMARKS.md, "cost against the number of points").
              0 switches it off

    Every point is a member of at least one patch, or within the reach of a spread one: where the first centres
    leave points uncovered (wide spacing, or patches capped at max_points in dense regions), centres are added among
    them until none is left.

    Long: the covering loop (centres, members, spread patches, sparse regions, added centres) shares its arrays
    from one round to the next; it reads as one algorithm.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if not 3 <= min_points <= max_points:
        raise InputError(f"need 3 <= min_points <= max_points, got min_points={min_points}, max_points={max_points}")
    if n < min_points:
        raise InputError(f"need at least {min_points} points for one patch, got {n}")
    diag = bbox_diagonal(points) if diagonal is None else float(diagonal)
    if not diag > 0:
        raise InputError("all points are identical: there is no surface to fit")
    r = radius * diag
    reach = padding * r
    k = int(min(max_points, n))
    tree = cKDTree(points)
    cos_max = np.cos(np.radians(max_angle))

    centers = _voxel_representatives(points, spacing * r, origin)
    covered = np.zeros(n, bool)
    blocks = []
    n_spread = 0
    for _ in range(50):
        dist, idx = tree.query(points[centers], k=k, distance_upper_bound=reach, workers=-1)
        idx = idx.reshape(len(centers), k)
        inside = np.isfinite(dist.reshape(len(centers), k))
        if normals is not None:
            facing = np.einsum("pki,pi->pk", normals[np.minimum(idx, n - 1)], normals[centers]) >= cos_max
            inside &= facing
        if spread:
            n_spread += _spread_dense(points, tree, centers, idx, inside, covered, reach, spread * k, normals, cos_max)
        few = inside.sum(1) < min_points
        if few.any():  # sparse region: the nearest min_points instead, facing the centre's side first
            wide = min(n, 4 * min_points)
            _, near = tree.query(points[centers[few]], k=wide, workers=-1)
            near = near.reshape(-1, wide)
            if normals is not None:
                away = np.einsum("pki,pi->pk", normals[near], normals[centers[few]]) < cos_max
                near = np.take_along_axis(near, np.argsort(away, axis=1, kind="stable"), 1)
            idx[np.ix_(few, np.arange(min_points))] = near[:, :min_points]
            inside[few] = np.arange(k) < min_points
        idx = np.where(inside, idx, idx[:, :1])  # pad with the centre's own index
        blocks.append((centers, idx, inside))
        covered[idx[inside]] = True
        if covered.all():
            break
        # capped patches in dense regions can leave points uncovered: add centres there
        centers = _voxel_representatives(points[~covered], r / 2, origin)
        centers = np.flatnonzero(~covered)[centers]
    else:  # pragma: no cover - each round covers at least the new centres themselves
        raise RuntimeError("patch covering did not converge")

    centers = np.concatenate([b[0] for b in blocks])
    index = np.concatenate([b[1] for b in blocks])
    mask = np.concatenate([b[2] for b in blocks])
    # trim padding columns that no patch uses
    width = int(mask.sum(1).max())
    order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
    index = np.take_along_axis(index, order, 1)
    mask = np.take_along_axis(mask, order, 1)
    index = np.where(mask, index, index[:, :1])

    origin, scale, rotation = _frames(points, index, mask, normals)
    log.info("%d patches, %d-%d points each (radius %.4g)%s", len(centers), mask.sum(1).min(), mask.sum(1).max(), r,
             f"; {n_spread} spread over their reach (a dense scan)" if n_spread else "")
    return Patches(points[centers], index, mask, origin, scale, rotation, r)


def _spread_dense(points, tree, centers, idx, inside, covered, reach, most, normals, cos_max) -> int:
    """Where a centre has more than ``most`` members within ``reach`` (facing its normal), replace the nearest ones
    in ``idx``/``inside`` (P, k) by k members spread evenly over the distance order, and mark all of them covered.
    Returns how many patches it spread."""
    k, spread = idx.shape[1], 0
    within = tree.query_ball_point(points[centers], reach, return_length=True, workers=-1)
    for p in np.flatnonzero(within > most):
        members = np.asarray(tree.query_ball_point(points[centers[p]], reach))
        if normals is not None:
            members = members[normals[members] @ normals[centers[p]] >= cos_max]
        if len(members) <= most:
            continue
        members = members[np.argsort(np.linalg.norm(points[members] - points[centers[p]], axis=1), kind="stable")]
        covered[members] = True
        idx[p] = members[np.linspace(0, len(members) - 1, k).round().astype(np.int64)]
        inside[p] = True
        spread += 1
    return spread


def _frames(points, index, mask, normals):
    """Per-patch centroid, unit-ball scale and PCA rotation (rows = axes, largest variance first)."""
    w = mask[..., None].astype(np.float64)
    x = points[index]
    cnt = w.sum(1)
    origin = (x * w).sum(1) / cnt
    d = (x - origin[:, None]) * w
    cov = np.einsum("pki,pkj->pij", d, d) / cnt[..., None]
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues, columns are vectors
    rot = np.ascontiguousarray(vecs[:, :, ::-1].transpose(0, 2, 1))
    if normals is not None:
        mean_n = (np.asarray(normals)[index] * w).sum(1)
        flip = np.einsum("pi,pi->p", rot[:, 2], mean_n) < 0
        rot[flip, 2] *= -1
    rot[np.linalg.det(rot) < 0, 1] *= -1  # proper rotation, keeping the normal row
    scale = np.linalg.norm(d, axis=2).max(1)
    scale = np.where(scale > 0, scale, 1.0)
    return origin, scale, rot


# --------------------------------------------------------------------------------------------
# which patch each point belongs to, saved for viewers (``geomprior view RUN_DIR --patches``)

PATCH_LABELS_FILE = "patches.npz"
"""File name of the patch labels in a run folder: arrays ``points`` (N, 3) float32 (input points, world
coordinates) and ``labels`` (N,) int64 (index of a patch containing the point, -1: none)."""


def point_labels(patches: Patches, points: np.ndarray) -> np.ndarray:
    """(N,) int64: for each of the N points, the patch that contains it whose centre is nearest (-1: no patch).

    patches : a covering of ``points`` (its ``index`` refers to them)
    points  : (N, 3) float, the points that were covered
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {points.shape}")
    if len(patches) and int(patches.index.max()) >= len(points):
        raise InputError(f"the patches refer to point {int(patches.index.max())}, but there are {len(points)} points")
    patch, slot = np.nonzero(patches.mask)
    member = patches.index[patch, slot]
    dist = np.linalg.norm(points[member] - patches.centers[patch], axis=1)
    order = np.lexsort((patch, dist, member))  # by point, nearest centre first (ties: lowest patch)
    first = np.r_[True, member[order][1:] != member[order][:-1]] if len(order) else np.zeros(0, bool)
    labels = np.full(len(points), -1, dtype=np.int64)
    labels[member[order][first]] = patch[order][first]
    return labels


def save_patch_labels(path, points: np.ndarray, labels: np.ndarray) -> None:
    """Write points (N, 3) and their patch labels (N,) int (-1: none) atomically to an ``.npz`` file.

    The format read by :func:`load_patch_labels` (see :data:`PATCH_LABELS_FILE`); e.g.
    ``save_patch_labels(run_dir / PATCH_LABELS_FILE, points, point_labels(patches, points))``.
    """
    from geomprior.io import atomic_path, check_writable

    path = check_writable(path, extensions=(".npz",))
    points, labels = _checked_labels(str(path), points, labels)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, points=points, labels=labels)
    log.debug("wrote %d point labels to %s", len(labels), path)


def load_patch_labels(path) -> tuple[np.ndarray, np.ndarray]:
    """Read what :func:`save_patch_labels` wrote: points (N, 3) float32 and labels (N,) int64.

    path : the ``.npz`` file, or a run folder holding :data:`PATCH_LABELS_FILE`
    """
    import zipfile
    from pathlib import Path

    from geomprior.io import check_file

    path = Path(path)
    if path.is_dir():
        if not (path / PATCH_LABELS_FILE).exists():
            raise InputError(f"{path}: no {PATCH_LABELS_FILE} in this folder (a tiled run's folder has one)")
        path = path / PATCH_LABELS_FILE
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("points", "labels") if k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a patch-label file ({reason})") from None
    missing = [k for k in ("points", "labels") if k not in arrays]
    if missing:
        raise InputError(f"{path}: not a patch-label file (no {' or '.join(missing)} array)")
    points, labels = arrays["points"], arrays["labels"]
    return _checked_labels(str(path), points, labels)


def _checked_labels(where: str, points, labels) -> tuple[np.ndarray, np.ndarray]:
    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InputError(f"{where}: points must have shape (N, 3) with N >= 1, got {points.shape}")
    if not np.issubdtype(points.dtype, np.number) or not np.isfinite(points).all():
        raise InputError(f"{where}: points must be finite numbers")
    if labels.shape != (len(points),) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{where}: labels must be {len(points)} integers, got {labels.dtype} {labels.shape}")
    if len(labels) and labels.min() < -1:
        raise InputError(f"{where}: labels must be patch indices >= 0, or -1 for none; found {labels.min()}")
    return points.astype(np.float32), labels.astype(np.int64)
