"""scripts/bench_image.py: --quick runs end to end and writes its table; the classical comparators behave."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_image")


def test_bench_image_quick(bench, tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_image_quick.json").read_text())["rows"]
    assert {(r["task"], r["method"]) for r in rows} == {
        ("denoise", "dip"), ("denoise", "dd"), ("denoise", "mlp"), ("denoise", "nlm"), ("denoise", "tv"),
        ("denoise", "wavelet"), ("superres", "dip"), ("superres", "bicubic"), ("inpaint", "dd"), ("inpaint", "dip"),
        ("inpaint", "biharmonic"), ("compress", "dd"), ("compress", "haar"), ("fit", "mlp"), ("cs", "dd"),
        *([("denoise", "bm3d")] if bench.has_bm3d() else [])}
    for r in rows:
        assert math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1
        assert bool(r.get("wiener")) == ("network_psnr" in r)  # every refined row says its filter stacked windows
        if "steps" in r and not r["variant"]:
            assert 0 <= r["chosen"] <= r["steps"] <= 20 and r["oracle_psnr"] >= r.get("network_psnr", r["psnr"]) - 1e-6
    runs = next(r for r in rows if r["variant"] == "runs3")  # DIP denoising averaged over 3 runs
    assert runs["method"] == "dip" and runs["steps"] <= 60 and runs["stop_gap"] >= 0
    one = next(r for r in rows if r["variant"] == "run1")  # one full-width run, the default's comparator
    assert one["method"] == "dip" and one["steps"] <= 20
    noisy = next(r["input_psnr"] for r in rows if r["task"] == "denoise")
    assert all(r["psnr"] > noisy for r in rows if r["method"] in ("nlm", "tv", "wavelet", "bm3d"))
    text = (tmp_path / "bench_image_quick.md").read_text()
    assert "Acceptance" in text and "denoise DIP" in text and "denoise DIP, 3 full-width runs averaged" in text
    assert "denoise DIP, one full-width run" in text
    assert "denoise" in capsys.readouterr().out
    # rows are cached: a second run with --reuse computes nothing and gives the same table
    assert bench.main(["--quick", "--out", str(tmp_path), "--reuse"]) == 0
    assert " dB in " not in capsys.readouterr().out
    # --cached-only computes nothing and lists what is missing (here: the --extras rows)
    assert bench.main(["--quick", "--out", str(tmp_path), "--cached-only", "--extras"]) == 0
    out = capsys.readouterr().out
    assert " dB in " not in out and "Not measured yet" in out and "astronaut-denoise-nlm-σ15" in out
    assert "astronaut-denoise-nlm," not in out  # cached rows are not listed as missing
    assert bench.main(["--quick", "--out", str(tmp_path / "none"), "--cached-only"]) == 0  # no rows: no table
    assert not (tmp_path / "none" / "bench_image_quick.md").exists()


def test_psnr_cell_marks_rows_of_the_former_wiener_step(bench):
    assert bench._psnr_cell({"psnr": 30.0}) == "30.00"
    assert bench._psnr_cell({"psnr": 31.0, "network_psnr": 30.0, "wiener": "stacks"}) == "31.00 (30.00)"
    assert bench._psnr_cell({"psnr": 31.0, "network_psnr": 30.0}) == "31.00† (30.00)"


def test_bm3d_denoises(bench):
    """The BM3D comparator (optional: pip install '.[bench]') removes noise from gray and colour crops."""
    pytest.importorskip("bm3d")
    clean = bench.load("astronaut", 48)
    rng = np.random.default_rng(0)
    for image in (clean, clean[:, :, :1]):
        noisy = np.clip(image + rng.normal(0, bench.SIGMA, image.shape), 0, 1).astype(np.float32)
        out = bench.bm3d_denoise(noisy, image)
        assert out.shape == image.shape
        assert bench.tasks.psnr(out, image) > bench.tasks.psnr(noisy, image) + 3


def test_bench_image_extras(bench, tmp_path):
    assert bench.main(["--quick", "--extras", "--tasks", "denoise", "inpaint", "fit", "--methods", "mlp", "nlm",
                       "biharmonic", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_image_quick.json").read_text())["rows"]
    found = {(r["task"], r["method"], r["variant"]) for r in rows}
    assert {("denoise", "nlm", "σ15"), ("denoise", "nlm", "σ50"), ("inpaint", "biharmonic", "holes"),
            ("fit", "mlp", "fourier3"), ("denoise", "mlp", "fourier3"), ("denoise", "mlp", "")} <= found
    by = {(r["task"], r["method"], r["variant"]): r for r in rows}
    # the same noise model at three levels: more noise, lower input PSNR; the encoded MLP has more inputs
    assert by["denoise", "nlm", "σ15"]["input_psnr"] > by["denoise", "nlm", ""]["input_psnr"] > \
        by["denoise", "nlm", "σ50"]["input_psnr"]
    assert by["fit", "mlp", "fourier3"]["parameters"] > by["fit", "mlp", ""]["parameters"]


def test_bench_image_grayscale_classical(bench, tmp_path):
    """camera is grayscale: skimage returns (H, W) for it, the rows still compare (H, W, 1) images."""
    assert bench.main(["--quick", "--images", "camera", "--methods", "nlm", "tv", "wavelet", "bicubic", "biharmonic",
                       "haar", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_image_quick.json").read_text())["rows"]
    assert len(rows) == 7 + len(bench.DOWNSAMPLERS) and all(math.isfinite(r["psnr"]) for r in rows)
    assert {r["variant"] for r in rows if r["task"] == "superres"} == {"", *bench.DOWNSAMPLERS}


def test_pil_inputs_are_shrunk_as_a_user_would(bench):
    """The no-inverse-crime inputs: 8 bits, PIL's filters; the box filter gives block means."""
    rng = np.random.default_rng(0)
    img = rng.random((32, 24, 3)).astype(np.float32)
    box = bench.pil_resize(img, (6, 8), "BOX")
    means = np.round(img * 255).reshape(8, 4, 6, 4, 3).mean((1, 3)) / 255
    assert box.shape == (8, 6, 3) and box.dtype == np.float32 and np.abs(box - means).max() <= 1 / 255 + 1e-6
    shrunk = {name: bench.pil_resize(img, (6, 8), name) for name in ("BICUBIC", "LANCZOS")}
    assert not np.allclose(shrunk["BICUBIC"], shrunk["LANCZOS"])  # two different filters


def test_holes_cover_a_quarter_in_discs(bench):
    known = bench.holes((64, 64), np.random.default_rng(0))
    assert 0.25 <= (~known).mean() < 0.35
    from scipy import ndimage
    assert ndimage.label(~known)[1] < 20  # a few large holes, not many pixels


def test_haar_keeps_the_count_and_improves_with_more(bench):
    rng = np.random.default_rng(0)
    img = np.clip(np.cumsum(rng.normal(0, 0.05, (32, 32, 1)), axis=1) + 0.5, 0, 1).astype(np.float32)
    errors = [float(((bench.haar(img, n) - img) ** 2).mean()) for n in (16, 128, 1024)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10


def test_dd_channels_for_hits_the_ratio(bench):
    k = bench.dd_channels_for(30, (256, 256, 3))
    ratio = 256 * 256 * 3 / bench.dd_parameter_count(k, 5, 3)
    assert abs(ratio - 30) < 2


def test_verdicts_judge_rows(bench):
    base = dict(variant="", input_psnr=20.0, seconds=1.0)
    rows = [dict(base, image="a", task="denoise", method="nlm", psnr=28.0),
            dict(base, image="a", task="denoise", method="wavelet", psnr=27.0),
            dict(base, image="a", task="denoise", method="dip", psnr=28.6, oracle_psnr=29.0, last_psnr=28.0,
                 seconds=170.0),
            dict(base, image="b", task="denoise", method="nlm", psnr=28.0),
            dict(base, image="b", task="denoise", method="dip", psnr=28.2, oracle_psnr=29.0, last_psnr=28.0,
                 seconds=950.0),
            dict(base, image="b", task="denoise", method="dip", variant="runs3", psnr=28.7, oracle_psnr=28.3,
                 stop_gap=0.1)]
    lines = bench.verdicts(rows)
    assert any("[a]" in line and line.endswith("PASS") for line in lines)
    assert any("DIP [b]" in line and line.endswith("FAIL") for line in lines)
    assert any("averaged [b]" in line and line.endswith("PASS") for line in lines)
    # issue 32's pace: the default within 15 minutes; fast within 3 and at least the best scikit-image denoiser
    assert any("pace, preset default, σ25 [a]" in line and line.endswith("PASS") for line in lines)
    assert any("pace, preset default, σ25 [b]" in line and line.endswith("FAIL") for line in lines)
    fast = bench.verdicts(rows, "fast")
    assert any("pace, preset fast, σ25 [a]" in line and line.endswith("PASS") for line in fast)
    rows[2] = dict(rows[2], psnr=27.9)  # below nlm
    assert any("pace, preset fast, σ25 [a]" in line and line.endswith("FAIL") for line in bench.verdicts(rows, "fast"))


def test_bench_image_variants(bench, tmp_path):
    """--variants keeps only those rows, in a table of its own (title and file named by them) that compares ours
    with the best classical row of the same variant."""
    assert bench.main(["--quick", "--extras", "--variants", "σ50", "--tasks", "denoise", "--methods", "dd", "nlm",
                       "tv", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_image_quick_σ50.json").read_text())["rows"]
    assert {(r["method"], r["variant"]) for r in rows} == {("dd", "σ50"), ("nlm", "σ50"), ("tv", "σ50")}
    text = (tmp_path / "bench_image_quick_σ50.md").read_text()
    assert "(rows σ50)" in text and "Acceptance" not in text
    best = max((r for r in rows if r["method"] != "dd"), key=lambda r: r["psnr"])
    assert "denoise σ50 DD [astronaut]: " in text and f"best classical {best['method']} {best['psnr']:.2f}" in text


def test_bench_fit_quick(tmp_path, capsys):
    """scripts/bench_fit.py: every encoding, the compact preset and the --scale rows, each beside its classical
    comparators; JPEG's file fits in our bytes."""
    fit = load_script("bench_fit")
    assert fit.main(["--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_image_fit_quick.json").read_text())["rows"]
    ours = [r for r in rows if r["method"] == "geomprior"]
    assert {(r["encoding"], r["preset"]) for r in ours} >= {("relu", "default"), ("fourier", "default"),
                                                           ("siren", "default"), ("grid", "default"),
                                                           ("siren", "compact")}
    for r in rows:
        assert math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1
    for r, jpeg in zip(rows, rows[1:]):
        if r["method"] == "geomprior" and jpeg["method"].startswith("JPEG"):
            assert jpeg["bytes"] <= r["bytes"] or jpeg["method"] == "JPEG q1"
    assert any(r["method"] == "bicubic" for r in rows)
    assert "JPEG" in (tmp_path / "bench_image_fit_quick.md").read_text()
    assert "astronaut-relu-default: " in capsys.readouterr().out
    assert fit.main(["--quick", "--out", str(tmp_path), "--reuse"]) == 0  # cached: nothing computed
    out = capsys.readouterr().out
    assert "astronaut-relu-default: " not in out and "Acceptance" in out


def test_jpeg_at_a_budget_is_the_best_quality_that_fits():
    fit = load_script("bench_fit")
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    small, size, q = fit.jpeg_at(image, 2500)
    bigger, size2, q2 = fit.jpeg_at(image, 10 ** 6)
    assert size <= 2500 < size2 and q < q2 == 100 and small.shape == image.shape
