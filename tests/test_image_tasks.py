"""geomprior.image.tasks on tiny images: restoration beats its input, same seed => same output, early stopping."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from skimage import data, transform
from skimage.metrics import peak_signal_noise_ratio

from geomprior.errors import InputError
from geomprior.fit import EarlyStopping, fit
from geomprior.image import operators as ops
from geomprior.image import tasks
from geomprior.image.decoder import DDConfig, dd_parameter_count
from geomprior.image.dip import DIPConfig
from geomprior.image.mlp import MLPConfig
from geomprior.image.priors import _RecorruptedRun
from geomprior.image.stopping import WindowedVariance

SIGMA = 0.1
# tiny networks; a shorter output average (0.9) and a higher DD learning rate than the defaults, for short runs
TINY = {
    "dip": DIPConfig.width(16, scales=3, input_channels=8, ema=0.9),
    "dd": DDConfig(channels=24, depth=3, ema=0.9, lr=0.01),
    "mlp": MLPConfig(widths=(32, 32), tile=16, overlap=4, encoding="fourier", fourier=2, lr=1e-2),
}
ITERS = {"dip": 200, "dd": 200, "mlp": 200}


def psnr(a, b):
    return peak_signal_noise_ratio(b, a, data_range=1.0)


@pytest.fixture(scope="module")
def clean():
    return transform.resize(data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)


@pytest.fixture(scope="module")
def noisy(clean):
    rng = np.random.default_rng(0)
    return np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("method", ["dip", "dd", "mlp"])
def test_denoising_beats_the_noisy_input(method, clean, noisy):
    res = tasks.denoise(noisy, method=method, config=TINY[method], iters=ITERS[method], device="cpu",
                        stop=tasks.StopConfig(rule="none"), reference=clean)
    assert res.image.shape == clean.shape and res.image.dtype == np.float32
    assert psnr(res.image, clean) > psnr(noisy, clean) + 1.0
    assert res.psnr == pytest.approx(psnr(res.image, clean), abs=1e-3)
    assert len(res.history["psnr"]) == len(res.history["step"])


def test_mlp_restores_with_a_network_that_fits_the_image_before_the_noise(clean):
    """Without a config, denoising with the MLP uses MLPConfig.restoring (ReLU), not the fit's SIREN, which fits the
    noise before a held-out stop can keep the image."""
    assert tasks.make_config("mlp", task="denoise") == MLPConfig.restoring("default")
    assert tasks.make_config("mlp").encoding == "siren"
    big = transform.resize(data.astronaut(), (64, 64), anti_aliasing=True).astype(np.float32)
    noisy = np.clip(big + np.random.default_rng(1).normal(0, 0.1, big.shape), 0, 1).astype(np.float32)
    res = tasks.denoise(noisy, method="mlp", iters=600, device="cpu", reference=big)
    assert res.psnr > psnr(noisy, big) + 4, (res.psnr, psnr(noisy, big))  # the SIREN: +3.0 dB


@pytest.mark.parametrize("method", ["dip", "mlp"])
def test_same_seed_same_output(method, noisy):
    def run(seed):
        return tasks.denoise(noisy, method=method, config=TINY[method], iters=20, device="cpu", seed=seed,
                             stop=tasks.StopConfig(rule="none")).image

    a, b = run(3), run(3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, run(4))


@pytest.mark.parametrize("method", ["dip", "dd"])
def test_bfloat16_training_denoises_as_well_as_float32(method, clean, noisy):
    """The bfloat16 training passes (DIPConfig/DDConfig.precision; "auto" on a CPU with native bfloat16) against
    the float32 reference: a restoration no worse, within a small margin, and a float32 image out."""
    out = {}
    for precision in ("float32", "bfloat16"):
        cfg = dataclasses.replace(TINY[method], precision=precision)
        out[precision] = tasks.denoise(noisy, method=method, config=cfg, iters=ITERS[method], device="cpu",
                                       stop=tasks.StopConfig(rule="none")).image
    assert out["bfloat16"].dtype == np.float32 and not np.array_equal(out["bfloat16"], out["float32"])
    low, ref = psnr(out["bfloat16"], clean), psnr(out["float32"], clean)
    assert low > psnr(noisy, clean) + 1.0 and low > ref - 0.3, (low, ref)  # no worse than float32
    with pytest.raises(InputError, match="precision"):
        type(TINY[method])(precision="float16")


def test_heldout_stopping_fires_and_keeps_the_best_output(clean):
    """An MLP with more weights than pixels fits the noise: validation on held-out pixels stops it."""
    rng = np.random.default_rng(1)
    very_noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1).astype(np.float32)
    cfg = MLPConfig(widths=(64, 64, 64), tile=16, overlap=4, encoding="fourier", fourier=2, lr=1e-2,
                    lr_decay="none")
    stop = tasks.StopConfig(rule="heldout", patience=60, eval_every=10)
    res = tasks.denoise(very_noisy, method="mlp", config=cfg, iters=1500, stop=stop, device="cpu", reference=clean,
                        wiener=False)
    assert "held-out" in res.reason and res.steps < 1500
    assert res.best_step == res.steps - 60
    # the output is the one of the chosen iteration, which beats the last one and the noisy input
    h = res.history
    assert res.psnr == pytest.approx(h["psnr"][h["step"].index(res.best_step)], abs=1e-4)
    assert res.psnr > h["psnr"][-1]
    assert res.psnr > psnr(very_noisy, clean)


def test_wmv_stopping_fires(clean, noisy):
    stop = tasks.StopConfig(rule="wmv", window=20, patience=40, eval_every=10)
    cfg = MLPConfig(widths=(64, 64, 64), tile=16, overlap=4, encoding="fourier", fourier=2, lr=1e-2,
                    lr_decay="none")
    res = tasks.denoise(noisy, method="mlp", config=cfg, iters=1500, stop=stop, device="cpu", reference=clean,
                        wiener=False)
    assert "variance of recent outputs" in res.reason and res.steps < 1500
    assert res.best_step >= 20  # no score before the window is full
    h = res.history
    assert res.psnr == pytest.approx(h["psnr"][h["step"].index(res.best_step)], abs=1e-4)
    # the variance is not scored (NaN -> no snapshot) until the window holds 20 outputs
    assert all(np.isnan(v) for s, v in zip(h["step"], h["val"]) if s < 20)


def test_discrepancy_stopping_fires_where_the_residual_meets_the_noise_level(clean, noisy):
    """The network first fits the image, its residual falling to the noise's variance, then the noise, the residual
    falling below it: the discrepancy principle keeps the iteration where the two meet."""
    stop = tasks.StopConfig(rule="discrepancy", sigma=SIGMA, patience=40, eval_every=10)
    cfg = MLPConfig(widths=(64, 64, 64), tile=16, overlap=4, encoding="fourier", fourier=2, lr=1e-2,
                    lr_decay="none")
    res = tasks.denoise(noisy, method="mlp", config=cfg, iters=1500, stop=stop, device="cpu", reference=clean,
                        wiener=False)
    assert "the residual to the noise level" in res.reason and res.steps < 1500
    h = res.history
    at = h["step"].index(res.best_step)
    assert h["val"][at] == min(h["val"]) < 0.25 * SIGMA**2  # |residual - sigma^2| at its smallest, near 0
    assert h["val"][-1] > 2 * h["val"][at]  # and growing after it: the fit went on into the noise
    assert res.psnr == pytest.approx(h["psnr"][at], abs=1e-4) and res.psnr > psnr(noisy, clean)


def test_runs_average_independent_seeds(clean, noisy):
    kw = dict(method="dip", config=TINY["dip"], iters=20, device="cpu", stop=tasks.StopConfig(rule="none"),
              reference=clean, wiener=False)
    avg = tasks.denoise(noisy, seed=3, runs=2, **kw)
    one = [tasks.denoise(noisy, seed=s, **kw) for s in (3, 4)]
    np.testing.assert_allclose(avg.image, (one[0].image + one[1].image) / 2, atol=1e-6)
    assert avg.steps == 40 and [r["seed"] for r in avg.extra["runs"]] == [3, 4]
    assert [r["psnr"] for r in avg.extra["runs"]] == pytest.approx([r.psnr for r in one])
    assert avg.psnr == pytest.approx(psnr(avg.image, clean), abs=1e-3)
    assert avg.psnr >= min(r.psnr for r in one)  # the mean's error is at most the runs' mean error
    assert "average of 2 runs (seeds 3-4)" in avg.summary
    with pytest.raises(InputError, match="runs"):
        tasks.denoise(noisy, runs=0, iters=1)


def test_dip_denoise_default_is_the_r2r_loss_at_the_estimated_noise_level(noisy, monkeypatch):
    """Without a config or runs, DIP denoises with the r2r loss, no stopping rule, at the noise level estimated from
    the image (reported), in the runs dip_denoise_schedule sets for it (the fast preset one, the default several,
    shorter the stronger the noise); the same settings given explicitly give the same image; a config with another
    loss is taken as it is."""
    kw = dict(method="dip", preset="fast", iters=3, device="cpu")
    default = tasks.denoise(noisy, **kw)
    cfg = tasks.dip_denoise_config("fast")
    assert "runs" not in default.extra and default.stop_rule == "none"
    assert cfg.loss == "r2r" and cfg.channels_down == DIPConfig.preset("fast").channels_down
    assert tasks.dip_denoise_config("default").channels_down == (32,) * DIPConfig.preset("default").scales
    sigma = tasks.estimate_noise(noisy)
    runs, _ = tasks.dip_denoise_schedule("default", sigma)
    several = tasks.denoise(noisy, **{**kw, "preset": "default", "iters": 1})
    assert runs > 1 and len(several.extra["runs"]) == runs
    for preset in ("fast", "default", "quality"):
        schedule = [tasks.dip_denoise_schedule(preset, s / 255) for s in (5, 15, 25, 50, 100)]
        lengths = [iters for _, iters in schedule]
        assert lengths == sorted(lengths, reverse=True) and lengths[-1] < lengths[0]  # shorter at stronger noise
        for runs, iters in schedule:  # the preset's budget, shared
            assert runs * iters <= 1.5 * tasks.DIP_DENOISE_STEPS[preset] and iters <= tasks.DIP_DENOISE_STEPS[preset]
    assert tasks.dip_denoise_schedule("fast", 25 / 255)[0] == 1
    assert tasks.dip_denoise_schedule("default", 50 / 255)[0] > tasks.dip_denoise_schedule("default", 25 / 255)[0]
    monkeypatch.setitem(tasks.DIP_DENOISE_STEPS, "fast", 4)  # the schedule's cap unless iters is given
    assert tasks.denoise(noisy, method="dip", preset="fast").steps == 4
    assert default.extra["sigma"] == pytest.approx(tasks.estimate_noise(noisy))
    assert f"noise level {255 * default.extra['sigma']:.1f} of 255" in default.summary
    explicit = tasks.denoise(noisy, config=cfg, sigma=tasks.estimate_noise(noisy), runs=1, **kw)
    np.testing.assert_array_equal(default.image, explicit.image)
    assert tasks.denoise(noisy, sigma=0.2, **kw).extra["sigma"] == 0.2
    assert tasks.denoise(noisy, stop=tasks.StopConfig(sigma=0.2), **kw).extra["sigma"] == 0.2
    plain = tasks.denoise(noisy, config=DIPConfig.preset("fast"), wiener=False, **kw)
    assert plain.stop_rule == "heldout" and "sigma" not in plain.extra


def test_r2r_denoising_needs_no_early_stop(clean):
    """With the r2r loss DIP is fit to a target whose noise is independent of its input's, so it does not fit the
    noise: it ends near its best PSNR, far above the input's, with no stopping rule."""
    img = transform.resize(data.astronaut(), (64, 64), anti_aliasing=True).astype(np.float32)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, SIGMA, img.shape), 0, 1).astype(np.float32)
    cfg = dataclasses.replace(TINY["dip"], loss="r2r")
    res = tasks.denoise(noisy, method="dip", config=cfg, iters=500, device="cpu", reference=img)
    assert res.stop_rule == "none" and res.steps == 500
    assert res.psnr > psnr(noisy, img) + 5 and res.psnr > max(res.history["psnr"]) - 0.5, res.history["psnr"]


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_r2r_loss_is_the_error_to_the_clean_image_plus_a_constant(alpha):
    """Averaged over the noise and the recorruption, the r2r loss of a network is its squared error to the clean
    image plus σ²(1 + 1/α²): the target's noise is independent of the input's. The identity network, whose
    output is the recorrupted input, would show a sign error in the target."""
    x = torch.as_tensor(transform.resize(data.astronaut(), (32, 32), anti_aliasing=True),
                        dtype=torch.float32).permute(2, 0, 1)[None]
    gen = torch.Generator().manual_seed(0)
    gaps = []
    for _ in range(50):
        y = x + SIGMA * torch.randn(x.shape, generator=gen)
        run = _RecorruptedRun(torch.nn.Identity(), y, (8, 8, 32, 32), 48, 48, train_w=torch.ones_like(y),
                              sigma=SIGMA, alpha=alpha, ema=0.0, generator=gen, wmv=None)
        with torch.no_grad():
            loss = float(run.loss())
        gaps.append(loss - float(((run.last - x) ** 2).mean()))
    assert np.mean(gaps) == pytest.approx(SIGMA**2 * (1 + 1 / alpha**2), rel=0.02)


def test_r2r_loss_refuses_what_it_cannot_do(clean, noisy):
    r2r = dataclasses.replace(TINY["dip"], loss="r2r")
    with pytest.raises(InputError, match="held out"):
        tasks.denoise(noisy, method="dip", config=r2r, iters=1, stop=tasks.StopConfig(rule="heldout"))
    with pytest.raises(InputError, match="identity operator"):
        tasks.superresolve(clean[::2, ::2], 2, method="dip", config=r2r, iters=1, sigma=0.1)
    with pytest.raises(InputError, match="noise level sigma"):
        tasks.solve(torch.zeros(1, 3, 32, 32), ops.Identity(), clean.shape, method="dip", config=r2r, iters=1)
    with pytest.raises(InputError, match="loss"):
        DIPConfig(loss="sure")


def test_dd_denoise_default_averages_runs_that_fit_more(clean, noisy):
    """Without a config or runs, Deep Decoder denoising averages DD_DENOISE_RUNS runs of dd_denoise_config (the
    preset's k trained as compress trains), each stopping on the discrepancy rule at the estimated noise level; the
    same settings given explicitly give the same image, and the training fits more of the image than the plain
    Adam 0.005 in the same steps."""
    kw = dict(method="dd", preset="fast", iters=300, device="cpu", reference=clean, wiener=False)
    default = tasks.denoise(noisy, **kw)
    cfg = tasks.dd_denoise_config("fast")
    assert tasks.DD_DENOISE_RUNS == 2 and len(default.extra["runs"]) == 2 and default.stop_rule == "discrepancy"
    assert cfg.channels == DDConfig.preset("fast").channels and cfg.lr_decay == "cosine" and cfg.average == "outputs"
    rule = tasks.StopConfig(rule="discrepancy", sigma=tasks.estimate_noise(noisy))
    np.testing.assert_array_equal(default.image, tasks.denoise(noisy, config=cfg, runs=2, stop=rule, **kw).image)
    fitted = tasks.denoise(noisy, config=cfg, runs=2, **kw)
    assert fitted.stop_rule == "none"  # the prior's own rule
    plain = tasks.denoise(noisy, config=DDConfig.preset("fast"), runs=2, **kw)
    assert fitted.psnr > plain.psnr + 0.5, (fitted.psnr, plain.psnr)


def test_deep_decoder_widens_for_exact_measurements():
    """Inpainting/cs with a preset whose decoder has fewer weights than known values doubles k; an explicit
    config, and denoising, keep the width given."""
    img = transform.resize(data.astronaut(), (128, 128), anti_aliasing=True).astype(np.float32)
    mask = np.random.default_rng(0).random((128, 128)) > 0.5  # ~24.6k known values > 6.6k weights at k = 32
    damaged = img * mask[:, :, None]
    run = dict(iters=1, device="cpu")
    assert tasks.inpaint(damaged, mask, method="dd", preset="fast", **run).parameters == dd_parameter_count(64, 5, 3)
    assert tasks.compressed_sensing(img, 0.25, method="dd", preset="fast", block=16, **run).parameters == \
        dd_parameter_count(64, 5, 3)
    fast = dd_parameter_count(32, 5, 3)
    assert tasks.inpaint(damaged, mask, method="dd", config=DDConfig.preset("fast"), **run).parameters == fast
    assert tasks.denoise(img, method="dd", preset="fast", **run).parameters == fast
    few = np.zeros_like(mask)
    few[::4, ::4] = True  # 3k known values: the preset has enough weights
    assert tasks.inpaint(img * few[:, :, None], few, method="dd", preset="fast", **run).parameters == fast


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_noise_level_estimated_from_the_image(sigma):
    """estimate_noise finds the σ of white noise on a natural image within 10 %; denoising with the discrepancy
    rule and no σ uses it (and says so); a task without a σ to estimate still needs one."""
    img = transform.resize(data.astronaut(), (128, 128), anti_aliasing=True).astype(np.float32)
    noisy = (img + np.random.default_rng(1).normal(0, sigma, img.shape)).astype(np.float32)
    assert tasks.estimate_noise(noisy) == pytest.approx(sigma, rel=0.1)
    res = tasks.denoise(noisy.clip(0, 1), method="dd", config=TINY["dd"], iters=1,
                        stop=tasks.StopConfig(rule="discrepancy"))
    assert res.extra["sigma"] == pytest.approx(tasks.estimate_noise(noisy.clip(0, 1)))
    assert f"noise level {255 * res.extra['sigma']:.1f} of 255" in res.summary
    given = tasks.denoise(noisy.clip(0, 1), method="dd", config=TINY["dd"], iters=1, sigma=0.3,
                          stop=tasks.StopConfig(rule="discrepancy"))
    assert given.extra["sigma"] == 0.3
    with pytest.raises(InputError, match="sigma"):
        tasks.superresolve(img[::4, ::4], 4, method="dd", config=TINY["dd"], iters=1,
                           stop=tasks.StopConfig(rule="discrepancy"))


def test_inpainting_fills_missing_pixels(clean):
    rng = np.random.default_rng(2)
    mask = rng.random(clean.shape[:2]) > 0.5
    damaged = clean * mask[:, :, None]
    for method in ("dd", "mlp"):
        res = tasks.inpaint(damaged, mask, method=method, config=TINY[method], iters=ITERS[method], device="cpu",
                            stop=tasks.StopConfig(rule="none"))
        miss = ~mask
        assert psnr(res.image[miss], clean[miss]) > psnr(damaged[miss], clean[miss]) + 5
    with pytest.raises(InputError, match="mask is"):
        tasks.inpaint(damaged, mask[:-1], method="dd")


@pytest.mark.parametrize("method", ["dip", "mlp"])
def test_inpainting_keeps_the_known_pixels(clean, method):
    """keep_known (the default) copies the known pixels into the result and leaves the network's missing pixels as
    they are: same seed, same missing pixels as keep_known=False, and a PSNR at least as high."""
    mask = np.random.default_rng(3).random(clean.shape[:2]) > 0.5
    damaged = clean * mask[:, :, None]
    run = dict(method=method, config=TINY[method], iters=30, device="cpu", reference=clean, seed=1)
    kept, raw = tasks.inpaint(damaged, mask, **run), tasks.inpaint(damaged, mask, keep_known=False, **run)
    np.testing.assert_array_equal(kept.image[mask], damaged[mask])
    np.testing.assert_allclose(kept.image[~mask], raw.image[~mask], atol=1e-6)
    assert not np.allclose(raw.image[mask], damaged[mask], atol=1e-3)
    assert kept.psnr >= raw.psnr
    assert max(kept.history["psnr"]) >= max(raw.history["psnr"])  # the monitored PSNR is the kept image's
    with pytest.raises(InputError, match="keep_known"):
        tasks.solve(torch.zeros(1, 3, 32, 32), ops.Identity(), clean.shape, method="dd", keep_known=True, iters=1)


@pytest.mark.parametrize("method", ["dip", "dd"])
def test_superresolution_matches_the_input_when_downsampled(clean, method):
    small = transform.resize(clean, (16, 16), anti_aliasing=True).astype(np.float32)
    res = tasks.superresolve(small, 2, method=method, config=TINY[method], iters=300, device="cpu",
                             stop=tasks.StopConfig(rule="none"), reference=clean)
    assert res.image.shape == (32, 32, 3)
    from geomprior.image.operators import Downsample

    down = Downsample(2)(torch.as_tensor(res.image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert psnr(down, small) > 30
    nearest = np.repeat(np.repeat(small, 2, 0), 2, 1)
    assert res.psnr > psnr(nearest, clean) + 1
    with pytest.raises(InputError, match="not divisible by the factor 2"):
        tasks.superresolve(small, 2, reference=clean[:31, :31], iters=1)
    with pytest.raises(InputError, match="factor"):
        tasks.superresolve(small, 1, iters=1)


@pytest.mark.parametrize("operator", ["gaussian", "fourier"])
def test_compressed_sensing_recovers_more_than_the_mean(clean, operator):
    res = tasks.compressed_sensing(clean, 0.5, method="dd", operator=operator, block=8, config=TINY["dd"],
                                   iters=200, device="cpu")
    baseline = np.broadcast_to(clean.mean((0, 1)), clean.shape)
    assert res.psnr > psnr(baseline, clean) + 2
    assert res.extra["measurements"] > 0 and 0 < res.extra["ratio"] <= 1
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        tasks.compressed_sensing(clean, 1.5, iters=1)


def test_compress_reports_parameters_and_ratio(clean):
    res = tasks.compress(clean, channels=8, depth=3, iters=30, device="cpu")
    assert res.parameters == dd_parameter_count(8, 3, 3)
    assert res.extra["ratio"] == pytest.approx(32 * 32 * 3 / res.parameters)
    assert res.stop_rule == "none" and res.steps == 30


def test_compress_code_is_the_weights(clean):
    """The decoded image is the output of the returned (averaged) weights, rebuilt from them and the seed alone;
    an average of outputs would be no network's output."""
    config = DDConfig(channels=8, depth=3)
    res = tasks.compress(clean, config=config, iters=40, device="cpu", seed=4)
    assert sum(w.numel() for w in res.weights.values()) == res.parameters
    np.testing.assert_allclose(tasks.decompress(res.weights, clean.shape, config, seed=4), res.image, atol=1e-6)
    assert not np.allclose(tasks.decompress(res.weights, clean.shape, config, seed=5), res.image, atol=1e-3)
    json.dumps(res.to_json())  # the weights stay out of the history
    default = tasks.compress(clean, channels=8, depth=3, iters=40, device="cpu", seed=4)  # compress_config
    np.testing.assert_allclose(tasks.decompress(default.weights, clean.shape, tasks.compress_config(8, 3), seed=4),
                               default.image, atol=1e-6)
    with pytest.raises(InputError, match="not a Deep Decoder of k = 8"):  # its blocks are in the other order
        tasks.decompress(default.weights, clean.shape, config, seed=4)
    with pytest.raises(InputError, match="not a Deep Decoder of k = 9"):
        tasks.decompress(res.weights, clean.shape, DDConfig(channels=9, depth=3))
    with pytest.raises(InputError, match="average"):
        DDConfig(average="median")
    with pytest.raises(InputError, match="lr_decay"):
        DDConfig(lr_decay="linear")


def test_method_not_offered_for_task(clean):
    with pytest.raises(InputError, match="does not do superres"):
        tasks.superresolve(clean, 2, method="mlp")
    with pytest.raises(InputError, match="unknown method"):
        tasks.denoise(clean, method="bogus")


def test_fit_image_runs_to_the_cap(clean):
    res = tasks.fit_image(clean, config=dataclasses.replace(TINY["mlp"], fourier=3), iters=150, device="cpu")
    assert res.steps == 150 and res.stop_rule == "none"
    assert res.psnr > 20


# --------------------------------------------------------------------------------------------
# the hooks added to fit for the image priors


def test_fit_after_step_and_buffers_are_restored():
    w = torch.zeros(1, 3, requires_grad=True)
    target = torch.tensor([[1.0, -2.0, 0.5]])
    avg = torch.zeros(1, 3)
    seen = []

    def after(step):
        seen.append(step)
        avg.mul_(0.5).add_(w.detach(), alpha=0.5)

    # validation against a truth that the fit overshoots: the best step comes early, buffers go back with it
    truth = 0.3 * target
    res = fit([w], lambda: ((w - target) ** 2).sum(1), max_steps=60, lr=0.1, eval_every=5,
              validate=lambda: ((avg - truth) ** 2).sum(1), stopper=EarlyStopping(patience=2, smoothing=0),
              after_step=after, buffers=[avg])
    assert seen == list(range(res.steps))
    assert res.steps < 60
    assert float(((avg - truth) ** 2).sum()) == pytest.approx(
        min(res.history["val"]), rel=1e-6)


def test_early_stopping_ignores_nan_scores():
    stopper = EarlyStopping(mode="run", patience=2, smoothing=0)
    for step in range(5):
        keep = stopper.update(step, torch.tensor([float("nan")]))
        assert not bool(keep.any()) and not bool(stopper.stopped().any())
    assert stopper.best is None
    assert bool(stopper.update(5, torch.tensor([1.0])).all())
    stopper.update(6, torch.tensor([2.0]))
    stopper.update(7, torch.tensor([2.0]))
    assert bool(stopper.stopped().all()) and int(stopper.best_step[0]) == 5


def test_windowed_variance():
    wmv = WindowedVariance(3)
    xs = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 2.0]]), torch.tensor([[5.0, 2.0]]), torch.tensor([[5.0, 8.0]])]
    wmv.push(xs[0])
    assert torch.isnan(wmv.value()).all()
    wmv.push(xs[1])
    wmv.push(xs[2])
    torch.testing.assert_close(wmv.value(), torch.tensor([(8 / 3 + 0) / 2]))
    wmv.push(xs[3])  # window: 3, 5, 5 and 2, 2, 8
    slow = torch.stack(xs[1:]).var(0, unbiased=False).mean()
    torch.testing.assert_close(wmv.value(), slow.reshape(1))


def test_progress_reports_loss_and_psnr(clean, noisy):
    seen = []
    tasks.denoise(noisy, method="dd", config=TINY["dd"], iters=20, device="cpu", reference=clean,
                  progress=lambda stage, step, total, info: seen.append((stage, step, total, dict(info))))
    assert [s[1] for s in seen] == [0, 10, 20]
    assert all(stage == "dd denoise" and total == 20 for stage, _, total, _ in seen)
    assert all({"loss", "psnr"} <= set(info) for *_, info in seen)
    assert seen[-1][3]["psnr"] > seen[0][3]["psnr"]


def test_deep_decoder_too_deep_for_the_image_is_made_shallower(clean, noisy, caplog):
    with caplog.at_level("WARNING", logger="geomprior.image.tasks"):
        res = tasks.denoise(noisy, method="dd", config=DDConfig(channels=16, depth=5, lr=0.01, ema=0.9), iters=30,
                            device="cpu", reference=clean)
    assert "using depth 3" in caplog.text
    assert res.parameters == dd_parameter_count(16, 3, 3)
    assert float(res.image.std()) > 0.02  # a 1x1 input would give a constant image


def test_make_config_channels():
    assert tasks.make_config("dip", "fast", channels=24).channels_down == (24,) * 4
    assert tasks.make_config("dd", channels=24).channels == 24
    assert tasks.make_config("mlp", "quality", channels=24).widths == (24, 24, 24)
    assert tasks.make_config("dd", "quality") == DDConfig.preset("quality")
