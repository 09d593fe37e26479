"""Pictures of meshes and point clouds: headless PNGs (:func:`render_png`) and open3d's window (:func:`show`).

Both use open3d's legacy ``Visualizer`` (fast; the Filament offscreen renderer is too slow on CPU), with the
same colours and starting camera.  :func:`render_png` draws into a hidden window, which needs an X display:
when ``DISPLAY`` is not set, a private ``Xvfb`` server is started for the call and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from geomprior.errors import InputError
from geomprior.io import atomic_path, check_writable
from geomprior.native import _native_output_captured

logger = logging.getLogger(__name__)

_INSTALL_HINT = "install them with `apt-get install xvfb libgl1`"
MESH_COLOR = (0.75, 0.75, 0.75)  # light grey
POINT_COLOR = (0.85, 0.33, 0.10)  # orange, contrasts with grey and white
BACKGROUND = (1.0, 1.0, 1.0)
VIEW_FRONT = (0.35, 0.3, 0.9)  # camera looks from here (slightly right and above) towards the centre
VIEW_UP = (0.0, 1.0, 0.0)
VIEW_ZOOM = 0.7
NO_LABEL_COLOR = (0.25, 0.25, 0.25)  # dark grey: points without a label (e.g. in no patch)


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


def has_display() -> bool:
    """Whether a window can be opened here: macOS/Windows, or an X/Wayland display on Linux."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def label_colors(labels: np.ndarray) -> np.ndarray:
    """(N,) int labels -> (N, 3) float RGB in [0, 1]: a fixed categorical palette, NO_LABEL_COLOR for -1.

    The palette is matplotlib's tab20 without its greys, dark hues first, then light ones, so consecutive
    labels (e.g. neighbouring patches) always differ in hue; it repeats every 18 labels.
    """
    from matplotlib import colormaps

    labels = np.asarray(labels).reshape(-1)
    tab20 = np.asarray(colormaps["tab20"].colors)  # (dark, light) pairs of 10 hues; the 8th hue is grey
    dark_then_light = np.concatenate([tab20[0::2], tab20[1::2]])
    palette = dark_then_light[[i for i in range(20) if i % 10 != 7]]
    colors = palette[np.mod(labels, len(palette))]
    colors[labels < 0] = NO_LABEL_COLOR
    return colors


def labelled_cloud(points: np.ndarray, labels: np.ndarray):
    """An open3d point cloud of points (N, 3) coloured by integer labels (N,) (:func:`label_colors`)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(label_colors(labels))
    return cloud


def _prepared(geometries, where: str, keep_point_colors: bool) -> list:
    """Copies of the geometries, coloured for display (meshes grey and shaded, clouds orange or their own)."""
    import open3d as o3d

    if isinstance(geometries, (o3d.geometry.TriangleMesh, o3d.geometry.PointCloud)):
        geometries = [geometries]
    geometries = list(geometries) if isinstance(geometries, Sequence) else [geometries]
    if not geometries:
        raise InputError(f"{where}: nothing to render")
    shown = []
    for g in geometries:
        if isinstance(g, o3d.geometry.TriangleMesh):
            if len(g.vertices) == 0:
                raise InputError(f"{where}: cannot render an empty mesh")
            g = o3d.geometry.TriangleMesh(g)
            g.compute_vertex_normals()
            if not (keep_point_colors and g.has_vertex_colors()):
                g.paint_uniform_color(MESH_COLOR)
        elif isinstance(g, o3d.geometry.PointCloud):
            if len(g.points) == 0:
                raise InputError(f"{where}: cannot render an empty point cloud")
            g = o3d.geometry.PointCloud(g)
            if not (keep_point_colors and g.has_colors()):
                g.paint_uniform_color(POINT_COLOR)
        else:
            raise InputError(f"{where}: cannot render a {type(g).__name__}; expected open3d TriangleMesh or PointCloud")
        shown.append(g)
    return shown


def render_png(path: str | os.PathLike, geometries, *, width: int = 800, height: int = 600,
               keep_point_colors: bool = False, show_normals: bool = False, zoom: float = VIEW_ZOOM,
               front=VIEW_FRONT, up=VIEW_UP) -> None:
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
    keep_point_colors : bool
        Point clouds that have colours (N, 3) keep them (e.g. :func:`labelled_cloud`) instead of orange, and meshes
        with vertex colours (a reconstruction of a coloured scan) keep theirs instead of grey.
    show_normals : bool
        Draw the normals of point clouds that have them, as short lines.
    zoom : float
        open3d's view zoom: smaller is closer (the default frames a single object with a margin).
    front, up : (3,) float
        Where the camera looks from (towards the centre) and the screen's up direction.

    Raises
    ------
    InputError
        Bad path or geometry, rendering impossible (no display/Xvfb/OpenGL), or a blank picture.
    """
    import open3d as o3d

    path = check_writable(path, extensions=(".png",))
    if not (16 <= int(width) <= 8192 and 16 <= int(height) <= 8192):
        raise InputError(f"{path}: image size must be 16..8192 pixels, got {width}x{height}")
    shown = _prepared(geometries, str(path), keep_point_colors)

    with atomic_path(path) as tmp, _x_display(width, height):
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Warning):
            with _native_output_captured() as lines:
                image = _draw(shown, tmp, int(width), int(height), show_normals, zoom, front, up)
        if image is None:
            raise InputError(f"cannot render: no OpenGL window could be opened{_glfw_detail(lines)}; {_INSTALL_HINT}")
        if (image == image[:1, :1]).all():
            raise InputError(f"{path}: rendered picture is blank (one colour); nothing visible to draw")
    logger.debug("rendered %d geometries to %s", len(shown), path)


def show(geometries, *, width: int = 1024, height: int = 768, keep_point_colors: bool = False,
         show_normals: bool = False, title: str = "geomprior") -> None:
    """Open open3d's interactive (legacy) viewer on meshes and/or point clouds; returns when it is closed.

    Colours and the starting camera are those of :func:`render_png`.  In the window: drag to rotate,
    scroll to zoom, N toggles point-cloud normals, +/- change the point size, H prints every key, Q closes.

    Raises
    ------
    InputError
        Bad geometry, or no window could be opened (no display / OpenGL).
    """
    import open3d as o3d

    shown = _prepared(geometries, title, keep_point_colors)
    vis = o3d.visualization.Visualizer()
    # at Info level open3d (>= 0.19) says when it found no display and fell back to an invisible offscreen
    # context, in which the window would wait for a close that can never come
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Info), _native_output_captured() as lines:
        opened = vis.create_window(window_name=title, width=int(width), height=int(height), visible=True)
    offscreen = any("no display detected" in ln.lower() or "offscreen" in ln.lower() for ln in lines)
    if not opened or offscreen:
        if opened:
            vis.destroy_window()
        where = os.environ.get("DISPLAY")
        detail = _glfw_detail(lines) or (" (no display detected)" if offscreen else "")
        raise InputError(f"cannot open a window{f' on display {where}' if where else ''}{detail}")
    try:
        _set_up(vis, shown, width, show_normals, VIEW_ZOOM, VIEW_FRONT, VIEW_UP)
        vis.run()
    finally:
        vis.destroy_window()


def _glfw_detail(lines: list[str]) -> str:
    glfw = next((ln for ln in lines if "GLFW" in ln), None)
    return f" ({glfw})" if glfw else ""


def _set_up(vis, geometries: list, width: int, show_normals: bool, zoom: float, front, up) -> None:
    """Add the geometries to an open Visualizer and apply the fixed look and camera."""
    for g in geometries:
        vis.add_geometry(g)
    opt = vis.get_render_option()
    opt.background_color = np.asarray(BACKGROUND)
    opt.point_size = max(2.0, width / 400)
    opt.mesh_show_back_face = True
    opt.point_show_normal = bool(show_normals)
    box = geometries[0].get_axis_aligned_bounding_box()
    for g in geometries[1:]:
        box += g.get_axis_aligned_bounding_box()
    ctl = vis.get_view_control()
    ctl.set_lookat(box.get_center())
    ctl.set_front(np.asarray(front, dtype=float) / np.linalg.norm(front))
    ctl.set_up(np.asarray(up, dtype=float))
    ctl.set_zoom(zoom)


def _draw(geometries: list, tmp: str, width: int, height: int, show_normals: bool, zoom: float, front,
          up) -> np.ndarray | None:
    """Draw into a hidden window, save to ``tmp``; return the saved image (H, W, C) or None."""
    import open3d as o3d

    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name="geomprior", width=width, height=height, visible=False):
        return None
    try:
        _set_up(vis, geometries, width, show_normals, zoom, front, up)
        vis.poll_events()
        vis.update_renderer()
        vis.capture_screen_image(tmp, do_render=True)
    finally:
        vis.destroy_window()
    if not Path(tmp).exists():
        return None
    return np.asarray(o3d.io.read_image(tmp))
