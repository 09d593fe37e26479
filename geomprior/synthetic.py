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


def terrain_mesh(*, size: float = 1.0, resolution: int = 200, amplitude: float = 0.03, waves: int = 3,
                 seed: int = 0):
    """A wavy height field z = h(x, y) over the square [0, size]², with vertex normals: an open surface that a
    grid of tiles cuts into many tiles of real surface.

    h is a sum of ``waves`` random plane waves (wavelengths between size/4 and size/1.5) scaled to ±``amplitude``
    × size. Returns an open3d.geometry.TriangleMesh with (resolution + 1)² vertices and 2·resolution² triangles.
    """
    import open3d as o3d

    if not (size > 0 and resolution >= 1 and amplitude >= 0 and waves >= 1):
        raise InputError(f"need size > 0, resolution >= 1, amplitude >= 0, waves >= 1; got {size}, {resolution}, "
                         f"{amplitude}, {waves}")
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, size, resolution + 1)
    x, y = np.meshgrid(t, t, indexing="ij")
    z = np.zeros_like(x)
    for _ in range(waves):
        angle = rng.uniform(0, np.pi)
        k = 2 * np.pi / (size * rng.uniform(0.25, 1 / 1.5))
        z += np.sin(k * (np.cos(angle) * x + np.sin(angle) * y) + rng.uniform(0, 2 * np.pi))
    z *= amplitude * size / max(np.abs(z).max(), 1e-12)
    vertices = np.stack([x, y, z], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(resolution), np.arange(resolution), indexing="ij")
    v0 = (i * (resolution + 1) + j).ravel()
    v1, v2, v3 = v0 + resolution + 1, v0 + 1, v0 + resolution + 2
    triangles = np.concatenate([np.stack([v0, v1, v2], 1), np.stack([v2, v1, v3], 1)])
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(triangles))
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


def torus_scan(n_points: int, noise_fraction: float = 0.005, seed: int = 0, *, torus_radius: float = 1.0,
               tube_radius: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A noisy scan of a torus around the z axis, sampled analytically (no mesh, no open3d): uniform in area,
    with the true unit normals of the clean samples.

    Returns (points (N, 3), normals (N, 3)) float64; the noise is isotropic Gaussian with standard deviation
    ``noise_fraction`` × the bounding-box diagonal. Same seed ⇒ same scan.
    """
    if not (torus_radius > tube_radius > 0) or not noise_fraction >= 0:
        raise InputError(f"need torus_radius > tube_radius > 0 and noise_fraction >= 0, got {torus_radius}, "
                         f"{tube_radius}, {noise_fraction}")
    rng = np.random.default_rng(seed)
    big, small = float(torus_radius), float(tube_radius)
    phi = rng.uniform(0, 2 * np.pi, n_points)  # around the z axis
    # the area element grows with the distance to the axis, R + r cos(theta): rejection-sample theta
    theta = np.empty(0)
    while len(theta) < n_points:
        t = rng.uniform(0, 2 * np.pi, 2 * n_points)
        keep = rng.uniform(0, big + small, t.size) < big + small * np.cos(t)
        theta = np.concatenate([theta, t[keep]])
    theta = theta[:n_points]
    normals = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), np.sin(theta)], axis=1)
    centre = np.stack([big * np.cos(phi), big * np.sin(phi), np.zeros_like(phi)], axis=1)
    points = centre + small * normals
    diag = float(np.linalg.norm([2 * (big + small), 2 * (big + small), 2 * small]))
    return points + rng.normal(scale=noise_fraction * diag, size=points.shape), normals
