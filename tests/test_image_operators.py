"""geomprior.image.operators: shapes, the adjoint property <A x, y> = <x, A^T y>, slow references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomprior.errors import InputError
from geomprior.image import operators as ops

SHAPE = (3, 24, 20)  # (C, H, W)


def _operators():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(SHAPE[1:], generator=g) > 0.3
    return {
        "identity": ops.Identity(),
        "mask": ops.Mask(mask),
        "mask-per-channel": ops.Mask(torch.rand(SHAPE, generator=g) > 0.5),
        "down2-lanczos2": ops.Downsample(2),
        "down4-lanczos3": ops.Downsample(4, "lanczos3"),
        "down2-box": ops.Downsample(2, "box"),
        "gaussian-dense": ops.GaussianMeasurement(SHAPE, 0.3, seed=1),
        "gaussian-block": ops.GaussianMeasurement(SHAPE, 0.25, block=8, seed=1),  # 20 is not a multiple of 8
        "fourier": ops.SubsampledFourier(SHAPE, 0.4, seed=1),
        "fourier-uniform": ops.SubsampledFourier(SHAPE, 0.4, density="uniform", seed=1),
        "compose": ops.Downsample(2) @ ops.Mask(mask),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_shape_and_adjoint(name):
    op = _operators()[name].double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, *SHAPE, generator=g, dtype=torch.float64)
    y_shape = op.output_shape(SHAPE)
    ax = op(x)
    assert ax.shape == (2, *y_shape)
    y = torch.randn(ax.shape, generator=g, dtype=torch.float64)
    aty = op.adjoint(y)
    assert aty.shape == x.shape
    lhs, rhs = float((ax * y).sum()), float((x * aty).sum())
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", list(_operators()))
def test_linear(name):
    op = _operators()[name].double()
    g = torch.Generator().manual_seed(6)
    x1, x2 = torch.randn(2, 1, *SHAPE, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op(2 * x1 - 3 * x2), 2 * op(x1) - 3 * op(x2))


def test_mask_keep_known_takes_known_pixels_from_the_measurements():
    g = torch.Generator().manual_seed(3)
    m = torch.rand(SHAPE[1:], generator=g) > 0.5
    op = ops.Mask(m)
    x, truth = torch.rand(2, 1, *SHAPE, generator=g)
    y = op(truth)
    kept = op.keep_known(x, y)
    torch.testing.assert_close(op(kept), y)  # reproduces the measurements
    torch.testing.assert_close(kept[..., m], truth[..., m])
    torch.testing.assert_close(kept[..., ~m], x[..., ~m])  # leaves the missing pixels alone


def test_box_downsample_is_the_block_mean():
    x = torch.rand(1, *SHAPE, generator=torch.Generator().manual_seed(2))
    c, h, w = SHAPE
    slow = torch.zeros(1, c, h // 2, w // 2)
    for i in range(h // 2):
        for j in range(w // 2):
            slow[0, :, i, j] = x[0, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((1, 2))
    torch.testing.assert_close(ops.Downsample(2, "box")(x), slow)


@pytest.mark.parametrize("kernel,pil,tolerance", [("lanczos3", "LANCZOS", 1e-5), ("box", "BOX", 1e-5),
                                                   ("lanczos2", "BICUBIC", 0.015)])
@pytest.mark.parametrize("factor", [2, 4])
def test_downsample_is_what_pil_shrinks_with(kernel, pil, tolerance, factor):
    """The kernels are PIL's antialiased shrinks (lanczos2 within 0.015 of PIL's bicubic on white noise),
    pixel-aligned as PIL aligns them, away from the border (where PIL renormalises a clipped kernel and we
    replicate the edge)."""
    from PIL import Image

    x = np.random.default_rng(0).random((32 * factor, 32 * factor)).astype(np.float32)
    theirs = np.asarray(Image.fromarray(x, mode="F").resize((32, 32), getattr(Image.Resampling, pil)))
    ours = ops.Downsample(factor, kernel)(torch.as_tensor(x)[None, None])[0, 0].numpy()
    inner = slice(4, -4)
    np.testing.assert_allclose(ours[inner, inner], theirs[inner, inner], atol=tolerance)


@pytest.mark.parametrize("kernel", ops.KERNELS)
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsample_keeps_constants_and_needs_divisible_sizes(kernel, factor):
    x = torch.full((1, 2, 12 * factor, 6 * factor), 0.37)
    y = ops.Downsample(factor, kernel)(x)
    assert y.shape == (1, 2, x.shape[2] // factor, x.shape[3] // factor)
    torch.testing.assert_close(y, torch.full_like(y, 0.37))
    with pytest.raises(InputError, match="not divisible by the factor"):
        ops.Downsample(factor, kernel)(torch.zeros(1, 1, 12 * factor + 1, 6 * factor))


def test_dense_gaussian_is_a_matrix_product():
    op = ops.GaussianMeasurement((1, 4, 5), 0.5, seed=3)
    x = torch.rand(1, 1, 4, 5)
    torch.testing.assert_close(op(x)[0], op.matrix @ x.reshape(-1))
    assert op.matrix.shape == (10, 20)
    # same seed, same matrix; another seed, another one
    assert torch.equal(op.matrix, ops.GaussianMeasurement((1, 4, 5), 0.5, seed=3).matrix)
    assert not torch.equal(op.matrix, ops.GaussianMeasurement((1, 4, 5), 0.5, seed=4).matrix)


def test_block_gaussian_measures_each_block_with_one_matrix():
    op = ops.GaussianMeasurement((2, 8, 12), 0.25, block=4, seed=0)
    x = torch.rand(1, 2, 8, 12)
    y = op(x)
    assert y.shape == (1, 2, 6, 4)
    block = x[0, 1, 4:8, 4:8].reshape(-1)  # channel 1, block row 1, block column 1 -> block index 1*3+1
    torch.testing.assert_close(y[0, 1, 4], op.matrix @ block)


def test_fourier_measures_dft_coefficients():
    op = ops.SubsampledFourier((1, 8, 6), 0.5, seed=0)
    x = torch.rand(1, 1, 8, 6, dtype=torch.float64)
    full = np.fft.fft2(x[0, 0].numpy(), norm="ortho").reshape(-1)[op.index.numpy()]
    y = op.double()(x)[0, 0].numpy()
    np.testing.assert_allclose(y[:, 0] + 1j * y[:, 1], full, atol=1e-12)
    assert int(op.index[0]) == 0  # DC always measured
    assert op.m == round(0.5 * 8 * 6 / 2)
    # no two measured frequencies are conjugates of each other
    ky, kx = op.index // 6, op.index % 6
    conj = set((((-ky) % 8) * 6 + ((-kx) % 6)).tolist())
    assert len(conj & set(op.index.tolist())) == int(((ky == (-ky) % 8) & (kx == (-kx) % 6)).sum())


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan")])
def test_ratio_outside_unit_interval(ratio):
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        ops.GaussianMeasurement(SHAPE, ratio, block=8)
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        ops.SubsampledFourier(SHAPE, ratio)


def test_dense_gaussian_too_large_asks_for_blocks():
    with pytest.raises(InputError, match="blocks"):
        ops.GaussianMeasurement((3, 512, 512), 0.5)
