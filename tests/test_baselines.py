"""geomprior.baselines: the peers reconstruct a clean synthetic surface."""

from __future__ import annotations

import numpy as np
import pytest

from geomprior.baselines import ball_pivoting, screened_poisson
from geomprior.metrics import evaluate
from geomprior.synthetic import noisy_scan, sphere_mesh


def test_peers_reconstruct_a_sphere():
    sphere = sphere_mesh(resolution=60)
    points = noisy_scan(sphere, 3000, 0.001, seed=0)
    for mesh in (screened_poisson(points, depth=6), ball_pivoting(points)):
        assert len(mesh.triangles) > 500
        r = evaluate(mesh, sphere, n_samples=5000)
        assert r["chamfer_l1"] < 0.01 and r["normal_consistency"] > 0.95
    assert np.isfinite(np.asarray(ball_pivoting(points).vertices)).all()


def test_meshlab_peers_reconstruct_a_sphere():
    pytest.importorskip("pymeshlab")
    from geomprior.baselines import meshlab_mls, meshlab_poisson

    sphere = sphere_mesh(resolution=60)
    points = noisy_scan(sphere, 3000, 0.001, seed=0)
    for mesh in (meshlab_mls(points, kind="rimls", resolution=60), meshlab_mls(points, kind="apss", resolution=60),
                 meshlab_poisson(points, depth=6)):
        assert len(mesh.triangles) > 500
        r = evaluate(mesh, sphere, n_samples=5000)
        assert r["chamfer_l1"] < 0.01 and r["normal_consistency"] > 0.95
    with pytest.raises(ValueError, match="kind"):
        meshlab_mls(points, kind="mls")


def test_meshlab_meshes_lose_their_non_finite_vertices():
    from geomprior.baselines import _open3d_mesh

    class Mesh:  # what pymeshlab's MLS marching cubes can hand back: a NaN vertex and its triangle
        def vertex_matrix(self):
            return np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [np.nan, 0, 0]], float)

        def face_matrix(self):
            return np.array([[0, 1, 2], [1, 2, 3]])

    class MeshSet:
        def current_mesh(self):
            return Mesh()

    mesh = _open3d_mesh(MeshSet())
    assert len(mesh.vertices) == 3 and len(mesh.triangles) == 1 and np.isfinite(np.asarray(mesh.vertices)).all()
