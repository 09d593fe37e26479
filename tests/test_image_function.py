"""geomprior.image.mlp.ImageFunction: a fitted image evaluated anywhere, its gradient, rendering, save and load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from geomprior.errors import InputError
from geomprior.image import ENCODINGS, tasks
from geomprior.image.mlp import CoordinateMLP, GridEncoding, ImageFunction, MLPConfig, Tiling


def smooth(h: int, w: int) -> np.ndarray:
    """A smooth RGB test image (a few low frequencies), (h, w, 3) in [0.1, 0.9]."""
    v, u = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    img = np.stack([np.sin(2 * u + 1) * np.cos(3 * v), np.cos(2.5 * u * v + 0.3), np.sin(3 * (u - v))], axis=2)
    return (0.5 + 0.4 * img).astype(np.float32)


def config(encoding: str, **changes) -> MLPConfig:
    return MLPConfig(**{"widths": (32, 32), "tile": 16, "overlap": 4, "encoding": encoding, **changes})


def random_function(encoding: str, h: int = 20, w: int = 27, seed: int = 0) -> ImageFunction:
    cfg = MLPConfig(widths=(16, 16), tile=8, overlap=2, encoding=encoding, fourier=2)
    t = Tiling(h, w, cfg.tile, cfg.overlap)
    return ImageFunction(CoordinateMLP(t.n, 3, cfg, generator=torch.Generator().manual_seed(seed)), t)


def pixel_centres(h: int, w: int) -> np.ndarray:
    v, u = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    return np.stack([u.ravel(), v.ravel()], axis=1)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_each_encoding_fits_a_smooth_function(encoding):
    clean = smooth(32, 32)
    res = tasks.fit_image(clean, config=config(encoding, lr=1e-2 if encoding == "grid" else 2e-3), iters=500,
                          device="cpu")
    assert res.psnr >= 40, res.psnr
    assert res.function is not None


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_function_equals_the_blended_tiles_at_the_pixel_centres(encoding):
    f = random_function(encoding)
    with torch.no_grad():
        image = f.tiling.blend(f.model(f.tiling.coordinates())).numpy()
    np.testing.assert_allclose(f.evaluate(pixel_centres(20, 27)).reshape(20, 27, 3), image, atol=1e-6)
    np.testing.assert_allclose(f.evaluate(pixel_centres(20, 27), chunk=7), f.evaluate(pixel_centres(20, 27)),
                               atol=1e-6)
    np.testing.assert_allclose(f.gradient(pixel_centres(4, 5), chunk=3), f.gradient(pixel_centres(4, 5)), atol=1e-5)
    np.testing.assert_allclose(f.render(1.0), image.clip(0, 1), atol=1e-6)
    assert f.render(2.5).shape == (50, 68, 3) and f.render(0.01).shape == (1, 1, 3)
    assert f.evaluate(np.zeros((0, 2))).shape == (0, 3) and f.gradient(np.zeros((0, 2))).shape == (0, 3, 2)


def test_covering_tiles_match_a_brute_force_search():
    t = Tiling(29, 40, 12, 4)
    rng = np.random.default_rng(0)
    y = torch.as_tensor(np.concatenate([rng.uniform(0, 29, 200), [0, 29, 12, 8.0]]))
    x = torch.as_tensor(np.concatenate([rng.uniform(0, 40, 200), [0, 40, 12, 28.0]]))
    point, tile = t.covering(y, x)
    found = set(zip(point.tolist(), tile.tolist()))
    oy, ox = t.origins[:, 0].double(), t.origins[:, 1].double()
    inside = (y[:, None] >= oy) & (y[:, None] <= oy + t.th) & (x[:, None] >= ox) & (x[:, None] <= ox + t.tw)
    assert found == set(map(tuple, torch.nonzero(inside).tolist()))


def test_grid_encoding_is_bilinear_interpolation_of_its_vertices():
    """Slow reference: the four vertices around each point, weighted by hand."""
    enc = GridEncoding(3, (2, 5), 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for t in enc.tables:
            t.normal_()
        uv = torch.rand(3, 11, 2, generator=torch.Generator().manual_seed(2))
        out = enc(uv)
    for level, (r, table) in enumerate(zip(enc.levels, enc.tables)):
        for p in range(3):
            for m in range(11):
                x, y = (uv[p, m] * r).tolist()
                i, j = min(int(x), r - 1), min(int(y), r - 1)
                a, b = x - i, y - j
                ref = ((1 - a) * (1 - b) * table[p, :, j, i] + a * (1 - b) * table[p, :, j, i + 1]
                       + (1 - a) * b * table[p, :, j + 1, i] + a * b * table[p, :, j + 1, i + 1])
                torch.testing.assert_close(out[p, m, 2 * level:2 * level + 2], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_gradient_agrees_with_finite_differences(encoding):
    """Everywhere for the smooth SIREN (tile edges included); ReLU networks and bilinear grids have kinks, where
    a central difference straddling one may disagree: there, at nearly every point."""
    f = random_function(encoding)
    rng = np.random.default_rng(3)
    uv = np.concatenate([rng.uniform(0.02, 0.98, (40, 2)), [[0.5, 0.5], [13 / 27, 0.3], [0.4, 0.3]]])  # tile edges
    grad = f.gradient(uv)
    assert grad.shape == (43, 3, 2)
    h = 1e-5
    agree = np.ones(len(uv), dtype=bool)
    for k in range(2):
        step = np.zeros(2)
        step[k] = h
        fd = (f.evaluate(uv + step).astype(np.float64) - f.evaluate(uv - step)) / (2 * h)
        agree &= (np.abs(grad[:, :, k] - fd) <= 0.02 * np.abs(fd).max() + 0.02 * np.abs(fd)).all(axis=1)
    assert agree.all() if encoding == "siren" else agree.mean() >= 0.9, np.nonzero(~agree)


def test_save_load_evaluate_is_bit_identical(tmp_path):
    res = tasks.fit_image(smooth(24, 20), config=config("siren", tile=8, overlap=2), iters=20, device="cpu")
    res.function.save(tmp_path / "f.npz")
    back = ImageFunction.load(tmp_path / "f.npz")
    uv = np.random.default_rng(4).uniform(0, 1, (500, 2))
    assert np.array_equal(back.evaluate(uv), res.evaluate(uv))
    assert np.array_equal(back.render(1.7), res.function.render(1.7))
    assert back.shape == (24, 20, 3) and back.model.config == dataclasses.replace(res.function.model.config)
    np.testing.assert_allclose(back.render(1.0), res.image, atol=1e-6)


def test_bad_points_and_scales_are_one_clear_error():
    f = random_function("siren")
    for bad in ([[0.5, 1.5]], [[np.nan, 0.2]], np.zeros((3, 3))):
        with pytest.raises(InputError):
            f.evaluate(bad)
    for scale in (0, -1, float("inf"), "2"):
        with pytest.raises(InputError, match="scale"):
            f.render(scale)
    with pytest.raises(InputError, match="encoding"):
        MLPConfig(encoding="hash")
    res = tasks.denoise(smooth(16, 16), method="dd", iters=2, device="cpu")
    with pytest.raises(InputError, match="not a function"):
        res.evaluate([[0.5, 0.5]])


def border_energy(image: np.ndarray, edges: list[float], scale: float) -> float:
    """Mean squared horizontal difference across the pixel boundaries nearest the tile edges (input pixels
    ``edges``), over the mean across all boundaries."""
    d = np.diff(image, axis=1) ** 2  # boundary k lies between rendered columns k and k+1, at (k + 1)/scale
    cols = sorted({int(round(e * scale)) - 1 for e in edges if 0 < round(e * scale) < image.shape[1]})
    return float(d[:, cols].mean() / d.mean())


@pytest.mark.parametrize("scale", [1.0, 2.5, 4.0])
def test_no_seams_along_tile_borders(scale):
    """On a smooth image, the gradient energy across tile borders is that of the interior; without blending
    (tiles abutting, no overlap) it is not, once the rendering has pixels between the fitted ones."""
    clean = smooth(40, 40)
    ratios = {}
    for overlap in (4, 0):
        cfg = config("siren", overlap=overlap, lr=2e-3)
        res = tasks.fit_image(clean, config=cfg, iters=150, device="cpu")
        t = res.function.tiling
        edges = sorted({float(o) for o in t.xs[1:]} | {float(o + t.tw) for o in t.xs[:-1]})
        ratios[overlap] = border_energy(res.function.render(scale), edges, scale)
    assert ratios[4] < 1.5, ratios
    assert scale == 1 or ratios[0] > 2 * ratios[4], ratios
