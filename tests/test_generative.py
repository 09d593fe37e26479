"""Trained generators helped by untrained priors (geomprior.image.generative): the file format, CSGM, IAGAN, LCM,
back-projection, and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geomprior import cli
from geomprior.errors import InputError
from geomprior.image import generative as gm
from geomprior.image import operators as ops
from geomprior.image import tasks
from geomprior.image.io import write_image

LATENT, IMAGE = (4, 2, 2), (1, 8, 8)


class _Tiny(nn.Module):
    """(B, 4, 2, 2) -> (B, 1, 8, 8) in [0, 1]: an untrained stand-in for a trained decoder."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2),
                                 nn.Conv2d(16, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2),
                                 nn.Conv2d(8, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, z):
        return self.net(z)


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gen") / "tiny.pt"
    gm.save_generator(path, _Tiny(), LATENT, IMAGE, info={"data": "none"})
    return path


@pytest.fixture()
def G(gen_file):
    return gm.load_generator(gen_file)


def _psnr(a, b):
    return 10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def test_a_generator_file_loads_without_its_code(gen_file, G):
    assert G.latent_shape == LATENT and G.image_shape == IMAGE and G.info == {"data": "none"}
    z = torch.randn(3, *LATENT)
    out = G.module(z)
    assert out.shape == (3, *IMAGE) and float(out.min()) >= 0 and float(out.max()) <= 1
    again = gm.load_generator(gen_file)
    assert torch.equal(again.module(z), out)


def test_wrong_and_foreign_files_are_one_line_errors(tmp_path, G):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    weights = tmp_path / "weights.pt"
    torch.save(_Tiny().state_dict(), weights)
    bare = tmp_path / "bare.pt"
    torch.export.save(torch.export.export(_Tiny(), (torch.zeros(1, *LATENT),)), bare)
    for path, match in ((junk, "not a generator file"), (weights, "not a generator file"),
                        (bare, "without geomprior's generator metadata"), (tmp_path / "none.pt", "no such file")):
        with pytest.raises(InputError, match=match) as err:
            gm.load_generator(path)
        assert "\n" not in str(err.value)


def _measure(G, ratio=0.5, seed=0):
    op = ops.GaussianMeasurement(IMAGE, ratio, seed=seed)
    z0 = torch.randn((1, *LATENT), generator=torch.Generator().manual_seed(seed + 10))
    with torch.no_grad():
        x0 = G.module(z0)
    return op, x0, op(x0)


def test_csgm_recovers_an_image_the_generator_makes(G):
    op, x0, y = _measure(G)
    res = gm.invert(G, op, y, method="csgm", config=gm.InvertConfig(restarts=8, steps=1500, lr=0.05))
    assert _psnr(res.image[..., 0], x0[0, 0].numpy()) > 40


def test_a_module_in_memory_is_a_generator_too(G):
    module = _Tiny()
    gen = gm.as_generator(module, LATENT)
    assert gen.image_shape == IMAGE and gen.latent_shape == LATENT
    before = [p.clone() for p in module.parameters()]
    op, _, y = _measure(gen)
    res = gm.invert(gen, op, y, method="iagan", config=gm.InvertConfig(restarts=2, steps=20, adapt_steps=10))
    assert res.image.shape == (8, 8, 1)
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(before, module.parameters()))
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        gm.as_generator(nn.Flatten(), LATENT)


def test_iagan_with_frozen_weights_is_csgm(G):
    op, _, y = _measure(G)
    cfg = gm.InvertConfig(restarts=2, steps=50, adapt_steps=20)
    csgm = gm.invert(G, op, y, method="csgm", config=cfg)
    frozen = gm.invert(G, op, y, method="iagan", config=gm.InvertConfig(restarts=2, steps=50, adapt_steps=20,
                                                                         adapt_lr=0, back_project=False))
    np.testing.assert_array_equal(frozen.image, csgm.image)


def test_iagan_and_lcm_fit_beyond_the_generators_range(G):
    # a target the generator cannot make: adapting G (IAGAN) or its latent's net (LCM) fits the measurements
    # closer than CSGM, which cannot leave G's range; the generator itself is left as it was
    op = ops.GaussianMeasurement(IMAGE, 0.5, seed=1)
    x = torch.rand((1, *IMAGE), generator=torch.Generator().manual_seed(3))
    y = op(x)
    before = [p.clone() for p in G.module.parameters()]
    cfg = gm.InvertConfig(restarts=2, steps=200, adapt_steps=200, adapt_lr=1e-3, back_project=False)
    fits = {m: gm.invert(G, op, y, method=m, config=cfg).residual for m in ("csgm", "iagan", "lcm")}
    assert fits["iagan"] < 0.5 * fits["csgm"] and fits["lcm"] < fits["csgm"]
    assert all(torch.equal(a, b) for a, b in zip(before, G.module.parameters()))


@pytest.mark.parametrize("make", [lambda: ops.GaussianMeasurement((1, 16, 16), 0.3, block=8, seed=0),
                                  lambda: ops.Downsample(2), lambda: ops.Mask(np.arange(256).reshape(16, 16) % 3 > 0)],
                         ids=["gaussian", "downsample", "mask"])
def test_back_projection_makes_the_measurements_hold(make):
    op = make()
    gen = torch.Generator().manual_seed(0)
    truth, guess = torch.rand((1, 1, 16, 16), generator=gen), torch.rand((1, 1, 16, 16), generator=gen)
    y = op(truth)
    projected = gm.back_project(op, guess, y)
    assert float((op(projected) - y).abs().max()) < 1e-5
    assert float((op(guess) - y).abs().max()) > 1e-2  # it had to move
    # the nearest such image: moving on along the null space only adds distance
    assert float(((projected - guess) ** 2).sum()) <= float(((truth - guess) ** 2).sum()) + 1e-6


@pytest.mark.parametrize("method", ["iagan", "lcm"])
def test_same_seed_same_result(G, method):
    op, _, y = _measure(G)
    cfg = gm.InvertConfig(restarts=2, steps=30, adapt_steps=20)
    a, b = (gm.invert(G, op, y, method=method, config=cfg, seed=5) for _ in range(2))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, gm.invert(G, op, y, method=method, config=cfg, seed=6).image)


def test_tasks_take_a_generator(G):
    image = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    cfg = gm.InvertConfig(restarts=2, steps=20, adapt_steps=10)
    res = tasks.compressed_sensing(image, 0.5, method="iagan", generator=G, config=cfg, block=8)
    assert res.image.shape == (8, 8, 1) and res.method == "iagan" and res.psnr is not None
    mask = np.arange(64).reshape(8, 8) % 2 == 0
    res = tasks.inpaint(image, mask, method="csgm", generator=G, config=cfg)
    np.testing.assert_array_equal(res.image[mask], image[mask])  # known pixels kept
    with pytest.raises(InputError, match="needs a trained generator"):
        tasks.denoise(image, method="lcm")
    with pytest.raises(InputError, match="makes 8x8x1 images"):
        tasks.denoise(np.zeros((16, 16, 1), np.float32), method="csgm", generator=G)


def test_command_line(tmp_path, gen_file, capsys):
    digit = tmp_path / "digit.png"
    write_image(digit, np.random.default_rng(0).random((8, 8, 1)).astype(np.float32))
    out = tmp_path / "rec.png"
    assert cli.main(["image", "cs", str(digit), "-o", str(out), "--method", "csgm", "--generator", str(gen_file),
                     "--measurements", "0.5", "--block", "8"]) == 0
    assert out.exists() and "csgm cs" in capsys.readouterr().out
    junk = tmp_path / "junk.pt"
    junk.write_text("x")
    for extra in (["--generator", str(junk)], []):
        assert cli.main(["image", "cs", str(digit), "-o", str(tmp_path / "r2.png"), "--method", "iagan",
                         "--measurements", "0.5", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("geomprior: error:") and "\n" not in err
    assert not (tmp_path / "r2.png").exists()


def test_train_generator_quick(tmp_path):
    from _scripts import load_script

    script = load_script("train_generator")
    images, train, held = script.digits()
    assert images.shape == (1797, 1, 32, 32) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert len(held) == script.HELD_OUT and not set(train) & set(held) and len(train) + len(held) == 1797
    out = tmp_path / "g.pt"
    assert script.main(["-o", str(out), "--quick", "--samples", str(tmp_path / "digits")]) == 0
    G = gm.load_generator(out)
    assert G.latent_shape == script.LATENT and G.image_shape == (1, 32, 32) and G.info["held_out"] == held.tolist()
    assert len(list((tmp_path / "digits").glob("digit_*.png"))) == 10
