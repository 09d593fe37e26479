"""Meshes from dense oriented points: Screened Poisson (open3d)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def poisson_mesh(
    points: np.ndarray, normals: np.ndarray, *, depth: int = 9, density_trim: float = 0.0,
    max_distance: float | None = None, threads: int = 1,
):
    """Screened Poisson surface (open3d) of oriented points (M, 3).

    threads      : open3d's worker threads; 1 (the default) gives the same mesh on every run, more are
                   faster but order vertices differently from run to run

    density_trim : drop this share of the lowest-density vertices (open3d's usual recipe)
    max_distance : drop vertices farther than this from every input point (removes the closing "balloon"
                   over open boundaries without eating into well-sampled surface)
    """
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pc.normals = o3d.utility.Vector3dVector(normals)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pc, depth=depth, n_threads=threads)
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
