"""Peer methods that geomprior is measured against: open3d Screened Poisson and Ball Pivoting; MeshLab's RIMLS,
APSS and Screened Poisson through pymeshlab (optional: the test extra installs it)."""

from __future__ import annotations

import numpy as np

from .mesh import poisson_mesh
from .normals import estimate_normals


def screened_poisson(points: np.ndarray, *, depth: int = 9, density_trim: float = 0.02):
    """open3d's usual recipe: normals estimated and oriented by open3d, Screened Poisson at ``depth``,
    the ``density_trim`` share of lowest-density vertices dropped. points : (N, 3) float."""
    return poisson_mesh(points, estimate_normals(points), depth=depth, density_trim=density_trim, threads=-1)


def ball_pivoting(points: np.ndarray, *, radii_factors: tuple[float, ...] = (1.0, 2.0, 4.0)):
    """open3d's Ball Pivoting with normals estimated and oriented by open3d and ball radii ``radii_factors`` ×
    the mean nearest-neighbour spacing of the points. points : (N, 3) float."""
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    pc.normals = o3d.utility.Vector3dVector(estimate_normals(points))
    spacing = float(np.mean(pc.compute_nearest_neighbor_distance()))
    radii = o3d.utility.DoubleVector([f * spacing for f in radii_factors])
    return o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(pc, radii)


def meshlab_mls(points: np.ndarray, *, kind: str = "rimls", filter_scale: float = 2.0, resolution: int = 200):
    """MeshLab's moving-least-squares surfaces (pymeshlab, an optional peer): Robust Implicit MLS ("rimls",
    Öztireli et al. 2009) or Algebraic Point Set Surfaces ("apss", Guennebaud and Gross 2007), extracted by
    marching cubes on a ``resolution``³ grid over the points' box. Normals estimated and oriented as for
    ``screened_poisson``; ``filter_scale``: the MLS kernel's width in multiples of the local point spacing.
    points : (N, 3) float. Returns an open3d.geometry.TriangleMesh."""
    filters = {"rimls": "generate_marching_cubes_rimls", "apss": "generate_marching_cubes_apss"}
    if kind not in filters:
        raise ValueError(f"kind must be one of {sorted(filters)}, got {kind!r}")
    ms = _meshset(points)
    ms.apply_filter(filters[kind], filterscale=float(filter_scale), resolution=int(resolution))
    return _open3d_mesh(ms)


def meshlab_poisson(points: np.ndarray, *, depth: int = 9):
    """MeshLab's Screened Poisson (pymeshlab, an optional peer) at ``depth``, normals estimated and oriented as for
    ``screened_poisson``; its mesh as it comes (MeshLab does not trim). points : (N, 3) float."""
    ms = _meshset(points)
    ms.apply_filter("generate_surface_reconstruction_screened_poisson", depth=int(depth), preclean=True)
    return _open3d_mesh(ms)


def _meshset(points: np.ndarray):
    """A pymeshlab MeshSet holding the points with their estimated normals."""
    import pymeshlab

    points = np.asarray(points, dtype=np.float64)
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=points, v_normals_matrix=estimate_normals(points)))
    return ms


def _open3d_mesh(ms):
    import open3d as o3d

    m = ms.current_mesh()
    vertices = m.vertex_matrix()
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(m.face_matrix().astype(np.int32)))
    mesh.remove_vertices_by_mask(~np.isfinite(vertices).all(1))  # MLS marching cubes can leave a few NaN vertices
    mesh.remove_unreferenced_vertices()
    mesh.compute_vertex_normals()
    return mesh
