"""geomprior.image: Deep Decoder parameter count, DIP skip net, tiles and the batched coordinate MLP."""

from __future__ import annotations

import pytest
import torch

from geomprior.fit import fit
from geomprior.errors import InputError
from geomprior.image.decoder import DDConfig, DeepDecoder, dd_input, dd_parameter_count
from geomprior.image.dip import DIPConfig, SkipNet, count_parameters, padded_size
from geomprior.image.mlp import CoordinateMLP, MLPConfig, Tiling, encode


@pytest.mark.parametrize("norm_before_relu", [False, True])
@pytest.mark.parametrize("k,d,c", [(64, 5, 3), (8, 2, 1), (16, 0, 3), (5, 3, 2)])
def test_deep_decoder_parameter_count_formula(k, d, c, norm_before_relu):
    net = DeepDecoder(c, DDConfig(channels=k, depth=d, norm_before_relu=norm_before_relu))
    assert count_parameters(net) == dd_parameter_count(k, d, c) == (d + 1) * (k * k + 2 * k) + k * c


def test_deep_decoder_block_order_and_input():
    """norm_before_relu swaps ReLU and normalisation in every block; the Gaussian input is zero-mean."""
    kinds = [type(m).__name__ for m in DeepDecoder(1, DDConfig(channels=4, depth=1)).net]
    assert kinds == ["Conv2d", "Upsample", "ReLU", "InstanceNorm2d", "Conv2d", "ReLU", "InstanceNorm2d", "Conv2d",
                     "Sigmoid"]
    kinds = [type(m).__name__ for m in DeepDecoder(1, DDConfig(channels=4, depth=1, norm_before_relu=True)).net]
    assert kinds == ["Conv2d", "Upsample", "InstanceNorm2d", "ReLU", "Conv2d", "InstanceNorm2d", "ReLU", "Conv2d",
                     "Sigmoid"]
    uniform = dd_input(DDConfig(channels=8), (32, 32), generator=torch.Generator().manual_seed(0))
    gauss = dd_input(DDConfig(channels=8, input="gaussian"), (32, 32), generator=torch.Generator().manual_seed(0))
    assert uniform.shape == gauss.shape == (1, 8, 32, 32)
    assert float(uniform.min()) >= 0 and float(uniform.max()) <= 0.1
    assert float(gauss.min()) < 0 < float(gauss.max()) and abs(float(gauss.mean())) < 0.01
    assert abs(float(gauss.std()) - 0.1) < 0.01
    with pytest.raises(InputError, match="input must be"):
        DDConfig(input="laplace")


def test_deep_decoder_reference_size():
    assert dd_parameter_count(64, 5, 3) == 25_536  # DESIGN.md §5 / Heckel & Hand


def test_deep_decoder_shapes():
    net = DeepDecoder(3, DDConfig(channels=8, depth=3))
    assert net.input_size(40, 33) == (5, 5)
    with torch.no_grad():
        out = net(torch.rand(1, 8, 5, 5))
    assert out.shape == (1, 3, 40, 40)
    assert float(out.min()) > 0 and float(out.max()) < 1


def test_skip_net_shapes_and_range():
    cfg = DIPConfig.width(8, scales=3, input_channels=4)
    hp, wp = padded_size(20, 37, cfg.scales)
    assert (hp, wp) == (24, 40)
    assert padded_size(8, 8, 3) == (16, 16)  # at least two pixels at the coarsest scale
    with torch.no_grad():
        out = SkipNet(3, cfg)(torch.rand(1, 4, hp, wp))
    assert out.shape == (1, 3, hp, wp)
    assert float(out.min()) > 0 and float(out.max()) < 1
    with pytest.raises(ValueError, match="divisible"):
        SkipNet(3, cfg)(torch.rand(1, 4, 20, 40))


def test_dip_presets():
    assert DIPConfig.preset("quality") == DIPConfig()
    ref = DIPConfig()
    assert (ref.channels_down, ref.channels_up, ref.channels_skip) == ((128,) * 5, (128,) * 5, (4,) * 5)
    assert DIPConfig.preset("default").channels_down == (64,) * 5
    assert DIPConfig.preset("fast").channels_down[0] == 32


# --------------------------------------------------------------------------------------------
# tiles


@pytest.mark.parametrize("h,w,tile,overlap", [(40, 29, 16, 4), (16, 16, 16, 4), (10, 50, 16, 6), (33, 33, 8, 0)])
def test_tiles_cover_the_image_and_blend_back_exactly(h, w, tile, overlap):
    t = Tiling(h, w, tile, overlap)
    img = torch.rand(h, w, 3, dtype=torch.float64)
    covered = torch.zeros(h * w, dtype=torch.bool)
    covered[t.index.reshape(-1)] = True
    assert bool(covered.all())
    assert t.index.shape == (t.n, min(tile, h) * min(tile, w))
    torch.testing.assert_close(t.blend(t.split(img)), img)
    assert float(t.weight.min()) > 0


def test_blend_is_a_weighted_mean_of_the_covering_tiles():
    t = Tiling(20, 20, 12, 4)
    tiles = torch.rand(t.n, t.index.shape[1], 2, dtype=torch.float64)
    out = t.blend(tiles)
    # slow reference: loop over pixels and tiles
    for (r, c) in [(0, 0), (9, 10), (10, 9), (19, 19), (5, 14)]:
        num, den = torch.zeros(2, dtype=torch.float64), 0.0
        for p in range(t.n):
            hits = (t.index[p] == r * 20 + c).nonzero()
            for m in hits.reshape(-1).tolist():
                num += t.weight[p, m] * tiles[p, m]
                den += float(t.weight[p, m])
        torch.testing.assert_close(out[r, c], num / den)


def test_seams_are_smooth():
    """Two tiles fitted to different constants blend into a ramp, not a step."""
    t = Tiling(1, 28, 16, 4)
    assert t.n == 2
    tiles = torch.stack([torch.zeros(16, 1), torch.ones(16, 1)]).double()
    row = t.blend(tiles)[0, :, 0]
    steps = row[1:] - row[:-1]
    assert float(steps.min()) >= 0 and float(steps.max()) < 0.5
    assert float(row[0]) == 0 and float(row[-1]) == 1


def test_fourier_encoding():
    uv = torch.rand(7, 2)
    assert encode(uv, 0).shape == (7, 2)
    e = encode(uv, 3)
    assert e.shape == (7, 14)
    torch.testing.assert_close(e[:, :2], 2 * uv - 1)


@pytest.mark.parametrize("encoding", ["relu", "fourier", "siren"])
def test_batched_tiles_equal_a_loop_of_per_tile_networks(encoding):
    """Fitting all tiles as one BatchedMLP (summed loss, one Adam) == fitting each tile's own network alone."""
    fourier = 2 if encoding == "fourier" else 0
    cfg = MLPConfig(widths=(16, 16), tile=8, overlap=2, encoding=encoding, fourier=max(fourier, 1), lr=1e-2)
    tiling = Tiling(14, 14, cfg.tile, cfg.overlap)
    img = torch.rand(14, 14, 3, generator=torch.Generator().manual_seed(1))
    target = tiling.split(img)
    uv = tiling.coordinates()
    model = CoordinateMLP(tiling.n, 3, cfg, generator=torch.Generator().manual_seed(2))
    loops = [model.network(i) for i in range(tiling.n)]  # copies of the initial weights
    steps = 15
    fit(list(model.parameters()), lambda: ((model(uv) - target) ** 2).mean((1, 2)), max_steps=steps, lr=cfg.lr)
    x = encode(uv, fourier)
    for i, net in enumerate(loops):
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        for _ in range(steps):
            opt.zero_grad()
            ((net(x) - target[i]) ** 2).mean().backward()
            opt.step()
        with torch.no_grad():
            torch.testing.assert_close(model(uv)[i], net(x), rtol=1e-4, atol=1e-5)
