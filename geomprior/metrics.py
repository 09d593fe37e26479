"""Surface reconstruction metrics, with the conventions of DESIGN.md section 6.

- Both shapes are scaled by the REFERENCE's bounding-box diagonal (numbers are relative to diagonal 1).
- Each surface is represented by ``n_samples`` area-weighted samples with their face normals.
- Chamfer-L1 = 1/2 (mean NN distance pred->ref + mean ref->pred), unsquared.
- Hausdorff = max of the two one-sided maxima.
- Normal consistency = 1/2 (mean |n . n_nn| pred->ref + ref->pred).
- F-score at ``fscore_threshold`` (a fraction of the diagonal): harmonic mean of precision
  (pred samples within the threshold of ref) and recall (ref samples within it of pred).

open3d, trimesh and scipy are imported lazily.
"""

from __future__ import annotations

import logging

import numpy as np

from geomprior.errors import InputError

logger = logging.getLogger(__name__)

METRIC_KEYS = ("chamfer_l1", "hausdorff", "normal_consistency", "fscore")
"""Keys of the dictionary :func:`evaluate` returns, in display order."""


def _check_mesh(mesh, name: str):
    import open3d as o3d

    if not isinstance(mesh, o3d.geometry.TriangleMesh):
        raise InputError(f"{name}: expected an open3d.geometry.TriangleMesh, got {type(mesh).__name__}")
    if len(mesh.triangles) == 0:
        raise InputError(f"{name}: mesh has no triangles")
    if not np.isfinite(np.asarray(mesh.vertices)).all():
        raise InputError(f"{name}: mesh has NaN or infinite vertices")


def sample_surface(mesh, n_samples: int, *, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on a triangle mesh, with the normals of their faces.

    Parameters
    ----------
    mesh : open3d.geometry.TriangleMesh
        Vertices (V, 3), triangles (F, 3), F >= 1, positive total area.
    n_samples : int
        Number of samples S >= 1.
    seed : int or numpy.random.Generator
        Same seed => same samples.

    Returns
    -------
    points : (S, 3) float64
    normals : (S, 3) float64
        Unit face normals (zero for degenerate faces, which are never sampled).
    """
    import trimesh

    _check_mesh(mesh, "mesh")
    if int(n_samples) < 1:
        raise InputError(f"n_samples must be >= 1, got {n_samples}")
    tm = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices, dtype=np.float64),
        faces=np.asarray(mesh.triangles, dtype=np.int64),
        process=False,
    )
    if not tm.area > 0:
        raise InputError("mesh has zero surface area")
    points, face_index = trimesh.sample.sample_surface(tm, int(n_samples), seed=seed)
    normals = np.asarray(tm.face_normals, dtype=np.float64)[face_index]
    return np.asarray(points, dtype=np.float64), normals


def _diagonal(mesh) -> float:
    v = np.asarray(mesh.vertices, dtype=np.float64)
    return float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))


def evaluate(
    mesh,
    reference,
    *,
    n_samples: int = 100_000,
    seed: int = 0,
    fscore_threshold: float = 0.01,
) -> dict[str, float]:
    """Compare a reconstructed mesh with a reference mesh.

    Parameters
    ----------
    mesh : open3d.geometry.TriangleMesh
        The reconstruction, (V, 3) vertices / (F, 3) triangles.
    reference : open3d.geometry.TriangleMesh or (points (R, 3), normals (R, 3))
        The ground truth; its bounding-box diagonal is the unit of all distances. A point set (e.g. a scan
        without a mesh) stands for its surface as it is: its points are the reference samples.
    n_samples : int
        Surface samples per mesh (>= 100k for reported numbers).
    seed : int
        Sampling seed; same seed => same numbers.
    fscore_threshold : float
        Distance threshold of the F-score, as a fraction of the reference diagonal.

    Returns
    -------
    dict
        ``chamfer_l1``, ``hausdorff``, ``normal_consistency``, ``fscore`` (floats).
    """
    from scipy.spatial import cKDTree

    _check_mesh(mesh, "mesh")
    if isinstance(reference, tuple):
        p_ref, n_ref = (np.array(a, dtype=np.float64) for a in reference)
        if p_ref.ndim != 2 or p_ref.shape[1] != 3 or p_ref.shape != n_ref.shape or not len(p_ref):
            raise InputError(f"reference points and normals must both be (R, 3), got {p_ref.shape}, {n_ref.shape}")
        n_ref /= np.linalg.norm(n_ref, axis=1, keepdims=True).clip(1e-12)
    else:
        _check_mesh(reference, "reference")
    if not fscore_threshold > 0:
        raise InputError(f"fscore_threshold must be > 0, got {fscore_threshold}")
    diag = float(np.linalg.norm(np.ptp(p_ref, axis=0))) if isinstance(reference, tuple) else _diagonal(reference)
    if not diag > 0:
        raise InputError("reference has a zero-size bounding box")

    rng_pred, rng_ref = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    p_pred, n_pred = sample_surface(mesh, n_samples, seed=rng_pred)
    if not isinstance(reference, tuple):
        p_ref, n_ref = sample_surface(reference, n_samples, seed=rng_ref)
    p_pred /= diag
    p_ref /= diag

    d_pr, i_pr = cKDTree(p_ref).query(p_pred, k=1)
    d_rp, i_rp = cKDTree(p_pred).query(p_ref, k=1)

    chamfer = 0.5 * (d_pr.mean() + d_rp.mean())
    hausdorff = max(d_pr.max(), d_rp.max())
    nc = 0.5 * (
        np.abs(np.sum(n_pred * n_ref[i_pr], axis=1)).mean()
        + np.abs(np.sum(n_ref * n_pred[i_rp], axis=1)).mean()
    )
    precision = float(np.mean(d_pr < fscore_threshold))
    recall = float(np.mean(d_rp < fscore_threshold))
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    result = {
        "chamfer_l1": float(chamfer),
        "hausdorff": float(hausdorff),
        "normal_consistency": float(nc),
        "fscore": float(fscore),
    }
    logger.debug("evaluate (diag %.6g, %d samples, seed %d): %s", diag, n_samples, seed, result)
    return result


def point_to_mesh_distance(points: np.ndarray, mesh) -> np.ndarray:
    """Unsigned distance from each point to the surface of a triangle mesh.

    Parameters
    ----------
    points : (N, 3) float
    mesh : open3d.geometry.TriangleMesh
        Vertices (V, 3), triangles (F, 3), F >= 1.

    Returns
    -------
    (N,) float64
        Computed in float32 by open3d's RaycastingScene (relative error ~1e-7 of the coordinates).
    """
    import open3d as o3d

    _check_mesh(mesh, "mesh")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"points must be (N, 3), got {points.shape}")
    if len(points) == 0:
        return np.zeros(0, dtype=np.float64)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.asarray(mesh.triangles, dtype=np.uint32)),
    )
    d = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32)))
    return d.numpy().astype(np.float64)


QUALITY_KEYS = ("coverage", "invented", "components", "edge_manifold", "boundary_edges", "watertight", "euler")
"""Keys of the dictionary :func:`scan_quality` returns, in display order."""


def mesh_facts(mesh) -> dict:
    """What a user opening ``mesh`` sees that distances do not: ``components`` (connected through shared vertices),
    ``edge_manifold`` (no edge in more than two triangles), ``boundary_edges`` (edges of one triangle),
    ``watertight`` (edge-manifold without boundary edges) and the Euler characteristic ``euler`` (V − E + F: 2 per
    closed component without handles).

    mesh : open3d.geometry.TriangleMesh (an empty one: 0 components, not watertight)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from geomprior.mesh import edge_uses

    triangles = np.asarray(mesh.triangles, dtype=np.int64)
    if not len(triangles):
        return {"components": 0, "edge_manifold": True, "boundary_edges": 0, "watertight": False, "euler": 0}
    used = np.unique(triangles)
    uses = edge_uses(triangles)
    f = np.arange(len(triangles))
    graph = coo_matrix((np.ones(3 * len(f), np.int8), (np.tile(f, 3), len(f) + triangles.T.ravel())),
                       shape=(len(f) + used.max() + 1,) * 2)
    _, label = connected_components(graph, directed=False)
    components = len(np.unique(label[: len(f)]))
    boundary = int((uses == 1).sum())
    manifold = bool((uses <= 2).all())
    return {"components": components, "edge_manifold": manifold, "boundary_edges": boundary,
            "watertight": manifold and boundary == 0, "euler": int(len(used) - len(uses) + len(triangles))}


def scan_quality(mesh, points: np.ndarray, *, spacing: float, near: float = 3.0, far: float = 6.0) -> dict:
    """How well a mesh represents a scan without a reference surface (DESIGN.md section 6), with ``mesh_facts``.

    mesh    : open3d.geometry.TriangleMesh
    points  : (N, 3) float the scan
    spacing : the scan's spacing (``geomprior.scan.spacing``: median distance to the 8th nearest neighbour)

    ``coverage``: share of the points within ``near`` spacings of the mesh; ``invented``: share of the mesh's area
    farther than ``far`` spacings from every point (surface the scan does not support), measured at triangle
    centres. Distances are computed about the points' centre (no float32 precision loss far from the origin).
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not len(points):
        raise InputError(f"points must be (N, 3) with N >= 1, got {points.shape}")
    facts = mesh_facts(mesh)
    triangles = np.asarray(mesh.triangles, dtype=np.int64)
    if not len(triangles):
        return {"coverage": 0.0, "invented": 0.0, **facts}
    import open3d as o3d

    centre = points.mean(0)
    local = o3d.geometry.TriangleMesh(mesh)
    local.vertices = o3d.utility.Vector3dVector(np.asarray(mesh.vertices) - centre)
    covered = float(np.mean(point_to_mesh_distance(points - centre, local) <= near * spacing))
    corners = np.asarray(local.vertices)[triangles]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    dist, _ = cKDTree(points - centre).query(corners.mean(1), workers=-1)
    invented = float(area[dist > far * spacing].sum() / area.sum()) if area.sum() > 0 else 0.0
    return {"coverage": covered, "invented": invented, **facts}
