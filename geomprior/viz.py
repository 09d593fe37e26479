"""Headless pictures of meshes and point clouds.

Uses open3d's legacy ``Visualizer`` with a hidden window (fast; the Filament offscreen renderer is
too slow on CPU).  It needs an X display: when ``DISPLAY`` is not set, a private ``Xvfb`` server is
started for the call and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from geomprior.errors import InputError
from geomprior.io import _native_output_captured, atomic_path, check_writable

logger = logging.getLogger(__name__)

_INSTALL_HINT = "install them with `apt-get install xvfb libgl1`"
MESH_COLOR = (0.75, 0.75, 0.75)  # light grey
POINT_COLOR = (0.85, 0.33, 0.10)  # orange, contrasts with grey and white
BACKGROUND = (1.0, 1.0, 1.0)
VIEW_FRONT = (0.35, 0.3, 0.9)  # camera looks from here (slightly right and above) towards the centre
VIEW_UP = (0.0, 1.0, 0.0)
VIEW_ZOOM = 0.7


def check_render_available() -> None:
    """Raise InputError when :func:`render_png` cannot work here (no DISPLAY and no Xvfb).

    Cheap; call it before long computations whose result will be rendered.
    """
    if not os.environ.get("DISPLAY") and shutil.which("Xvfb") is None:
        raise InputError(f"cannot render: no X display (DISPLAY unset) and no Xvfb; {_INSTALL_HINT}")


@contextlib.contextmanager
def _x_display(width: int, height: int) -> Iterator[None]:
    """Make sure an X display is available: the user's, or a private Xvfb for this block."""
    if os.environ.get("DISPLAY"):
        yield
        return
    check_render_available()
    read_fd, write_fd = os.pipe()
    screen = f"{max(1024, width)}x{max(768, height)}x24"
    try:
        # -displayfd: Xvfb picks a free display number and writes it to the pipe when ready
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,), start_new_session=True,
        )
    except OSError as e:
        os.close(read_fd)
        os.close(write_fd)
        raise InputError(f"cannot render: could not start Xvfb ({e.strerror or e}); {_INSTALL_HINT}") from None
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + 10.0
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], 0.1)
            if ready:
                chunk = os.read(read_fd, 32)
                if not chunk:  # Xvfb exited
                    break
                number += chunk
        if not number.strip().isdigit():
            raise InputError(f"cannot render: Xvfb did not start; {_INSTALL_HINT}")
        display = f":{number.strip().decode()}"
        logger.debug("started Xvfb on %s (pid %d)", display, proc.pid)
        os.environ["DISPLAY"] = display
        try:
            yield
        finally:
            os.environ.pop("DISPLAY", None)
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def render_png(path: str | os.PathLike, geometries, *, width: int = 800, height: int = 600) -> None:
    """Render meshes and/or point clouds to a PNG file (atomically), headless.

    Meshes are shaded light grey (vertex normals recomputed), point clouds orange, on white; the
    camera looks at the centre of all geometries from the front, slightly right and above
    (y is up).  The inputs are not modified.

    Parameters
    ----------
    path : str or PathLike
        Output ``.png``.
    geometries : open3d.geometry.TriangleMesh | open3d.geometry.PointCloud, or a sequence of them
        Meshes with (V, 3) vertices / (F, 3) triangles, clouds with (N, 3) points.
    width, height : int
        Image size in pixels.

    Raises
    ------
    InputError
        Bad path or geometry, rendering impossible (no display/Xvfb/OpenGL), or a blank picture.
    """
    import open3d as o3d

    path = check_writable(path, extensions=(".png",))
    if isinstance(geometries, (o3d.geometry.TriangleMesh, o3d.geometry.PointCloud)):
        geometries = [geometries]
    geometries = list(geometries) if isinstance(geometries, Sequence) else [geometries]
    if not geometries:
        raise InputError(f"{path}: nothing to render")
    if not (16 <= int(width) <= 8192 and 16 <= int(height) <= 8192):
        raise InputError(f"{path}: image size must be 16..8192 pixels, got {width}x{height}")
    shown = []
    for g in geometries:
        if isinstance(g, o3d.geometry.TriangleMesh):
            if len(g.vertices) == 0:
                raise InputError(f"{path}: cannot render an empty mesh")
            g = o3d.geometry.TriangleMesh(g)
            g.compute_vertex_normals()
            g.paint_uniform_color(MESH_COLOR)
        elif isinstance(g, o3d.geometry.PointCloud):
            if len(g.points) == 0:
                raise InputError(f"{path}: cannot render an empty point cloud")
            g = o3d.geometry.PointCloud(g)
            g.paint_uniform_color(POINT_COLOR)
        else:
            raise InputError(f"{path}: cannot render a {type(g).__name__}; expected open3d TriangleMesh or PointCloud")
        shown.append(g)

    with atomic_path(path) as tmp, _x_display(width, height):
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Warning):
            with _native_output_captured() as lines:
                image = _draw(shown, tmp, int(width), int(height))
        if image is None:
            glfw = next((ln for ln in lines if "GLFW" in ln), None)
            detail = f" ({glfw})" if glfw else ""
            raise InputError(f"cannot render: no OpenGL window could be opened{detail}; {_INSTALL_HINT}")
        if (image == image[:1, :1]).all():
            raise InputError(f"{path}: rendered picture is blank (one colour); nothing visible to draw")
    logger.debug("rendered %d geometries to %s", len(shown), path)


def _draw(geometries: list, tmp: str, width: int, height: int) -> np.ndarray | None:
    """Draw into a hidden window, save to ``tmp``; return the saved image (H, W, C) or None."""
    import open3d as o3d

    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name="geomprior", width=width, height=height, visible=False):
        return None
    try:
        for g in geometries:
            vis.add_geometry(g)
        opt = vis.get_render_option()
        opt.background_color = np.asarray(BACKGROUND)
        opt.point_size = max(2.0, width / 400)
        opt.mesh_show_back_face = True
        box = geometries[0].get_axis_aligned_bounding_box()
        for g in geometries[1:]:
            box += g.get_axis_aligned_bounding_box()
        ctl = vis.get_view_control()
        ctl.set_lookat(box.get_center())
        ctl.set_front(np.asarray(VIEW_FRONT) / np.linalg.norm(VIEW_FRONT))
        ctl.set_up(np.asarray(VIEW_UP))
        ctl.set_zoom(VIEW_ZOOM)
        vis.poll_events()
        vis.update_renderer()
        vis.capture_screen_image(tmp, do_render=True)
    finally:
        vis.destroy_window()
    if not Path(tmp).exists():
        return None
    return np.asarray(o3d.io.read_image(tmp))
