"""Peer methods that geomprior is measured against (open3d Screened Poisson)."""

from __future__ import annotations

import numpy as np

from .dgp import estimate_normals, poisson_mesh


def screened_poisson(points: np.ndarray, *, depth: int = 9, density_trim: float = 0.02):
    """open3d's usual recipe: normals estimated and oriented by open3d, Screened Poisson at ``depth``,
    the ``density_trim`` share of lowest-density vertices dropped. points : (N, 3) float."""
    return poisson_mesh(points, estimate_normals(points), depth=depth, density_trim=density_trim, threads=-1)
