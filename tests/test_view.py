"""geomprior view: screenshots without a display, patches coloured by index, the window (faked), bad input;
and the patch-label file (geomprior.patches.point_labels / save_patch_labels / load_patch_labels)."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from geomprior import cli, viz  # noqa: E402
from geomprior.errors import InputError  # noqa: E402
from geomprior.io import write_mesh, write_points  # noqa: E402
from geomprior.patches import (PATCH_LABELS_FILE, cover, load_patch_labels, point_labels,  # noqa: E402
                               save_patch_labels)
from geomprior.synthetic import noisy_scan, sphere_mesh  # noqa: E402

needs_render = pytest.mark.skipif(not (os.environ.get("DISPLAY") or shutil.which("Xvfb")),
                                  reason="no DISPLAY and no Xvfb binary (apt-get install xvfb libgl1)")


@pytest.fixture(scope="module")
def scan_points():
    return noisy_scan(sphere_mesh(resolution=16), 2000, 0.005, 0)


@pytest.fixture
def files(tmp_path, scan_points):
    """mesh.ply, scan.xyz (no normals), dense.ply (with normals) and run/patches.npz in tmp_path."""
    write_mesh(tmp_path / "mesh.ply", sphere_mesh(resolution=16))
    np.savetxt(tmp_path / "scan.xyz", scan_points)
    write_points(tmp_path / "dense.ply", scan_points, scan_points / np.linalg.norm(scan_points, axis=1)[:, None])
    (tmp_path / "run").mkdir()
    patches = cover(scan_points, radius=0.12)
    save_patch_labels(tmp_path / "run" / PATCH_LABELS_FILE, scan_points, point_labels(patches, scan_points))
    return tmp_path


def view(*args) -> int:
    return cli.main(["view", *map(str, args)])


def read_png(path) -> np.ndarray:
    return np.asarray(o3d.io.read_image(str(path)))[..., :3]


def not_background(img: np.ndarray) -> np.ndarray:
    return (img != 255).any(axis=-1)


# --------------------------------------------------------------------------------------------
# patch labels


def test_point_labels_match_a_per_point_loop(scan_points):
    patches = cover(scan_points, radius=0.12)
    labels = point_labels(patches, scan_points)
    assert labels.dtype == np.int64 and labels.shape == (len(scan_points),)
    for i in range(0, len(scan_points), 7):  # reference: every patch holding point i, nearest centre wins
        holders = [p for p in range(len(patches)) if i in patches.index[p][patches.mask[p]]]
        dist = [np.linalg.norm(scan_points[i] - patches.centers[p]) for p in holders]
        assert labels[i] == holders[int(np.argmin(dist))]
    assert (labels >= 0).all()  # cover() puts every point in a patch
    first_only = cover(scan_points, radius=0.12)
    first_only.mask[:, 1:] = False  # patches that hold only their first member
    sparse = point_labels(first_only, scan_points)
    assert (sparse == -1).sum() == len(scan_points) - len(np.unique(first_only.index[:, 0]))


def test_patch_labels_round_trip_and_bad_files(tmp_path, scan_points):
    labels = np.arange(len(scan_points)) % 5 - 1
    save_patch_labels(tmp_path / "p.npz", scan_points, labels)
    assert os.listdir(tmp_path) == ["p.npz"]  # atomic: no temporary file left
    with pytest.raises(InputError, match="no patches.npz in this folder"):
        load_patch_labels(tmp_path)
    points, back = load_patch_labels(tmp_path / "p.npz")
    assert points.dtype == np.float32 and back.dtype == np.int64
    np.testing.assert_allclose(points, scan_points, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back, labels)
    with pytest.raises(InputError, match="labels must be"):
        save_patch_labels(tmp_path / "q.npz", scan_points, labels[:-1])
    with pytest.raises(InputError, match=">= 0, or -1"):
        save_patch_labels(tmp_path / "q.npz", scan_points, labels - 5)
    with pytest.raises(InputError, match="cannot write file type"):
        save_patch_labels(tmp_path / "q.npy", scan_points, labels)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file" * 10)
    with pytest.raises(InputError, match="not a patch-label file"):
        load_patch_labels(tmp_path / "garbage.npz")
    np.savez(tmp_path / "other.npz", points=scan_points)
    with pytest.raises(InputError, match="no labels array"):
        load_patch_labels(tmp_path / "other.npz")
    assert not (tmp_path / "q.npz").exists()


def test_label_colors_tell_neighbouring_patches_apart():
    colors = viz.label_colors(np.arange(-1, 40))
    assert colors.shape == (41, 3) and ((0 <= colors) & (colors <= 1)).all()
    np.testing.assert_array_equal(colors[0], viz.NO_LABEL_COLOR)
    steps = np.linalg.norm(np.diff(colors[1:], axis=0), axis=1)
    assert steps.min() > 0.2  # consecutive indices clearly different
    assert len(np.unique(colors[1:], axis=0)) >= 16  # many distinct colours before the palette repeats


# --------------------------------------------------------------------------------------------
# screenshots (headless: CI has no display, viz starts its own Xvfb)


@needs_render
def test_screenshot_shows_mesh_and_points_distinguishably(files, capsys):
    assert view(files / "mesh.ply", files / "scan.xyz", "--screenshot", files / "shot.png") == 0
    assert capsys.readouterr().out.strip() == f"screenshot: {files / 'shot.png'}"
    img = read_png(files / "shot.png")
    assert img.shape == (600, 800, 3)
    covered = not_background(img)
    assert 0.1 < covered.mean() < 0.9  # the object is in view and not cut off
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10  # shaded, not one colour
    r, g, b = (img[..., c].astype(int) for c in range(3))
    grey = covered & (abs(r - g) < 8) & (abs(g - b) < 8)
    orange = (r > 150) & (r - b > 100)
    assert grey.mean() > 0.05 and orange.sum() > 100  # mesh grey, input points orange


@needs_render
def test_screenshot_of_patches_has_several_colours(files):
    assert view(files / "run", "--patches", "--screenshot", files / "patches.png") == 0
    img = read_png(files / "patches.png").reshape(-1, 3).astype(int)
    palette = np.round(viz.label_colors(np.arange(18)) * 255).astype(int)
    hits = [int((np.abs(img - c).max(axis=1) <= 3).sum()) for c in palette]
    assert sum(h > 20 for h in hits) >= 6  # points drawn in their patch colours, many patches visible


@needs_render
def test_screenshot_with_normals_draws_more(files):
    assert view(files / "dense.ply", "--screenshot", files / "plain.png") == 0
    assert view(files / "dense.ply", "--normals", "--screenshot", files / "normals.png") == 0
    plain, normals = (not_background(read_png(files / name)).mean() for name in ("plain.png", "normals.png"))
    assert normals > plain * 1.2  # the normal lines cover extra pixels


# --------------------------------------------------------------------------------------------
# the window


class FakeVisualizer:
    """Stands in for open3d.visualization.Visualizer (records what the viewer does)."""

    instances: list = []
    can_open = True
    says = ""  # what open3d prints while opening the window

    def __init__(self):
        self.calls, self.geometries = [], []
        self.option = o3d.visualization.RenderOption()
        FakeVisualizer.instances.append(self)

    def create_window(self, window_name="", width=0, height=0, visible=True):
        self.calls.append(("create_window", visible))
        if self.says:
            print(self.says)
        return self.can_open

    def add_geometry(self, g):
        self.geometries.append(g)

    def get_render_option(self):
        return self.option

    def get_view_control(self):
        return type("Ctl", (), {"__getattr__": lambda s, name: (lambda *a, **k: None)})()

    def run(self):
        self.calls.append(("run",))

    def destroy_window(self):
        self.calls.append(("destroy_window",))


@pytest.fixture
def fake_window(monkeypatch):
    FakeVisualizer.instances = []
    monkeypatch.setattr(o3d.visualization, "Visualizer", FakeVisualizer)
    monkeypatch.setenv("DISPLAY", ":fake")
    return FakeVisualizer.instances


def test_window_opens_with_mesh_points_and_normals(files, fake_window):
    assert view(files / "mesh.ply", files / "dense.ply", files / "run", "--patches", "--normals") == 0
    (vis,) = fake_window
    assert vis.calls == [("create_window", True), ("run",), ("destroy_window",)]
    kinds = [type(g).__name__ for g in vis.geometries]
    assert kinds == ["TriangleMesh", "PointCloud", "PointCloud"]
    mesh, dense, patches = vis.geometries
    np.testing.assert_allclose(np.asarray(mesh.vertex_colors)[0], viz.MESH_COLOR)
    np.testing.assert_allclose(np.asarray(dense.colors)[0], viz.POINT_COLOR)
    assert dense.has_normals() and vis.option.point_show_normal
    assert len(np.unique(np.asarray(patches.colors), axis=0)) > 5


def test_window_that_cannot_open_is_one_line(files, fake_window, monkeypatch, capsys):
    monkeypatch.setattr(FakeVisualizer, "can_open", False)
    assert view(files / "mesh.ply") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geomprior: error: cannot open a window on display :fake")


def test_window_never_waits_on_an_offscreen_fallback(files, fake_window, monkeypatch, capsys):
    # open3d >= 0.19 opens an invisible EGL context when the display cannot be reached: run() would never return
    monkeypatch.setattr(FakeVisualizer, "says", "[Open3D INFO] [Visualizer] No display detected, falling back to "
                                                "EGL offscreen rendering.")
    assert view(files / "mesh.ply") == 2
    assert fake_window[0].calls == [("create_window", True), ("destroy_window",)]  # closed, never run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geomprior: error: cannot open a window on display :fake")


def test_no_display_and_no_screenshot_says_what_to_do(files, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert view(files / "mesh.ply") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--screenshot" in err[0] and "DISPLAY" in err[0]


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written


@pytest.mark.parametrize(
    "args,match",
    [
        (["missing.ply", "--screenshot", "out.png"], "no such file"),
        (["garbage.ply", "--screenshot", "out.png"], "not a PLY file"),
        (["mesh.ply", "--screenshot", "nodir/out.png"], "does not exist"),
        (["mesh.ply", "--screenshot", "out.jpg"], "cannot write file type"),
        (["run", "--screenshot", "out.png"], "is a folder; add --patches"),
        (["empty_run", "--patches", "--screenshot", "out.png"], "no patches.npz in this folder"),
        (["mesh.ply", "--patches", "--screenshot", "out.png"], "--patches needs a run folder"),
        (["garbage.npz", "--patches", "--screenshot", "out.png"], "not a patch-label file"),
    ],
    ids=["missing", "garbage", "unwritable-screenshot", "screenshot-ext", "folder-without-patches-flag",
         "folder-without-patches-file", "patches-without-folder", "garbage-npz"],
)
def test_bad_input_is_one_line_and_writes_nothing(files, args, match, capsys, monkeypatch):
    (files / "garbage.ply").write_bytes(b"\x00\x01garbage" * 20)
    (files / "garbage.npz").write_bytes(b"garbage" * 20)
    (files / "empty_run").mkdir()
    before = {p: p.stat().st_mtime_ns for p in files.rglob("*")}
    monkeypatch.chdir(files)
    assert view(*args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geomprior: error: "), captured.err
    assert match in lines[0]
    assert captured.out == ""
    assert {p: p.stat().st_mtime_ns for p in files.rglob("*")} == before  # nothing written or touched

