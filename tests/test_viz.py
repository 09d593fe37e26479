"""geomprior.viz: headless PNG rendering (legacy open3d Visualizer, own Xvfb when no DISPLAY)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from geomprior.errors import InputError  # noqa: E402
from geomprior.synthetic import noisy_scan, sphere_mesh  # noqa: E402
from geomprior.viz import render_png  # noqa: E402

can_render = bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None
needs_display = pytest.mark.skipif(
    not can_render, reason="no DISPLAY and no Xvfb binary (apt-get install xvfb libgl1)"
)


@needs_display
def test_render_sphere_and_points(tmp_path):
    sphere = sphere_mesh(resolution=30)
    before = np.asarray(sphere.vertex_normals).copy()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(noisy_scan(sphere, 500, 0.01, 0)))
    path = tmp_path / "s.png"
    display = os.environ.get("DISPLAY")
    render_png(path, [sphere, cloud], width=320, height=240)
    assert os.listdir(tmp_path) == ["s.png"]  # no temporary file left
    img = np.asarray(o3d.io.read_image(str(path)))
    assert img.shape[:2] == (240, 320)
    colours = np.unique(img.reshape(-1, img.shape[-1]), axis=0)
    assert len(colours) > 10  # not blank: shading and points
    covered = (img != img[0, 0]).any(axis=-1)  # pixels unlike the background (corner)
    assert 0.2 < covered.mean() < 0.9  # the whole sphere in view, not cut off
    assert covered[100:140, 80:120].mean() > 0.5  # ... in the middle
    assert os.environ.get("DISPLAY") == display  # environment restored
    assert not sphere.has_vertex_colors()  # inputs untouched
    np.testing.assert_array_equal(np.asarray(sphere.vertex_normals), before)


def test_render_bad_inputs(tmp_path):
    sphere = sphere_mesh(resolution=10)
    with pytest.raises(InputError):
        render_png(tmp_path / "s.jpg", sphere)
    with pytest.raises(InputError):
        render_png(tmp_path / "missing" / "s.png", sphere)
    with pytest.raises(InputError):
        render_png(tmp_path / "s.png", [])
    with pytest.raises(InputError):
        render_png(tmp_path / "s.png", [o3d.geometry.TriangleMesh()])
    with pytest.raises(InputError):
        render_png(tmp_path / "s.png", ["not a geometry"])
    assert os.listdir(tmp_path) == []
