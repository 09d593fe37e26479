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
