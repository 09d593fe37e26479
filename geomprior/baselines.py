"""Peer methods that geomprior is measured against (open3d Screened Poisson and Ball Pivoting)."""

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
