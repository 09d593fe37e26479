"""The CUDA path, end to end: these run wherever CUDA exists (scripts/bench_gpu.sh runs them first on a lent GPU) and
are skipped elsewhere. GEOMPRIOR_TEST_DEVICE=cpu runs the same checks on the CPU (to check the tests themselves)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

DEVICE = os.environ.get("GEOMPRIOR_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs CUDA")

from geomprior import cli  # noqa: E402
from geomprior.dgp import DGPConfig, reconstruct  # noqa: E402
from geomprior.image import tasks  # noqa: E402
from geomprior.image.mlp import MLPConfig  # noqa: E402
from geomprior.io import read_mesh, write_points  # noqa: E402
from geomprior.synthetic import noisy_scan, sphere_mesh  # noqa: E402

o3d = pytest.importorskip("open3d")

NOISE = 0.01
SMALL = dataclasses.replace(DGPConfig.preset("fast"), radius=0.1, max_points=64, widths=(32, 32), eval_every=5,
                            patience=3, max_epochs=200, poisson_depth=6)


@pytest.fixture(scope="module")
def sphere():
    mesh = sphere_mesh(resolution=40)
    return mesh, noisy_scan(mesh, 1500, NOISE, seed=0)


def _surface_distance(mesh, truth) -> np.ndarray:
    from geomprior.metrics import point_to_mesh_distance

    return point_to_mesh_distance(np.asarray(mesh.vertices), truth)


def test_reconstruction_on_the_device_lands_on_the_surface_and_repeats(sphere):
    truth, points = sphere
    diag = 2 * np.sqrt(3)
    rec = reconstruct(points, config=SMALL, device=DEVICE, seed=0)
    assert rec.history["device"].startswith(DEVICE)
    assert rec.history["mesh"][0]["closed"] and len(rec.mesh.triangles) > 0
    # nearer the true sphere than the noisy points are (their noise: NOISE of the diagonal per coordinate)
    assert np.mean(_surface_distance(rec.mesh, truth)) < 0.5 * NOISE * diag
    again = reconstruct(points, config=SMALL, device=DEVICE, seed=0)
    np.testing.assert_allclose(again.points, rec.points, atol=1e-5)


def test_the_device_fit_matches_the_cpu_fit(sphere):
    # the same maths on either device: the dense points agree up to float rounding amplified by a short fit
    _, points = sphere
    cfg = dataclasses.replace(SMALL, max_epochs=20, early_stop="none", consistency=False)
    here = reconstruct(points, config=cfg, device=DEVICE, seed=0)
    cpu = reconstruct(points, config=cfg, device="cpu", seed=0)
    assert here.points.shape == cpu.points.shape
    assert np.median(np.linalg.norm(here.points - cpu.points, axis=1)) < 1e-3


def test_image_denoising_on_the_device_beats_the_input():
    from skimage import data, transform
    from skimage.metrics import peak_signal_noise_ratio

    clean = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    cfg = MLPConfig(widths=(32, 32), tile=16, overlap=4, fourier=2, lr=1e-2)
    res = tasks.denoise(noisy, method="mlp", config=cfg, iters=200, device=DEVICE,
                        stop=tasks.StopConfig(rule="none"), reference=clean)
    assert res.psnr > peak_signal_noise_ratio(clean, noisy, data_range=1.0) + 1.0


def test_cli_reconstruct_on_the_device(tmp_path, sphere):
    _, points = sphere
    scan = tmp_path / "scan.ply"
    write_points(scan, points)
    out = tmp_path / "mesh.ply"
    assert cli.main(["reconstruct", str(scan), "-o", str(out), "--preset", "fast", "--radius", "0.1",
                     "--max-epochs", "30", "--device", DEVICE]) == 0
    assert len(read_mesh(out).triangles) > 0
