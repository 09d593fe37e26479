"""Writing meshes, point clouds and JSON files atomically: a temporary file in the destination folder (same
extension) is renamed into place, so a failure never leaves a partial output behind. :mod:`geomprior.io` re-exports
everything here."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from geomprior.errors import InputError
from geomprior.native import _failure_reason, _o3d_quiet

logger = logging.getLogger("geomprior.io")

MESH_WRITE_EXTENSIONS = (".ply", ".obj", ".off")
"""File types :func:`write_mesh` writes."""
POINT_WRITE_EXTENSIONS = (".ply",)
"""File types :func:`write_points` writes."""

def check_writable(path: str | os.PathLike, *, extensions: tuple[str, ...] | None = None) -> Path:
    """Check, without writing it, that ``path`` can be written; return it as a Path.

    Checks the extension (if ``extensions`` is given, lower-case with dot), that the folder exists
    and accepts a new file, and that ``path`` is not a folder.  Use it before long computations.

    Raises
    ------
    InputError
        Naming ``path`` and what is wrong.
    """
    path = Path(path)
    if extensions is not None and path.suffix.lower() not in extensions:
        raise InputError(
            f"{path}: cannot write file type {path.suffix or '(no extension)'!r}; "
            f"valid: {', '.join(extensions)}"
        )
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{path}: cannot write: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: cannot write: it is a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Write ``path`` atomically: yield a temporary path to write to instead.

    The temporary file is a hidden file in the same folder with the same extension (so writers that
    look at the extension behave).  When the block succeeds it is renamed onto ``path``
    (``os.replace``); when the block raises (or the temporary file was never created) it is
    removed and ``path`` is left as it was.  Blocks can be nested or stacked
    (``contextlib.ExitStack``) to publish several outputs only when all of them were written.

    Yields
    ------
    str
        The temporary path (not yet created).

    Raises
    ------
    InputError
        The folder does not exist, ``path`` is a folder, or the rename failed.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{path}: cannot write: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: cannot write: it is a folder")
    tmp = folder / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
    try:
        yield str(tmp)
        if not tmp.exists():
            raise InputError(f"{path}: cannot write: nothing was written")
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise InputError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_mesh(path: str | os.PathLike, mesh) -> None:
    """Write a triangle mesh atomically.

    Parameters
    ----------
    path : str or PathLike
        ``.ply`` (binary), ``.obj`` or ``.off``.
    mesh : open3d.geometry.TriangleMesh
        Vertices (V, 3) with V >= 1, triangles (F, 3); vertex normals/colours are written when the
        format allows; textures and uv coordinates are not written.

    Raises
    ------
    InputError
        Unknown extension, missing/unwritable folder, empty mesh, or open3d failed to write.
    """
    import open3d as o3d

    path = check_writable(path, extensions=MESH_WRITE_EXTENSIONS)
    if not isinstance(mesh, o3d.geometry.TriangleMesh):
        raise InputError(f"{path}: expected an open3d.geometry.TriangleMesh, got {type(mesh).__name__}")
    if len(mesh.vertices) == 0:
        raise InputError(f"{path}: cannot write an empty mesh (no vertices)")
    with atomic_path(path) as tmp:
        with _o3d_quiet() as lines:
            # no uvs: with textures open3d would write side files (.mtl, .png) named after tmp
            ok = o3d.io.write_triangle_mesh(tmp, mesh, write_ascii=False, compressed=False,
                                            write_triangle_uvs=False, print_progress=False)
        if not ok:
            reason = _failure_reason(lines) or "open3d could not write it"
            raise InputError(f"{path}: cannot write: {reason}")
    logger.debug("wrote mesh (%d vertices, %d triangles) to %s",
                 len(mesh.vertices), len(mesh.triangles), path)


def write_points(path: str | os.PathLike, points: np.ndarray, normals: np.ndarray | None = None) -> None:
    """Write a point cloud (optionally with normals) atomically as a binary PLY.

    Parameters
    ----------
    path : str or PathLike
        ``.ply``.
    points : (N, 3) float, finite, N >= 1
    normals : (N, 3) float or None

    Raises
    ------
    InputError
        Bad shapes, non-finite points, unknown extension, missing/unwritable folder.
    """
    import open3d as o3d

    path = check_writable(path, extensions=POINT_WRITE_EXTENSIONS)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InputError(f"{path}: points must be (N, 3) with N >= 1, got {points.shape}")
    if not np.isfinite(points).all():
        raise InputError(f"{path}: points contain NaN or infinite coordinates")
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
        if normals.shape != points.shape:
            raise InputError(f"{path}: normals must be {points.shape}, got {normals.shape}")
        pc.normals = o3d.utility.Vector3dVector(normals)
    with atomic_path(path) as tmp:
        with _o3d_quiet() as lines:
            ok = o3d.io.write_point_cloud(tmp, pc, write_ascii=False, compressed=False,
                                          print_progress=False)
        if not ok:
            reason = _failure_reason(lines) or "open3d could not write it"
            raise InputError(f"{path}: cannot write: {reason}")
    logger.debug("wrote %d points to %s", len(points), path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # torch tensors
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (numpy scalars/arrays and paths are converted).

    Raises
    ------
    InputError
        Missing/unwritable folder.
    TypeError
        ``obj`` holds something that cannot be serialised (nothing is written).
    """
    path = check_writable(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=_json_default)
            f.write("\n")
