"""Filters that move a mesh's vertices and keep its triangles: :func:`keep_edges` takes the noise out without
rounding edges, :func:`follow_points` moves the mesh onto the points it was made from, :func:`taubin_smooth` takes
out what roughness is left at the scale of a triangle."""

from __future__ import annotations

import numpy as np

# keep_edges: two face normals this far apart (|n_i − n_j|, a 12° angle) weigh e^-½ in each other's filtered normal
EDGE_SIGMA = 0.2
VERTEX_STEPS = 20  # keep_edges: steps moving each vertex onto the planes of its faces


def keep_edges(vertices: np.ndarray, triangles: np.ndarray, iterations: int, *, sigma: float = EDGE_SIGMA,
               vertex_steps: int = VERTEX_STEPS) -> np.ndarray:
    """The vertices (V, 3) of a mesh (triangles (F, 3)) moved to take out noise without rounding its edges.

    Bilateral normal filtering (Zheng et al. 2011): ``iterations`` times, each face normal becomes the mean of the
    normals of the faces sharing a vertex with it, weighted by area × exp(−d²/2σ_s²) (d the distance between the
    centroids, σ_s the mean edge length) × exp(−|n_i − n_j|²/2σ²): faces across an edge, whose normals differ,
    hardly mix. Then ``vertex_steps`` times each vertex moves by the mean of its faces' offsets to it along their
    filtered normals (Sun et al. 2007). Last, the vertices of any triangle turned over (its normal more than 90°
    from before) go back where they were, until none is: a fold is where the moved mesh would cut itself. The
    triangles are unchanged. open3d's Laplacian and Taubin filters round edges, MeshLab's two-step smoothing is
    this idea outside our dependencies.
    """
    vertices = np.array(vertices, dtype=np.float64)
    if iterations <= 0 or not len(triangles):
        return vertices
    before = vertices.copy()
    nf, nv = len(triangles), len(vertices)
    of_vertex = _incidence(triangles, nv)
    pairs = (of_vertex.T @ of_vertex).tocsr()  # faces sharing a vertex, each face with itself
    counts, cols = np.diff(pairs.indptr), pairs.indices
    start, centres, areas = _faces(vertices, triangles)
    normals = start
    sigma_s = max(float(np.linalg.norm(_sides(vertices, triangles), axis=2).mean()), 1e-30)
    near = (centres - centres.mean(0)).astype(np.float32)  # float32: each term is a product of per-pair gathers
    near = np.repeat(near, counts, axis=0) - near[cols]
    spatial = areas[cols].astype(np.float32) * np.exp(np.einsum("ij,ij->i", near, near) / np.float32(-2 * sigma_s**2))
    for _ in range(iterations):  # |n_i − n_j|² = 2 − 2 n_i·n_j for unit normals
        unit = normals.astype(np.float32)
        agree = np.einsum("ij,ij->i", np.repeat(unit, counts, axis=0), unit[cols])
        pairs.data = spatial * np.exp((agree - 1) / np.float32(sigma**2))
        summed = pairs @ normals
        normals = summed / np.linalg.norm(summed, axis=1, keepdims=True).clip(1e-300)
    planes = (of_vertex @ (normals[:, :, None] * normals[:, None, :]).reshape(nf, 9)).reshape(nv, 3, 3)
    uses = np.asarray(of_vertex.sum(1)).clip(1)
    for _ in range(vertex_steps):  # x += mean over its faces f of n_f n_fᵀ (c_f − x)
        centres = vertices[triangles].mean(1)
        pull = of_vertex @ (normals * np.sum(normals * centres, 1, keepdims=True))
        vertices += (pull - np.einsum("vij,vj->vi", planes, vertices)) / uses
    return _unfold(vertices, before, triangles, start)


HALVINGS = 8  # follow_points, taubin_smooth: a move that turns a triangle over is halved this often, then undone
# follow_points, in root-mean-square edge lengths: points farther off the mesh than FAR_POINT do not count (the
# mesh is not theirs: a stray, or another part of a sparse thin shape), and no vertex moves farther than MAX_MOVE
# (larger moves of neighbouring vertices along diverging normals make triangles cross)
FAR_POINT = 4.0
MAX_MOVE = 0.5


def follow_points(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray, width: float) -> np.ndarray:
    """The vertices (V, 3) of a mesh (triangles (F, 3)) moved along their normals onto the points (P, 3) it was
    made from, on average: by the mean of the points' signed distances to the mesh (signed by the side of the
    closest triangle), averaged over the surface about ``width`` far (Gaussian-like: exp(−d²/width²)).

    Each point's distance goes to the three corners of its closest triangle (barycentric weights); the sums and
    their weights spread over the mesh by steps of averaging each vertex with its neighbours, as many as make the
    spread ``width`` (a random walk), and the move is their ratio. Along the surface, so a thin part's other side
    does not count. Screened Poisson and the smoothing after it leave a surface inside its points' convex parts
    and off them where they are sparse; this puts it back, averaged so that the points' noise stays out. Points
    more than ``FAR_POINT`` edge lengths off the mesh do not count, and no vertex moves more than ``MAX_MOVE``
    edge lengths (root-mean-square edge). Vertices no point reaches stay; the vertices of a triangle the move
    turns over move half as far, ``HALVINGS`` times, then not at all (a fold is where the mesh would cut itself).
    Closest points: open3d's RaycastingScene.
    """
    import open3d as o3d
    from scipy.sparse import diags

    vertices = np.array(vertices, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if not width > 0 or not len(triangles) or not len(points):
        return vertices
    nv = len(vertices)
    face_normals, _, areas = _faces(vertices, triangles)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(triangles.astype(np.uint32)))
    hit = scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    closest, face = hit["points"].numpy().astype(np.float64), hit["primitive_ids"].numpy().astype(np.int64)
    u, v = hit["primitive_uvs"].numpy().astype(np.float64).T
    away = points - closest  # its signed distance: the distance, signed by the closest triangle's side
    offset = np.linalg.norm(away, axis=1) * np.sign(np.einsum("ij,ij->i", away, face_normals[face]))
    edge = np.sqrt(np.mean(np.sum(_sides(vertices, triangles) ** 2, 2)))
    near = np.abs(offset) <= FAR_POINT * edge
    offset, face, u, v = offset[near], face[near], u[near], v[near]
    corners, bary = triangles[face].ravel(), np.stack([1 - u - v, u, v], 1).clip(0).ravel()
    sums = np.stack([np.bincount(corners, bary, nv), np.bincount(corners, bary * np.repeat(offset, 3), nv)], 1)
    of_vertex = _incidence(triangles, nv)
    ring = (of_vertex @ of_vertex.T).tocsr()  # the vertices sharing a triangle with each, itself included
    ring.data[:] = 1.0
    step = diags(1.0 / np.asarray(ring.sum(1)).ravel()) @ ring  # each vertex: the mean of it and its ring
    # a step moves a walker one edge with probability deg/(deg+1) ≈ 6/7: after n steps each coordinate's variance
    # is about n · 3/7 · mean(edge²), the Gaussian exp(−d²/width²)'s is width²/2
    for _ in range(int(np.ceil(7 * width**2 / (6 * edge**2)))):
        sums = step @ sums
    shift = np.clip(sums[:, 1] / np.where(sums[:, 0] > 0, sums[:, 0], 1.0), -MAX_MOVE * edge, MAX_MOVE * edge)
    normals = of_vertex @ (face_normals * areas[:, None])  # area-weighted vertex normals
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-300)
    return _halve_folds(vertices + shift[:, None] * normals, vertices, triangles, face_normals)


def taubin_smooth(vertices: np.ndarray, triangles: np.ndarray, steps: int) -> np.ndarray:
    """The vertices (V, 3) of a mesh (triangles (F, 3)) after ``steps`` steps of Taubin's λ|μ smoothing (open3d's,
    λ 0.5, μ −0.53: a low-pass filter that, unlike Laplacian smoothing, does not shrink the mesh).

    A few steps take out the roughness at the scale of a triangle that the Poisson surface keeps from its points'
    noise (face normals tilted back and forth from one triangle to the next) and leave larger shapes as they are.
    The vertices of a triangle it turns over move half as far, as in :func:`follow_points`.
    """
    import open3d as o3d

    vertices = np.array(vertices, dtype=np.float64)
    if steps <= 0 or not len(triangles):
        return vertices
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(np.asarray(triangles, dtype=np.int32)))
    smooth = np.asarray(mesh.filter_smooth_taubin(number_of_iterations=steps).vertices)
    return _halve_folds(smooth, vertices, triangles, _faces(vertices, triangles)[0])


def _halve_folds(moved: np.ndarray, before: np.ndarray, triangles: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """``moved`` with the vertices of every triangle turned over (more than 90° from its ``normals`` at
    ``before``) moved half as far from ``before``, ``HALVINGS`` times, then not at all (``_unfold``)."""
    share, target = np.ones((len(before), 1)), moved
    for _ in range(HALVINGS):
        over = np.sum(normals * _faces(moved, triangles)[0], 1) < 0
        if not over.any():
            break
        share[np.unique(triangles[over])] *= 0.5
        moved = before + share * (target - before)
    return _unfold(moved, before, triangles, normals)


def _unfold(vertices: np.ndarray, before: np.ndarray, triangles: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """``vertices`` with those of every triangle turned over (more than 90° from its ``normals`` at ``before``)
    back at ``before``, until none is: a fold is where the moved mesh would cut itself."""
    while (over := np.sum(normals * _faces(vertices, triangles)[0], 1) < 0).any():
        back = np.unique(triangles[over])
        vertices[back] = before[back]
    return vertices


def _faces(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, 3) unit normals, (F, 3) centroids, (F,) areas of the triangles."""
    c = vertices[triangles]
    cross = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    double = np.linalg.norm(cross, axis=1)
    return cross / double.clip(1e-300)[:, None], c.mean(1), 0.5 * double


def _incidence(triangles: np.ndarray, n_vertices: int):
    """(V, F) sparse matrix: 1 where a vertex is a corner of a triangle."""
    from scipy.sparse import csr_matrix

    nf = len(triangles)
    return csr_matrix((np.ones(3 * nf), (triangles.ravel(), np.repeat(np.arange(nf), 3))), shape=(n_vertices, nf))


def _sides(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F, 3, 3) the vectors along each triangle's three sides."""
    return vertices[triangles] - vertices[np.roll(triangles, 1, axis=1)]
