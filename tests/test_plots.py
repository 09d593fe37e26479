"""geomprior.plots and --plot: loss curves with the kept step marked, image comparison strips, options checked
before any fit."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest

from geomprior import cli
from geomprior.errors import InputError
from geomprior.plots import STRIP_GAP, comparison_strip, plot_fit, strip_path

RED = np.array([214, 39, 40])  # matplotlib tab:red, the kept-step line
GREEN = np.array([44, 160, 44])  # tab:green, the PSNR curve


def read_rgb(path) -> np.ndarray:
    return iio.imread(path)[..., :3].astype(int)


def pixels_of(img: np.ndarray, color: np.ndarray, tol: int = 20) -> np.ndarray:
    return np.abs(img - color).max(axis=-1) <= tol


def assert_vertical_line(img: np.ndarray, color: np.ndarray = RED) -> int:
    """A dashed vertical line of ``color`` through most of the plot height; returns its column."""
    hit = pixels_of(img, color)
    cols = hit.sum(0)
    col = int(cols.argmax())
    assert cols[col] > 0.4 * img.shape[0], "no vertical line of the expected colour"
    assert hit[:, col + 4:].sum() + hit[:, :max(col - 3, 0)].sum() < 0.5 * hit.sum()  # mostly in one column
    return col


# --------------------------------------------------------------------------------------------
# the functions


def test_plot_fit_marks_the_kept_step_and_skips_gaps(tmp_path):
    steps = list(range(0, 210, 10))
    history = {"step": steps, "loss": [1 / (s + 10) for s in steps],
               "val": [None, None] + [abs(s - 120) / 1e3 + 0.01 for s in steps[2:]],  # gaps, e.g. a filling window
               "psnr": [20 + s / 50 for s in steps]}
    plot_fit(tmp_path / "early.png", history, kept=40, title="fit", dpi=100)
    plot_fit(tmp_path / "late.png", history, kept=160, title="fit", dpi=100)
    assert sorted(os.listdir(tmp_path)) == ["early.png", "late.png"]  # no temporary files left
    early, late = read_rgb(tmp_path / "early.png"), read_rgb(tmp_path / "late.png")
    assert early.shape == (400, 640, 3)
    assert assert_vertical_line(early) < assert_vertical_line(late)  # the line sits at the kept step
    assert pixels_of(early, GREEN).sum() > 200  # the PSNR curve is drawn
    plot_fit(tmp_path / "no_psnr.png", {"step": steps, "loss": history["loss"]}, kept=[30, 90, 150])
    assert pixels_of(read_rgb(tmp_path / "no_psnr.png"), GREEN).sum() == 0


def test_plot_fit_refuses_an_empty_history(tmp_path):
    with pytest.raises(InputError, match="no recorded losses"):
        plot_fit(tmp_path / "p.png", {"step": [], "loss": []})
    with pytest.raises(InputError, match="cannot write file type"):
        plot_fit(tmp_path / "p.jpg", {"step": [0], "loss": [1.0]})
    assert os.listdir(tmp_path) == []


def test_comparison_strip_brings_panels_to_one_size(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.random((8, 10, 3))
    big = rng.random((16, 20, 3))
    gray = rng.random((16, 20))
    comparison_strip(tmp_path / "s.png", [small, big, gray])
    strip = iio.imread(tmp_path / "s.png")
    assert strip.shape == (16, 3 * 20 + 2 * STRIP_GAP, 3)
    # nearest-neighbour upscaling: every small pixel becomes a 2x2 block of the same value
    np.testing.assert_array_equal(strip[:, :20][::2, ::2], np.round(small * 255).astype(np.uint8))
    assert (strip[:, 20:20 + STRIP_GAP] == 255).all()
    np.testing.assert_array_equal(strip[:, -20:, 0], np.round(gray * 255).astype(np.uint8))
    assert strip_path(tmp_path / "run" / "fit.png") == tmp_path / "run" / "fit_strip.png"


# --------------------------------------------------------------------------------------------
# the command line


@pytest.fixture
def scan(tmp_path):
    o3d = pytest.importorskip("open3d")  # noqa: F841
    from geomprior.io import write_points
    from geomprior.synthetic import noisy_scan, sphere_mesh

    path = tmp_path / "scan.ply"
    write_points(path, noisy_scan(sphere_mesh(resolution=10), 400, 0.01, 0))
    return path


def test_reconstruct_plot(tmp_path, scan, capsys):
    # a tiny real run (7 patches, 60 epochs): the plot shows its local fit
    code = cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), "--preset", "fast", "--radius", "0.3",
                     "--max-epochs", "60", "--no-consistency", "--device", "cpu", "--plot", str(tmp_path / "fit.png")])
    assert code == 0
    assert f"plot: {tmp_path / 'fit.png'}" in capsys.readouterr().out
    img = read_rgb(tmp_path / "fit.png")
    assert img.shape == (400, 640, 3)
    assert_vertical_line(img)  # the kept epoch
    assert sorted(os.listdir(tmp_path)) == ["fit.png", "m.ply", "scan.ply"]


@pytest.mark.parametrize("plot", ["nodir/fit.png", "fit.svg"])
def test_reconstruct_plot_checked_before_the_fit(tmp_path, scan, monkeypatch, capsys, plot):
    import geomprior.dgp

    def must_not_run(*args, **kwargs):
        raise AssertionError("the fit started before the options were checked")

    monkeypatch.setattr(geomprior.dgp, "reconstruct", must_not_run)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["reconstruct", "scan.ply", "-o", "m.ply", "--plot", plot]) == 2
    assert capsys.readouterr().err.startswith(f"geomprior: error: {plot}: cannot write")
    assert os.listdir(tmp_path) == ["scan.ply"]


def test_image_plot_and_strip_with_reference(images, monkeypatch, capsys):
    monkeypatch.chdir(images)
    assert cli.main(["image", "denoise", "noisy.png", "-o", "out.png", "--method", "mlp", "--preset", "fast",
                     "--iters", "40", "--reference", "clean.png", "--plot", "fit.png", "--no-wiener"]) == 0
    out = capsys.readouterr().out  # (--no-wiener: a two-line title, room for the line the test looks for)
    assert "plot: fit.png" in out and "strip: fit_strip.png" in out
    plot = read_rgb(images / "fit.png")
    assert_vertical_line(plot)
    assert pixels_of(plot, GREEN).sum() > 200  # PSNR, since a reference was given
    strip = iio.imread(images / "fit_strip.png")
    assert strip.shape == (32, 3 * 32 + 2 * STRIP_GAP, 3)  # INPUT | RESULT | REFERENCE
    np.testing.assert_array_equal(strip[:, :32], iio.imread(images / "noisy.png"))
    np.testing.assert_array_equal(strip[:, 32 + STRIP_GAP:64 + STRIP_GAP], iio.imread(images / "out.png"))
    np.testing.assert_array_equal(strip[:, -32:], iio.imread(images / "clean.png"))


def test_image_strip_without_reference_upscales_the_input(images, monkeypatch):
    monkeypatch.chdir(images)
    assert cli.main(["image", "superres", "small.png", "-o", "big.png", "--factor", "2", "--method", "dd",
                     "--channels", "8", "--iters", "5", "--plot", "sr.png"]) == 0
    strip = iio.imread(images / "sr_strip.png")
    assert strip.shape == (32, 2 * 32 + STRIP_GAP, 3)  # INPUT (upscaled 2x) | RESULT
    np.testing.assert_array_equal(strip[::2, :32:2], iio.imread(images / "small.png"))


@pytest.mark.parametrize("args,match", [
    (["--plot", "nodir/p.png"], "does not exist"),
    (["--plot", "p.pdf"], "cannot write file type"),
    (["--plot", "clean.png", "--reference", "clean.png"], "used both as --reference and as the plot"),
    (["--plot", "c.png", "--reference", "c_strip.png"], "used both as --reference and as the strip"),
])
def test_image_plot_checked_before_the_fit(images, monkeypatch, capsys, args, match):
    from geomprior.image import tasks

    def must_not_run(*a, **k):
        raise AssertionError("the fit started before the options were checked")

    monkeypatch.setattr(tasks, "denoise", must_not_run)
    (images / "c_strip.png").write_bytes((images / "clean.png").read_bytes())
    before = sorted(os.listdir(images))
    monkeypatch.chdir(images)
    assert cli.main(["image", "denoise", "noisy.png", "-o", "out.png", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert sorted(os.listdir(images)) == before
