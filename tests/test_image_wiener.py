"""geomprior.image.wiener: the empirical Wiener filter against window-by-window and stack-by-stack references, and
what it does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dctn, idctn
from skimage import data, transform
from skimage.restoration import denoise_tv_chambolle

from geomprior.errors import InputError
from geomprior.image import tasks
from geomprior.image.wiener import OPPONENT, dct_matrix, wiener_refine

SIGMA = 0.1


def reference_stacks(noisy, pilot, sigma, block, group, radius, stride):
    """The slow reference: one reference window at a time, every window in reach compared with it by a loop, the
    stack taken to scipy's 3-D DCT (group 1, stride 1: every window of the image on its own)."""
    m = np.array(OPPONENT) if noisy.shape[2] == 3 else np.eye(noisy.shape[2])
    y, p = noisy @ m.T, pilot @ m.T
    var = (sigma * np.linalg.norm(m, axis=1)) ** 2
    h, w, _ = y.shape
    lh, lw = h - block + 1, w - block + 1
    out, weight = np.zeros_like(y), np.zeros_like(y)
    rows = sorted(set(range(0, lh, stride)) | {lh - 1})
    cols = sorted(set(range(0, lw, stride)) | {lw - 1})
    for i in rows:
        for j in cols:
            ref = p[i:i + block, j:j + block, 0]
            near = [(-1.0 if (a, b) == (i, j) else ((p[a:a + block, b:b + block, 0] - ref) ** 2).sum(), a, b)
                    for a in range(max(0, i - radius), min(lh, i + radius + 1))
                    for b in range(max(0, j - radius), min(lw, j + radius + 1))]
            picked = sorted(near)[:group]
            ys = np.stack([y[a:a + block, b:b + block] for _, a, b in picked])  # (K, b, b, C)
            ps = np.stack([p[a:a + block, b:b + block] for _, a, b in picked])
            pc = dctn(ps, axes=(0, 1, 2), norm="ortho") ** 2
            shrink = pc / (pc + var)
            est = idctn(shrink * dctn(ys, axes=(0, 1, 2), norm="ortho"), axes=(0, 1, 2), norm="ortho")
            wt = 1 / (shrink**2).sum((0, 1, 2))
            for (_, a, b), e in zip(picked, est):
                out[a:a + block, b:b + block] += wt * e
                weight[a:a + block, b:b + block] += wt
    return ((out / weight) @ np.linalg.inv(m).T).clip(0, 1)


@pytest.fixture(scope="module")
def images():
    clean = transform.resize(data.astronaut(), (64, 64), anti_aliasing=True).astype(np.float32)
    noisy = (clean + np.random.default_rng(0).normal(0, SIGMA, clean.shape)).astype(np.float32)
    return clean, noisy


def test_dct_matrix_is_scipys_orthonormal_dct():
    x = np.random.default_rng(0).random(8)
    np.testing.assert_allclose(dct_matrix(8).numpy() @ x, dctn(x, norm="ortho"), atol=1e-12)


@pytest.mark.parametrize("channels", [3, 1])
def test_wiener_refine_is_the_window_by_window_filter(images, channels):
    clean, noisy = images
    clean, noisy = clean[:21, :27, :channels], noisy[:21, :27, :channels]  # sizes no multiple of the block
    pilot = np.clip(clean + 0.02, 0, 1)
    np.testing.assert_allclose(wiener_refine(noisy, pilot, SIGMA, group=1, stride=1),
                               reference_stacks(noisy, pilot, SIGMA, 8, group=1, radius=0, stride=1), atol=1e-5)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize(("group", "radius", "stride"), [(4, 3, 2), (16, 19, 3)])
def test_wiener_refine_is_the_stack_by_stack_filter(images, channels, group, radius, stride):
    clean, noisy = images
    clean, noisy = clean[:21, :27, :channels], noisy[:21, :27, :channels]
    pilot = np.clip(clean + np.random.default_rng(1).normal(0, 0.02, clean.shape), 0, 1)  # no two windows alike
    np.testing.assert_allclose(wiener_refine(noisy, pilot, SIGMA, group=group, radius=radius, stride=stride),
                               reference_stacks(noisy, pilot, SIGMA, 8, group, radius, stride), atol=1e-5)


def test_wiener_refine_improves_on_a_denoisers_output(images):
    """With a denoiser's output as pilot (TV: biased towards flat regions), the filtered noisy image is closer to
    the clean image than the pilot; with the clean image as pilot, closer still."""
    clean, noisy = images
    pilot = denoise_tv_chambolle(noisy, 0.1, channel_axis=-1).clip(0, 1).astype(np.float32)
    refined = wiener_refine(noisy, pilot, SIGMA)
    assert tasks.psnr(refined, clean) > tasks.psnr(pilot, clean) + 2
    assert tasks.psnr(wiener_refine(noisy, clean, SIGMA), clean) > tasks.psnr(refined, clean) + 2


def test_wiener_refine_checks_its_input(images):
    clean, noisy = images
    with pytest.raises(InputError, match="pilot"):
        wiener_refine(noisy, clean[:-1], SIGMA)
    with pytest.raises(InputError, match="sigma"):
        wiener_refine(noisy, clean, 0.0)
    with pytest.raises(InputError, match="group"):
        wiener_refine(noisy, clean, SIGMA, group=0)


def test_denoise_refines_the_networks_output(images):
    """denoise's default returns the Wiener filter of its network's output (reporting both PSNRs); wiener=False
    the network's output itself."""
    clean, noisy = images
    noisy = noisy.clip(0, 1)
    cfg = tasks.make_config("dd", "fast", channels=16)
    kw = dict(method="dd", config=cfg, iters=150, device="cpu", reference=clean, sigma=SIGMA)
    plain = tasks.denoise(noisy, wiener=False, **kw)
    refined = tasks.denoise(noisy, **kw)
    assert "wiener" not in plain.extra and refined.extra["wiener"]
    assert refined.extra["network_psnr"] == pytest.approx(plain.psnr)
    np.testing.assert_allclose(refined.image, wiener_refine(noisy, plain.image, SIGMA), atol=1e-6)
    assert refined.psnr == pytest.approx(tasks.psnr(refined.image, clean))
    assert "Wiener-refined" in refined.summary and refined.weights is None
