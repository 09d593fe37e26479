"""geomprior image ...: one-line errors with nothing written, and tiny end-to-end runs of every sub-command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geomprior import cli
from geomprior.image.io import read_image

REPO = Path(__file__).resolve().parents[1]


def _main(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return cli.main(["image", *map(str, args)])
    finally:
        os.chdir(old)


def _one_line_error(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("geomprior: error: ")
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    "args,match",
    [
        (["denoise", "missing.png", "-o", "out.png"], "no such file"),
        (["denoise", "garbage.png", "-o", "out.png"], "not a readable image"),
        (["denoise", "empty.png", "-o", "out.png"], "empty"),
        (["denoise", "noisy.png", "-o", "out.xyz"], "cannot write file type"),
        (["denoise", "noisy.png", "-o", "noisy.png"], "used both as INPUT"),
        (["denoise", "noisy.png", "-o", "out.png", "--history", "nodir/run.json"], "does not exist"),
        (["denoise", "noisy.png", "-o", "out.png", "--method", "bogus"], "invalid choice"),
        (["superres", "small.png", "-o", "out.png", "--factor", "2", "--stop", "discrepancy"], "noise level sigma"),
        (["denoise", "noisy.png", "-o", "out.png", "--reference", "odd.png", "--iters", "1"], "reference is 31x31"),
        (["inpaint", "noisy.png", "--mask", "mask_small.png", "-o", "out.png"], "mask is 32x30 pixels but the image is 32x32"),
        (["inpaint", "noisy.png", "--mask", "garbage.png", "-o", "out.png"], "not a readable image"),
        (["superres", "small.png", "-o", "out.png", "--factor", "2", "--reference", "odd.png"], "not divisible by the factor 2"),
        (["superres", "small.png", "-o", "out.png", "--factor", "1"], "must be >= 2"),
        (["superres", "small.png", "-o", "out.png", "--factor", "2", "--method", "mlp"], "invalid choice"),
        (["cs", "clean.png", "-o", "out.png", "--measurements", "0"], r"must be in \(0, 1\]"),
        (["cs", "clean.png", "-o", "out.png", "--measurements", "1.5"], r"must be in \(0, 1\]"),
        (["cs", "clean.png", "-o", "out.png", "--measurements", "x"], "not a number"),
        (["cs", "clean.png", "-o", "out.png", "--measurements", "0.5", "--block", "0", "--iters", "1"], None),
        (["compress", "clean.png", "-o", "out.png", "--channels", "0"], "must be >= 1"),
        (["compress", "clean.png", "-o", "out.png", "--code", "code.txt"], "cannot write file type"),
        (["decompress", "missing.npz", "-o", "out.png"], "no such file"),
        (["decompress", "garbage.png", "-o", "out.png"], "not a geomprior code file"),
        (["decompress", "garbage.png", "-o", "garbage.png"], "used both as CODE"),
        (["denoise", "noisy.png", "-o", "out.png", "--iters", "-3"], "must be >= 0"),
        (["denoise", "noisy.png", "-o", "out.png", "--runs", "0"], "must be >= 1"),
        (["fit", "clean.png", "-o", "out.png", "--scale", "0"], "must be a positive number"),
        (["fit", "clean.png", "-o", "out.png", "--scale", "x"], "not a number"),
        (["fit", "clean.png", "-o", "out.png", "--encoding", "hash"], "invalid choice"),
        (["fit", "clean.png", "-o", "out.png", "--fourier", "0"], "must be >= 1"),
        (["fit", "clean.png", "-o", "out.png", "--code", "f.txt"], "cannot write file type"),
        (["decompress", "garbage.png", "-o", "out.png", "--scale", "-2"], "must be a positive number"),
    ],
)
def test_bad_input_one_line_nothing_written(images, capsys, args, match):
    before = sorted(os.listdir(images))
    code = _main(args, images)
    if match is None:  # a valid edge case: dense Gaussian matrix on a tiny image
        assert code == 0
        return
    assert code == 2
    line = _one_line_error(capsys)
    import re

    assert re.search(match, line), line
    assert sorted(os.listdir(images)) == before


def test_errors_from_a_real_process(images):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    before = sorted(os.listdir(images))
    for args in (["image", "denoise", "garbage.png", "-o", "out.png"],
                 ["image", "cs", "clean.png", "-o", "out.png", "--measurements", "2"]):
        proc = subprocess.run([sys.executable, "-m", "geomprior", *args], cwd=images, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("geomprior: error: ")
    assert sorted(os.listdir(images)) == before


def test_cuda_without_cuda(images, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert _main(["denoise", "noisy.png", "-o", "out.png", "--device", "cuda"], images) == 2
    assert "cuda" in _one_line_error(capsys).lower()
    assert not (images / "out.png").exists()


def test_denoise_end_to_end(images, capsys):
    code = _main(["denoise", "noisy.png", "-o", "out.png", "--method", "mlp", "--preset", "fast", "--iters", "60",
                  "--reference", "clean.png", "--history", "run.json", "--seed", "1"], images)
    assert code == 0
    out = capsys.readouterr().out
    assert "mlp denoise: stopped after" in out and "PSNR" in out and "stopping rule: heldout" in out
    assert "Wiener-refined" in out and "(network " in out  # the default Wiener step, and the network's own PSNR
    assert read_image(images / "out.png").shape == (32, 32, 3)
    run = json.loads((images / "run.json").read_text())
    assert run["command"] == "image denoise" and run["method"] == "mlp" and run["steps"] <= 60
    assert len(run["history"]["psnr"]) == len(run["history"]["step"])
    assert not [p for p in os.listdir(images) if p.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    "args,expect_shape,expect_text",
    [
        (["fit", "clean.png", "-o", "out.png", "--iters", "30", "--fourier", "2", "--tile", "16"], (32, 32, 3),
         "mlp fit: stopped after 30 iterations"),
        (["denoise", "noisy.png", "-o", "out.png", "--method", "dd", "--iters", "20"], (32, 32, 3), "dd denoise"),
        (["denoise", "noisy.png", "-o", "out.png", "--method", "dd", "--channels", "8", "--iters", "2"], (32, 32, 3),
         "parameters: 344"),  # depth 5 lowered to 3 for 32 pixels: 4 * (64 + 16) + 8 * 3
        (["denoise", "noisy.png", "-o", "out.png", "--method", "dip", "--preset", "fast", "--iters", "5",
          "--stop", "wmv"], (32, 32, 3), "stopping rule: wmv"),
        (["denoise", "noisy.png", "-o", "out.png", "--preset", "fast", "--iters", "3", "--runs", "2"], (32, 32, 3),
         "dip denoise: average of 2 runs (seeds 0-1)"),
        (["superres", "small.png", "-o", "out.png", "--factor", "2", "--preset", "fast", "--iters", "5",
          "--reference", "clean.png"], (32, 32, 3), "PSNR"),
        (["inpaint", "noisy.png", "--mask", "mask.png", "-o", "out.png", "--method", "dd", "--iters", "10"],
         (32, 32, 3), "dd inpaint"),
        (["compress", "clean.png", "-o", "out.png", "--channels", "8", "--depth", "3", "--iters", "10"], (32, 32, 3),
         "parameters: 344 weights for 32x32x3 = 3072 pixel values (compression ratio 8.93:1"),
        (["cs", "clean.png", "-o", "out.png", "--measurements", "0.25", "--block", "8", "--iters", "10"], (32, 32, 3),
         "measurements: 768 (gaussian"),
        (["cs", "clean.png", "-o", "out.jpg", "--measurements", "0.25", "--operator", "fourier", "--method", "dip",
          "--preset", "fast", "--iters", "5"], (32, 32, 3), "fourier"),
    ],
    ids=["fit", "denoise-dd", "denoise-dd-channels", "denoise-dip-wmv", "denoise-runs", "superres", "inpaint", "compress", "cs-gaussian", "cs-fourier-dip"],
)
def test_every_command_writes_its_output(images, capsys, args, expect_shape, expect_text):
    assert _main(args, images) == 0
    out = capsys.readouterr().out
    assert expect_text in out, out
    assert "stopped after" in out
    path = images / args[args.index("-o") + 1]
    assert read_image(path).shape == expect_shape


def test_inpaint_keeps_the_known_pixels_unless_told(images):
    """Known pixels come back unchanged by default (8-bit in, 8-bit out); --no-keep-known returns the network's."""
    known = read_image(images / "mask.png")[:, :, 0] > 0.5
    noisy = read_image(images / "noisy.png")
    base = ["inpaint", "noisy.png", "--mask", "mask.png", "--method", "dd", "--channels", "8", "--iters", "5"]
    assert _main([*base, "-o", "kept.png"], images) == 0
    assert _main([*base, "-o", "raw.png", "--no-keep-known"], images) == 0
    np.testing.assert_array_equal(read_image(images / "kept.png")[known], noisy[known])
    assert not np.array_equal(read_image(images / "raw.png")[known], noisy[known])


def test_compress_code_and_decompress(images, capsys):
    """compress --code writes the weights; decompress rebuilds the very image compress wrote from them alone."""
    assert _main(["compress", "clean.png", "-o", "out.png", "--channels", "8", "--depth", "3", "--iters", "10",
                  "--seed", "3", "--code", "code.npz"], images) == 0
    capsys.readouterr()
    assert (images / "code.npz").stat().st_size < 344 * 4 + 2000  # the weights at 4 bytes each, and a header
    assert _main(["decompress", "code.npz", "-o", "back.png"], images) == 0
    assert "decoded a 32x32x3 image from 344 weights (k = 8, d = 3, seed 3)" in capsys.readouterr().out
    np.testing.assert_array_equal(read_image(images / "back.png"), read_image(images / "out.png"))
    assert not [p for p in os.listdir(images) if p.startswith(".")]  # no temporary files left


def test_fit_scale_code_and_decompress(images, capsys):
    """fit --scale renders the fitted function larger; its --code rebuilds the same function: decompress at the same
    scale writes the very same image, at scale 1 the fitted image's size. A Deep Decoder code has no --scale."""
    assert _main(["fit", "clean.png", "-o", "big.png", "--iters", "20", "--preset", "fast", "--encoding", "grid",
                  "--scale", "2.5", "--code", "f.npz"], images) == 0
    assert "mlp fit: stopped after 20 iterations" in capsys.readouterr().out
    assert read_image(images / "big.png").shape == (80, 80, 3)
    assert _main(["decompress", "f.npz", "-o", "again.png", "--scale", "2.5"], images) == 0
    assert "grid tiles of 16 pixels" in capsys.readouterr().out
    np.testing.assert_array_equal(read_image(images / "again.png"), read_image(images / "big.png"))
    assert _main(["decompress", "f.npz", "-o", "same.png"], images) == 0
    assert read_image(images / "same.png").shape == (32, 32, 3)
    assert _main(["compress", "clean.png", "-o", "out.png", "--channels", "8", "--depth", "3", "--iters", "2",
                  "--code", "dd.npz"], images) == 0
    capsys.readouterr()
    assert _main(["decompress", "dd.npz", "-o", "x.png", "--scale", "2"], images) == 2
    assert "renders at its own size only" in _one_line_error(capsys)


def test_gray_stays_gray(images, capsys):
    """A grayscale file is one channel throughout: the decoder has one output channel and the ratio counts it."""
    import imageio.v3 as iio

    iio.imwrite(images / "gray.png", iio.imread(images / "clean.png")[:, :, 0])
    assert _main(["compress", "gray.png", "-o", "out.png", "--channels", "8", "--depth", "3", "--iters", "5"],
                 images) == 0
    assert "parameters: 328 weights for 32x32x1 = 1024 pixel values" in capsys.readouterr().out  # 4·80 + 8·1
    assert iio.imread(images / "out.png").ndim == 2
    assert _main(["denoise", "gray.png", "-o", "den.png", "--method", "dd", "--channels", "8", "--iters", "3",
                  "--reference", "clean.png"], images) == 2  # an RGB reference for a gray input
    assert "reference is 32x32x3" in capsys.readouterr().err
    assert _main(["denoise", "clean.png", "-o", "den.png", "--method", "dd", "--channels", "8", "--iters", "3",
                  "--reference", "gray.png"], images) == 0  # a gray reference for an RGB input is repeated
