"""geomprior.image.io: gray stays gray, RGB/RGBA -> RGB floats, masks, atomic writes, one-line errors."""

from __future__ import annotations

import json
import logging

import imageio.v3 as iio
import numpy as np
import pytest

from geomprior.errors import InputError
from geomprior.image.io import read_code, read_image, read_mask, write_code, write_image


def test_gray_stays_gray_rgba_becomes_rgb(tmp_path, caplog):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    iio.imwrite(tmp_path / "gray.png", rgb[:, :, 0])
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 128, np.uint8)], axis=2)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    a = read_image(tmp_path / "rgb.png")
    assert a.shape == (6, 5, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a, rgb / 255, atol=1e-6)
    g = read_image(tmp_path / "gray.png")
    assert g.shape == (6, 5, 1)
    np.testing.assert_allclose(g, rgb[:, :, :1] / 255, atol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "gray.png", rgb=True), np.repeat(g, 3, 2))
    np.testing.assert_allclose(read_image(tmp_path / "rgb.png", rgb=True), a)
    with caplog.at_level(logging.WARNING, logger="geomprior.image.io"):
        b = read_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(b, a)
    assert "alpha" in caplog.text


def test_sixteen_bit(tmp_path):
    img = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    iio.imwrite(tmp_path / "deep.png", img)
    np.testing.assert_allclose(read_image(tmp_path / "deep.png")[:, :, 0], img / 65535, atol=1e-6)


def test_write_read_round_trip(tmp_path):
    img = np.random.default_rng(1).random((7, 9, 3)).astype(np.float32)
    write_image(tmp_path / "out.png", img)
    back = read_image(tmp_path / "out.png")
    assert np.abs(back - img).max() <= 0.5 / 255 + 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary file left


def test_mask(tmp_path):
    m = np.zeros((4, 6), np.uint8)
    m[:, :3] = 255
    iio.imwrite(tmp_path / "mask.png", m)
    mask = read_mask(tmp_path / "mask.png", (4, 6))
    assert mask.dtype == bool and mask[:, :3].all() and not mask[:, 3:].any()
    with pytest.raises(InputError, match="mask is 6x4 pixels but the image is 5x4"):
        read_mask(tmp_path / "mask.png", (4, 5))
    iio.imwrite(tmp_path / "black.png", np.zeros((4, 6), np.uint8))
    with pytest.raises(InputError, match="no pixel"):
        read_mask(tmp_path / "black.png")


@pytest.mark.parametrize("content,match", [(None, "no such file"), (b"", "empty"),
                                           (b"this is not an image\n" * 20, "not a readable image")])
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        read_image(path)


def test_write_rejects_unknown_extension_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match="cannot write file type"):
        write_image(tmp_path / "out.xyz", np.zeros((2, 2, 3)))
    assert list(tmp_path.iterdir()) == []


def test_code_round_trip_and_damage(tmp_path):
    from geomprior.image.decoder import DDConfig

    rng = np.random.default_rng(2)
    weights = {"net.0.weight": rng.random((4, 4, 1, 1)).astype(np.float32), "net.3.bias": rng.random(4)}
    write_code(tmp_path / "c.npz", weights, shape=(8, 6, 1), config=DDConfig(channels=4, depth=2), seed=7)
    code = read_code(tmp_path / "c.npz")
    assert code["shape"] == (8, 6, 1) and code["seed"] == 7
    assert code["config"] == {"channels": 4, "depth": 2, "input_scale": 0.1, "upsample": "bilinear",
                              "input": "uniform", "norm_before_relu": False}
    assert list(code["weights"]) == list(weights)
    for name, w in weights.items():
        np.testing.assert_array_equal(code["weights"][name], w.astype(np.float32))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="not a geomprior code file"):
        read_code(tmp_path / "other.npz")
    with np.load(tmp_path / "c.npz") as npz:
        header, flat = npz["header"], npz["weights"]
    old = json.loads(header.tobytes().decode())  # a file of the first format: no input, no norm_before_relu
    for name in ("input", "norm_before_relu"):
        del old["config"][name]
    np.savez(tmp_path / "old.npz", header=np.frombuffer(json.dumps(old).encode(), np.uint8), weights=flat)
    assert DDConfig(**read_code(tmp_path / "old.npz")["config"]) == DDConfig(channels=4, depth=2)
    np.savez(tmp_path / "cut.npz", header=header, weights=np.zeros(5, np.float32))
    with pytest.raises(InputError, match="damaged code file"):
        read_code(tmp_path / "cut.npz")
