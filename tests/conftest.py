"""Fixtures shared by several test files."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from skimage import data, transform


@pytest.fixture
def images(tmp_path):
    """tmp_path holding 32×32 RGB clean.png and noisy.png (σ = 0.1), the 16×16 small.png, the 31×31 odd.png, a 32×32
    mask.png (a 10×10 hole) and a 32×30 mask_small.png, and the unreadable garbage.png and empty.png."""
    clean = transform.resize(data.camera(), (32, 32), anti_aliasing=True)
    rgb = np.repeat(clean[:, :, None], 3, 2)
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 0.1, rgb.shape), 0, 1)
    iio.imwrite(tmp_path / "clean.png", (rgb * 255).round().astype(np.uint8))
    iio.imwrite(tmp_path / "noisy.png", (noisy * 255).round().astype(np.uint8))
    iio.imwrite(tmp_path / "small.png", (rgb[::2, ::2] * 255).round().astype(np.uint8))
    iio.imwrite(tmp_path / "odd.png", (rgb[:31, :31] * 255).round().astype(np.uint8))
    mask = np.full((32, 32), 255, np.uint8)
    mask[10:20, 10:20] = 0
    iio.imwrite(tmp_path / "mask.png", mask)
    iio.imwrite(tmp_path / "mask_small.png", mask[:30])
    (tmp_path / "garbage.png").write_bytes(b"not an image at all\n" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path
