"""Synthetic test shapes and noisy scans made from meshes (deterministic given a seed)."""

from __future__ import annotations

import numpy as np

from geomprior.errors import InputError
from geomprior.metrics import sample_surface


def sphere_mesh(*, radius: float = 1.0, resolution: int = 40):
    """A UV sphere centred at the origin, with vertex normals.

    Returns
    -------
    open3d.geometry.TriangleMesh
        About 2·resolution² triangles.
    """
    import open3d as o3d

    if not radius > 0:
        raise InputError(f"radius must be > 0, got {radius}")
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=float(radius), resolution=int(resolution))
    mesh.compute_vertex_normals()
    return mesh


def torus_mesh(
    *,
    torus_radius: float = 1.0,
    tube_radius: float = 0.3,
    radial_resolution: int = 60,
    tubular_resolution: int = 30,
):
    """A torus around the z axis centred at the origin, with vertex normals.

    Returns
    -------
    open3d.geometry.TriangleMesh
        2·radial_resolution·tubular_resolution triangles.
    """
    import open3d as o3d

    if not (torus_radius > tube_radius > 0):
        raise InputError(f"need torus_radius > tube_radius > 0, got {torus_radius}, {tube_radius}")
    mesh = o3d.geometry.TriangleMesh.create_torus(
        torus_radius=float(torus_radius),
        tube_radius=float(tube_radius),
        radial_resolution=int(radial_resolution),
        tubular_resolution=int(tubular_resolution),
    )
    mesh.compute_vertex_normals()
    return mesh


def noisy_scan(mesh, n_points: int, noise_fraction: float = 0.005, seed: int = 0) -> np.ndarray:
    """A synthetic scan: uniform (area-weighted) surface samples plus isotropic Gaussian noise.

    Parameters
    ----------
    mesh : open3d.geometry.TriangleMesh
        Vertices (V, 3), triangles (F, 3).
    n_points : int
        Number of points N.
    noise_fraction : float
        Noise standard deviation per coordinate, as a fraction of the mesh's bounding-box diagonal.
    seed : int
        One seed drives both the sampling and the noise; same seed => same points.

    Returns
    -------
    (N, 3) float64
    """
    if not noise_fraction >= 0:
        raise InputError(f"noise_fraction must be >= 0, got {noise_fraction}")
    rng = np.random.default_rng(seed)
    points, _ = sample_surface(mesh, n_points, seed=rng)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    diag = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
    return points + rng.normal(scale=noise_fraction * diag, size=points.shape)
