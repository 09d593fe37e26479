"""Meshes from dense oriented points.

Screened Poisson (open3d) gives a smooth surface, but open3d extracts it without its manifold option: the mesh has
non-manifold edges, a few self-intersections and small closed bubbles. :func:`manifold_surface` re-extracts such a
surface as an edge-manifold mesh without self-intersections: marching cubes (Lewiner et al.'s MC33, topologically
consistent) of the signed distance to it, evaluated only in a narrow band of cubes around it. :func:`mesh_surface`
is what a reconstruction uses: per object, Poisson, then the manifold re-extraction, then either the closed
surface's largest component (a watertight mesh) or the part near the points (an open one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from .mesh_filters import _faces, _sides, follow_points, keep_edges, taubin_smooth

log = logging.getLogger(__name__)

# closed="auto": a surface whose share of area farther than the trim distance from every dense point is at most this
# is closed (the scan encloses a volume, up to small gaps); above it the scan is open and the mesh is trimmed
CLOSED_SHARE = 0.002
BLOCK = 32  # marching cubes runs on blocks of BLOCK³ cubes (memory stays proportional to the band, not the box)
_CORNERS = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)  # (8, 3) corners of a cube
_BITS = 21  # bits per axis in a packed cube index (2 million cubes a side) ...
_OFFSET = np.full(3, 1 << (_BITS - 1), np.int64)  # ... about the grid's origin, half of them on either side
_NEAR = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)  # a cube and its neighbours
GROW_ROUNDS = 8  # at most this many rounds of growing the band where the surface leaves it


def poisson_mesh(
    points: np.ndarray, normals: np.ndarray, *, depth: int = 9, density_trim: float = 0.0,
    max_distance: float | None = None, threads: int = 1, scale: float = 1.1,
):
    """Screened Poisson surface (open3d) of oriented points (M, 3).

    threads      : open3d's worker threads; 1 (the default) gives the same mesh on every run, more are
                   faster but order vertices differently from run to run
    scale        : the octree's box, a multiple of the points' bounding box (a surface that would close outside it
                   is cut open at its faces)

    density_trim : drop this share of the lowest-density vertices (open3d's usual recipe)
    max_distance : drop vertices farther than this from every input point (removes the closing "balloon"
                   over open boundaries without eating into well-sampled surface)
    """
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pc.normals = o3d.utility.Vector3dVector(normals)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pc, depth=depth, scale=scale,
                                                                               n_threads=threads)
    drop = np.zeros(len(mesh.vertices), bool)
    dens = np.asarray(dens)
    if density_trim > 0 and len(dens):
        drop |= dens < np.quantile(dens, density_trim)
    if max_distance is not None and len(drop):
        dist, _ = cKDTree(points).query(np.asarray(mesh.vertices), workers=-1)
        drop |= dist > max_distance
    if drop.any():
        mesh.remove_vertices_by_mask(drop)
    mesh.compute_vertex_normals()
    return mesh


def _pack(cubes: np.ndarray) -> np.ndarray:
    """Integer cube coordinates (..., 3), each in [-2^(_BITS-1), 2^(_BITS-1)), -> one int64 each."""
    c = cubes + _OFFSET
    return (c[..., 0] << (2 * _BITS)) | (c[..., 1] << _BITS) | c[..., 2]


def _unpack(keys: np.ndarray) -> np.ndarray:
    mask = (1 << _BITS) - 1
    return np.stack([keys >> (2 * _BITS), (keys >> _BITS) & mask, keys & mask], -1) - _OFFSET


class _PseudoNormals:
    """Angle-weighted pseudo-normals (Bærentzen and Aanæs 2005) of a triangle mesh: at a closest point, the normal of
    its face, or of the edge or vertex it lies on. Their sign against (query − closest point) is the inside/outside
    of a closed manifold mesh, also where the closest point is an edge or a vertex (a face normal is not there)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        corner = vertices[faces]  # (F, 3, 3)
        self.face = _faces(vertices, faces)[0]
        self.vertex = np.zeros_like(vertices)
        for k in range(3):
            a, b = corner[:, (k + 1) % 3] - corner[:, k], corner[:, (k + 2) % 3] - corner[:, k]
            cos = np.einsum("ij,ij->i", a, b) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                                           1e-300)
            np.add.at(self.vertex, faces[:, k], np.arccos(np.clip(cos, -1, 1))[:, None] * self.face)
        # edge k of a face is the one opposite its vertex k; an edge's normal is the sum of its faces' normals
        ends = np.sort(np.stack([faces[:, [(k + 1) % 3, (k + 2) % 3]] for k in range(3)], 1), 2)  # (F, 3, 2)
        ids, edge_of = np.unique(ends[..., 0] * len(vertices) + ends[..., 1], return_inverse=True)
        self.edge = np.zeros((len(ids), 3))
        np.add.at(self.edge, edge_of.ravel(), np.repeat(self.face, 3, axis=0))
        self.edge_of = edge_of.reshape(-1, 3)
        self.faces = faces

    def __call__(self, face: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """(Q, 3) at closest points on triangles ``face`` (Q,) with barycentric coordinates ``uv`` (Q, 2) (of the
        triangle's vertices 1 and 2)."""
        bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)
        zero = bary < 1e-4
        out = self.face[face]
        on_edge = zero.sum(1) == 1
        out[on_edge] = self.edge[self.edge_of[face[on_edge], np.argmax(zero[on_edge], 1)]]
        on_vertex = zero.sum(1) >= 2
        out[on_vertex] = self.vertex[self.faces[face[on_vertex], np.argmax(bary[on_vertex], 1)]]
        return out


def manifold_surface(mesh, *, cube: float | None = None, max_cube: float | None = None):
    """The surface of a triangle mesh re-extracted as an edge-manifold mesh without self-intersections.

    mesh     : open3d.geometry.TriangleMesh, oriented (e.g. a Poisson surface; non-manifold edges allowed)
    cube     : side of the marching-cubes grid (default: the mesh's median edge length, its own resolution)
    max_cube : the default side at most this (None: no bound)

    Marching cubes (MC33) of the signed distance to ``mesh`` on the cubes within one cube of it, in blocks of
    ``BLOCK``³ cubes; blocks share the vertices on their faces. The sign is that of the angle-weighted
    pseudo-normal at the closest point, which is exact for a closed manifold mesh; faces on the mesh's non-manifold
    edges are left out of the distance first (the sign is ambiguous there, and would start sheets off the surface),
    their small gaps are closed by the neighbouring faces' planes. The result can have more components than
    ``mesh`` has where the input holds tiny closed bubbles; a closed input gives a closed (watertight) output.
    Returns an open3d.geometry.TriangleMesh, possibly empty.
    """
    import open3d as o3d

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = _without_non_manifold_edges(np.asarray(mesh.triangles, dtype=np.int64),
                                        np.asarray(mesh.get_non_manifold_edges(allow_boundary_edges=True)))
    if cube is None and len(faces):
        cube = float(np.median(np.linalg.norm(_sides(vertices, faces), axis=2)))
        cube = cube if max_cube is None else min(cube, max_cube)
    if not len(faces) or not cube > 0:
        return o3d.geometry.TriangleMesh()
    origin = vertices.min(0)
    field = _Field(vertices - origin, faces, cube)
    cubes = _crossing_cubes(field, vertices - origin, faces)
    if not len(cubes):
        return o3d.geometry.TriangleMesh()
    v, f = _shared_vertices(*_march(cubes, field))
    out = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v * cube + origin),
                                    o3d.utility.Vector3iVector(f.astype(np.int32)))
    out.remove_unreferenced_vertices()
    log.debug("manifold surface: %d crossing cubes of side %.4g -> %d triangles", len(cubes), cube,
              len(out.triangles))
    return out


def _shift(step) -> int:
    """The packed-key offset of a move by ``step`` (3,) int cubes."""
    return int(_pack(np.asarray(step, np.int64)) - _pack(np.zeros(3, np.int64)))


def _without_non_manifold_edges(faces: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """The faces (F, 3) without those on any of the edges ``bad`` (E, 2)."""
    if not len(bad):
        return faces
    n = int(faces.max()) + 1
    ends = np.sort(np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1), 2)
    bad = np.sort(bad, 1)
    return faces[~np.isin(ends[..., 0] * n + ends[..., 1], bad[:, 0] * n + bad[:, 1]).any(1)]


def _crossing_cubes(field: "_Field", vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(C,) packed keys of the cubes the zero set of ``field`` crosses, near the mesh (vertices about the grid's
    origin, faces).

    The band starts as the cubes holding a vertex or a face centre, and their neighbours. It grows where the surface
    leaves it (a face of a band cube with corners on both sides, whose neighbour is outside the band), so that the
    surface closes: away from the mesh the sign can differ from its side (near non-manifold or self-intersecting
    spots), and a sheet started there must end somewhere closed (at most ``GROW_ROUNDS`` rounds).
    """
    cube = field.cube
    seeds = _distinct(_pack(np.floor(np.concatenate([vertices, vertices[faces].mean(1)]) / cube).astype(np.int64)))
    band = _distinct((seeds[:, None] + np.array([_shift(s) for s in _NEAR])[None]).ravel())
    faces_of_cube = [(_CORNERS[:, axis] == side, _shift(np.eye(3, dtype=np.int64)[axis] * (1 if side else -1)))
                     for axis in range(3) for side in (0, 1)]
    new = band
    for _ in range(GROW_ROUNDS):
        inside = field.at(new) < 0
        leaving = [new[inside[:, face].any(1) & ~inside[:, face].all(1)] + step for face, step in faces_of_cube]
        new = _distinct(np.concatenate(leaving))
        new = new[~_within(new, band)]
        if not len(new):
            break
        band = np.insert(band, np.searchsorted(band, new), new)
    else:
        log.info("manifold surface: the band still grew after %d rounds; the mesh may have boundaries", GROW_ROUNDS)
    inside = field.at(band) < 0
    return band[inside.any(1) & ~inside.all(1)]


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of an int array, sorted: ``np.unique`` by sorting (numpy's hashed ``np.unique`` is several
    times slower on the millions of keys of a band)."""
    keys = np.sort(keys)
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first]


def _within(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """(K,) bool: which of ``keys`` are in ``sorted_keys`` (sorted ascending)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    return sorted_keys[np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)] == keys


def _march(keys: np.ndarray, field: "_Field") -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes (skimage's Lewiner MC33) on the cubes ``keys`` (C,) of ``field``, block by block: vertices
    (V, 3) in cube units (one copy per block) and triangles (T, 3)."""
    from skimage.measure import marching_cubes

    cubes, corner_of = _unpack(keys), field.corner_index(keys)
    blocks, which = np.unique(_pack(cubes // BLOCK), return_inverse=True)
    order = np.argsort(which.ravel(), kind="stable")
    starts = np.searchsorted(which.ravel()[order], np.arange(len(blocks) + 1))
    verts, tris, count = [], [], 0
    for b in range(len(blocks)):
        rows = order[starts[b]:starts[b + 1]]
        lo = cubes[rows].min(0)
        at = cubes[rows] - lo
        shape = tuple(at.max(0) + 2)
        volume = np.zeros(shape, np.float32)
        volume[tuple((at[:, None] + _CORNERS).reshape(-1, 3).T)] = field.values[corner_of[rows]].ravel()
        mask = np.zeros(shape, bool)
        mask[tuple((at + 1).T)] = True  # skimage marks a cube by its upper corner
        v, f, _, _ = marching_cubes(volume, 0.0, mask=mask, allow_degenerate=False, gradient_direction="descent")
        verts.append(v + lo)
        tris.append(f + count)
        count += len(v)
    return np.concatenate(verts).astype(np.float64), np.concatenate(tris)


def _shared_vertices(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One vertex where blocks made several, and no triangle left degenerate by it.

    A vertex on a grid edge is named by the edge (lower corner, axis), so that blocks share theirs; MC33 also puts
    vertices inside some cubes (one block's, repeated per triangle), which are named by their position."""
    frac = np.abs(v - np.round(v))
    axis = np.argmax(frac, 1)
    corner = np.round(v).astype(np.int64)
    rows = np.arange(len(v))
    corner[rows, axis] = np.floor(v[rows, axis]).astype(np.int64)
    name = _pack(corner) * 3 + axis
    inner = (frac > 1e-5).sum(1) > 1
    if inner.any():
        _, same = np.unique(np.round(v[inner] * 2**20).astype(np.int64), axis=0, return_inverse=True)
        name[inner] = -1 - same.ravel()
    _, first, index = np.unique(name, return_index=True, return_inverse=True)
    f = index.ravel()[f]
    return v[first], f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]


_CORNER_SHIFTS = np.array([_shift(c) for c in _CORNERS])  # packed-key offsets of a cube's 8 corners


class _Field:
    """The signed distance to a triangle mesh at the corners of grid cubes, computed once per corner.

    vertices (V, 3) about the grid's origin (small coordinates: they go through float32, open3d's RaycastingScene),
    faces (F, 3); cube: the grid's side. Sign: angle-weighted pseudo-normals (``_PseudoNormals``); no value is
    exactly 0 (at least 1e-3 cube), so that no marching-cubes vertex sits on a corner."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, cube: float):
        import open3d as o3d

        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
        self.pseudo = _PseudoNormals(vertices, faces)
        self.cube = cube
        self.keys = np.zeros(0, np.int64)  # sorted corner keys
        self.values = np.zeros(0)

    def corner_index(self, cubes: np.ndarray) -> np.ndarray:
        """(C, 8) rows of ``values`` of the corners of the cubes (C,) packed keys (all computed)."""
        return np.searchsorted(self.keys, cubes[:, None] + _CORNER_SHIFTS[None])

    def at(self, cubes: np.ndarray) -> np.ndarray:
        """(C, 8) signed distances at the corners of the cubes (C,) packed keys."""
        import open3d as o3d

        new = _distinct((cubes[:, None] + _CORNER_SHIFTS[None]).ravel())
        new = new[~_within(new, self.keys)]
        values = np.empty(len(new))
        for start in range(0, len(new), 1 << 20):
            q = _unpack(new[start:start + (1 << 20)]) * self.cube
            hit = self.scene.compute_closest_points(o3d.core.Tensor(q.astype(np.float32)))
            offset = q - hit["points"].numpy()
            normal = self.pseudo(hit["primitive_ids"].numpy().astype(np.int64),
                                 hit["primitive_uvs"].numpy().astype(np.float64))
            d = np.maximum(np.linalg.norm(offset, axis=1), 1e-3 * self.cube)
            values[start:start + len(q)] = np.where(np.einsum("ij,ij->i", offset, normal) >= 0, d, -d)
        at = np.searchsorted(self.keys, new)
        self.keys, self.values = np.insert(self.keys, at, new), np.insert(self.values, at, values)
        return self.values[self.corner_index(cubes)]


@dataclass
class _Piece:
    """One object's part of a mesh (``mesh_surface``)."""

    vertices: np.ndarray
    triangles: np.ndarray
    facts: dict


def mesh_surface(points: np.ndarray, normals: np.ndarray, *, objects: np.ndarray | None = None, depth: int = 9,
                 closed: bool | Literal["auto"] = "auto", max_distance: float | np.ndarray | None = None,
                 min_area: float = 0.0, min_points: int = 0,
                 support: tuple[np.ndarray, np.ndarray | None] | None = None, trim: float | np.ndarray | None = None,
                 edge_filter: int = 0, max_cube: float | None = None, fidelity: float = 0.0, taubin: int = 0,
                 manifold: bool = True) -> tuple[object, list[dict]]:
    """A mesh a user keeps, from dense oriented points (M, 3) (and their unit normals (M, 3)).

    objects      : (M,) int  the object of each point (None: one); each is meshed on its own, no surface spans two
    depth        : Screened Poisson octree depth of the largest object (a smaller object gets the depth that keeps
                   the same resolution)
    closed       : True: each object's mesh is its closed (watertight) surface, facing outward; False: the part of
                   the surface within ``max_distance`` of the points; either without pieces of less than ``min_area``
                   that fewer than ``min_points`` of the points lie nearest to (a part scanned sparsely); "auto":
                   closed where at most ``CLOSED_SHARE`` of the closed surface's area lies farther than
                   ``max_distance`` from every point (the points enclose a volume), else open
    max_distance : how far the open mesh reaches beyond the points (None: open meshes untrimmed, "auto" closed)
    trim         : how far an open mesh reaches beyond the points, where it is to end closer than the
                   ``max_distance`` that decides "auto" (None: ``max_distance``)
    support      : (S, 3) points and their (S,) objects (None: one object) that ``max_distance`` is measured from
                   instead of ``points`` (e.g. denser points on the same surface, where ``points`` are too sparse
                   to tell a gap in the scan from the space between two of them)
    ``max_distance`` and ``trim`` may also be one distance per point they are measured from ((S,) or (M,)): a
    vertex is then far when it lies beyond the distance of its nearest such point
    edge_filter  : iterations of :func:`keep_edges` on the mesh's vertices (0: none)
    fidelity     : then :func:`follow_points` with this width (0: not; it may leave triangles crossing)
    taubin       : last, steps of :func:`taubin_smooth` (0: none)
    max_cube     : the manifold re-extraction's cubes at most this a side (None: the Poisson mesh's own resolution,
                   which follows the points' spacing: a sparse scan's facets and chords, inside its curves, remain)
    manifold     : False: one Screened Poisson mesh of all the points as open3d gives it, its vertices farther than
                   ``max_distance`` from every point dropped (what geomprior did before; ``objects``, ``closed``,
                   ``min_area``, ``min_points``, ``edge_filter``, ``fidelity`` and ``taubin`` unused)

    Every object: Screened Poisson, then ``manifold_surface`` (edge-manifold, no self-intersections); a closed mesh
    with handles that one depth less does not have is taken at that depth (such handles are narrower than two cells:
    noise where a thin part's two sides come close); last, ``edge_filter``, ``fidelity`` and ``taubin``. Returns the
    mesh (open3d.geometry.TriangleMesh, vertex normals computed) and per object a dict: its points, depth, whether it
    is closed, the share of its closed surface beyond ``max_distance`` (``open_share``), its components and (closed)
    its genus.
    """
    import open3d as o3d

    points = np.asarray(points, dtype=np.float64)
    if not manifold:
        mesh = poisson_mesh(points, normals, depth=depth, max_distance=max_distance)
        return mesh, [{"points": len(points), "depth": depth, "closed": False, "open_share": None,
                       "components": None, "genus": None}]
    objects = np.zeros(len(points), np.int64) if objects is None else np.asarray(objects)
    if closed not in (True, False, "auto"):
        raise ValueError(f"closed must be True, False or 'auto', got {closed!r}")
    ids = np.unique(objects)
    reach, reach_objects = (points, objects) if support is None else (np.asarray(support[0], dtype=np.float64),
                                                                       support[1])
    reach_objects = np.zeros(len(reach), np.int64) if reach_objects is None else np.asarray(reach_objects)
    extents = {o: float(np.linalg.norm(np.ptp(points[objects == o], axis=0))) for o in ids}
    largest = max(extents.values(), default=0.0)
    pieces = []
    for o in ids:
        rows = objects == o
        if rows.sum() < 4 or not extents[o] > 0:
            continue
        d = depth - int(round(np.log2(largest / extents[o]))) if largest > 0 else depth
        near = reach_objects == o
        pieces.append(_mesh_object(points[rows], normals[rows], depth=max(4, d), closed=closed,
                                   max_distance=_part(max_distance, near), min_area=min_area, min_points=min_points,
                                   trim=_part(trim, near), reach=reach[near], max_cube=max_cube))
    vertices, triangles, count = [], [], 0
    for p in pieces:
        vertices.append(p.vertices)
        triangles.append(p.triangles + count)
        count += len(p.vertices)
    mesh = o3d.geometry.TriangleMesh()
    if count:
        triangles = np.concatenate(triangles)
        vertices = keep_edges(np.concatenate(vertices), triangles, edge_filter)
        vertices = taubin_smooth(follow_points(vertices, triangles, points, fidelity), triangles, taubin)
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                         o3d.utility.Vector3iVector(triangles.astype(np.int32)))
        mesh.compute_vertex_normals()
    return mesh, [p.facts for p in pieces]


def _part(distance, rows):
    """A distance for some of the points: itself if one for all, else the rows' own."""
    return distance[rows] if np.ndim(distance) else distance


def _mesh_object(points, normals, *, depth, closed, max_distance, min_area, min_points=0, trim=None, reach=None,
                 max_cube=None) -> _Piece:
    piece = _extract(points, normals, depth=depth, closed=closed, max_distance=max_distance, min_area=min_area,
                     min_points=min_points, trim=trim, reach=reach, max_cube=max_cube)
    if piece.facts["closed"] and piece.facts["genus"] > 0 and depth > 4:
        # a handle that one level coarser does not have is narrower than two of its cells: noise where a thin part's
        # two sides come close (a toe, a tail's tip), not the shape's; a real one (a torus's hole) stays
        coarser = _extract(points, normals, depth=depth - 1, closed=True, max_distance=max_distance,
                           min_area=min_area, min_points=min_points, reach=reach, max_cube=max_cube)
        if (coarser.facts["genus"] < piece.facts["genus"]
                and coarser.facts["components"] <= piece.facts["components"]):
            log.info("mesh: %d handle(s) at depth %d are gone at depth %d; kept that", piece.facts["genus"]
                     - coarser.facts["genus"], depth, depth - 1)
            piece = coarser
    return piece


def _extract(points, normals, *, depth, closed, max_distance, min_area, min_points=0, trim=None, reach=None,
             max_cube=None) -> _Piece:
    """One object's mesh at one Poisson depth (``_mesh_object``); ``max_distance`` and ``trim`` are measured from
    ``reach`` (default: the points), each a distance or one per ``reach`` point."""
    import trimesh

    reach = points if reach is None else reach
    raw = poisson_mesh(points, normals, depth=depth)
    if closed is not False and _open_edges(np.asarray(raw.triangles)):
        # Poisson's box cut the surface (the marching cubes would close the cut flat, inventing a wall): a box twice
        # as large, a level deeper, where a surface that closes can close
        raw = poisson_mesh(points, normals, depth=depth + 1, scale=2.2)
    v, t = _arrays(manifold_surface(raw, max_cube=max_cube))
    area = _areas(v, t)
    far = np.zeros(len(t), bool)
    dist, nearest = np.full(len(v), np.inf), np.zeros(len(v), np.int64)
    if (max_distance is not None or trim is not None) and len(t) and len(reach):
        dist, nearest = cKDTree(reach).query(v, workers=-1)
    if max_distance is not None and len(t):
        far = (dist > _part(max_distance, nearest))[t].any(1)
    open_share = float(area[far].sum() / area.sum()) if area.sum() > 0 else 0.0
    is_closed = bool(closed) if closed != "auto" else (max_distance is None or open_share <= CLOSED_SHARE)
    if not is_closed:
        if trim is not None and len(t):
            far = (dist > _part(trim, nearest))[t].any(1)
        t, area = t[~far], area[~far]
    # pieces smaller than min_area go: bubbles of a misoriented normal or two, specks left by the trim; not those
    # nearest to min_points of the points or more (a part scanned too sparsely for a larger mesh: an arm)
    component = _components(t, len(v))
    keep = np.bincount(component, weights=area) >= min_area if len(t) else np.zeros(0, bool)
    if min_points and not keep.all():
        on = np.unique(t)
        of = np.zeros(len(v), np.int64)
        of[t.ravel()] = np.repeat(component, 3)
        keep |= np.bincount(of[on[cKDTree(v[on]).query(points, workers=-1)[1]]], minlength=len(keep)) >= min_points
    keep = keep[component]
    t, component = t[keep], component[keep]
    used, t = np.unique(t, return_inverse=True)
    t = t.reshape(-1, 3)
    # normals facing inward turn a closed mesh inside out (trimesh's volume is signed): it faces outward
    if is_closed and len(t) and trimesh.Trimesh(v[used], t, process=False).volume < 0:
        t = t[:, ::-1]
    components = len(np.unique(component))
    facts = {"points": len(points), "depth": depth, "closed": is_closed, "open_share": open_share,
             "components": components, "genus": _genus(t, len(used), components) if is_closed else None}
    return _Piece(v[used], t, facts)


def _arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def edge_uses(triangles: np.ndarray) -> np.ndarray:
    """(E,) int: how many of the triangles (F, 3) hold each of their E distinct edges."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), 1)
    return np.unique(edges[:, 0] * (int(triangles.max(initial=0)) + 1) + edges[:, 1], return_counts=True)[1]


def _open_edges(triangles: np.ndarray) -> bool:
    """Whether some edge of the triangles (F, 3) belongs to one triangle only."""
    return bool((edge_uses(triangles) == 1).any())


def _genus(triangles: np.ndarray, n_vertices: int, components: int) -> int:
    """The total genus of a closed edge-manifold mesh (F, 3) of ``components`` components: Euler's V - E + F =
    2 (components - genus)."""
    return (2 * components - (n_vertices - len(edge_uses(triangles)) + len(triangles))) // 2


def _areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    return _faces(vertices, triangles)[2]


def _components(triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """(F,) int: the connected component of each triangle (through shared vertices)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(triangles):
        return np.zeros(0, np.int64)
    f = np.arange(len(triangles))
    # triangles and vertices in one graph: a triangle is linked to its three vertices
    rows = np.concatenate([f, f, f])
    cols = len(triangles) + triangles.T.ravel()
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(len(triangles) + n_vertices,) * 2)
    _, label = connected_components(graph, directed=False)
    return label[: len(triangles)]
