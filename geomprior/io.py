"""Reading and writing point clouds, meshes and JSON files.

Readers check what they get (missing, empty, unparseable files, NaN coordinates) and raise
:class:`geomprior.errors.InputError` with a one-line message.  Writers are atomic: they write a
temporary file in the destination folder (same extension) and rename it into place, so a failure
never leaves a partial output behind.  Input files are never modified.

open3d is imported lazily, so ``import geomprior.io`` stays fast.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from geomprior.errors import InputError
from geomprior.native import _failure_reason, _o3d_quiet
from geomprior.writers import (  # noqa: F401 (re-exported: geomprior.io is where users read and write files)
    MESH_WRITE_EXTENSIONS,
    POINT_WRITE_EXTENSIONS,
    atomic_path,
    check_writable,
    write_json,
    write_mesh,
    write_points,
)

logger = logging.getLogger(__name__)

POINT_EXTENSIONS = (".ply", ".obj", ".off", ".xyz", ".pts", ".las", ".laz")
"""File types :func:`read_points` understands (.las/.laz with the optional ``laspy``: ``geomprior[lidar]``)."""
LIDAR_HINT = "pip install 'geomprior[lidar]'"
MESH_EXTENSIONS = (".ply", ".obj", ".off", ".stl")
"""File types :func:`read_mesh` understands."""


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def check_file(path: str | os.PathLike) -> Path:
    """InputError unless ``path`` is an existing, readable, non-empty file; returns it as a Path."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if size == 0:
        raise InputError(f"{path}: file is empty")
    return path


def _check_readable(path: str | os.PathLike, valid: tuple[str, ...], what: str) -> Path:
    path = Path(path)
    if _suffix(path) not in valid:
        raise InputError(
            f"{path}: unknown {what} file type {path.suffix or '(no extension)'!r}; "
            f"valid: {', '.join(valid)}"
        )
    return check_file(path)


def _head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _check_magic(path: Path) -> None:
    """Cheap format sniffing before handing the file to open3d."""
    head = _head(path)
    ext = _suffix(path)
    if ext == ".ply" and not (head.startswith(b"ply\n") or head.startswith(b"ply\r")):
        raise InputError(f"{path}: not a PLY file (it does not start with 'ply')")
    if ext == ".off":
        tokens = head.split(b"\n", 1)[0].split()
        if not tokens or not tokens[0].endswith(b"OFF") or len(tokens[0]) > 8:
            raise InputError(f"{path}: not an OFF file (first line is not OFF/NOFF/COFF)")
    if ext in (".obj", ".off") and b"\x00" in head:
        raise InputError(f"{path}: not a text {ext[1:].upper()} file (binary bytes found)")


def _check_finite(path: Path, points: np.ndarray) -> None:
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise InputError(
            f"{path}: {int(bad.sum())} of {len(points)} points have NaN or infinite coordinates"
        )


def _clean_normals(path: Path, normals: np.ndarray | None, n: int) -> np.ndarray | None:
    """Unit normals, or None when the file has none or they are unusable (zero / non-finite)."""
    if normals is None or len(normals) == 0:
        return None
    normals = np.asarray(normals, dtype=np.float64)
    if normals.shape != (n, 3):
        logger.warning("%s: ignoring normals of shape %s (expected (%d, 3))", path, normals.shape, n)
        return None
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-12)
    if bad.any():
        logger.warning(
            "%s: %d of %d normals are zero or not finite; treating the file as having no normals",
            path, int(bad.sum()), n,
        )
        return None
    return normals / length[:, None]


# --------------------------------------------------------------------------------------------
# reading


def _read_xyz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """x y z [nx ny nz] per line, whitespace separated; '#' comments; .pts may start with a count."""
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise InputError(f"{path}: not a text point file (binary bytes found)")
    text = raw.decode("utf-8", errors="replace")
    data_lines = [
        (i, ln.strip()) for i, ln in enumerate(text.splitlines())
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if _suffix(path) == ".pts" and data_lines and re.fullmatch(r"\d+", data_lines[0][1]):
        data_lines = data_lines[1:]  # Leica-style point count header
    if not data_lines:
        raise InputError(f"{path}: contains no points")
    lineno, first = data_lines[0]
    tokens = first.split()
    if len(tokens) not in (3, 6):
        raise InputError(
            f"{path}: line {lineno + 1} has {len(tokens)} value(s); expected 3 (x y z) "
            f"or 6 (x y z nx ny nz)"
        )
    try:
        [float(t) for t in tokens]
    except ValueError:
        raise InputError(f"{path}: line {lineno + 1} is not numbers: {first[:40]!r}") from None
    with_normals = len(tokens) == 6

    import open3d as o3d

    with _o3d_quiet():
        pc = o3d.io.read_point_cloud(str(path), format="xyzn" if with_normals else "xyz")
    points = np.asarray(pc.points, dtype=np.float64)
    normals = np.asarray(pc.normals, dtype=np.float64) if with_normals else None
    if len(points) != len(data_lines):
        # open3d silently skips (xyz) or stops at (xyzn) lines it cannot parse, and its xyzn
        # reader stops at comments: parse strictly here and say which line is wrong, if any.
        rows = []
        for i, ln in data_lines:
            values = ln.split()
            if len(values) != len(tokens):
                raise InputError(
                    f"{path}: line {i + 1} has {len(values)} value(s); expected {len(tokens)} "
                    f"like line {lineno + 1}"
                )
            try:
                rows.append([float(v) for v in values])
            except ValueError:
                raise InputError(f"{path}: line {i + 1} is not numbers: {ln[:40]!r}") from None
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, len(tokens))
        points = arr[:, :3]
        normals = arr[:, 3:6] if with_normals else None
    return points, normals


def _read_mesh_o3d(path: Path):
    import open3d as o3d

    with _o3d_quiet() as lines:
        mesh = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False)
    return mesh, _failure_reason(lines)


def read_points(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point cloud (or the vertices of a mesh) from a file: ``read_scan`` without the colours.

    Returns
    -------
    points : (N, 3) float64
    normals : (N, 3) float64 unit vectors, or None
        None when the file has no normals, or some of them have zero length / are not finite.
    """
    points, normals, _ = read_scan(path)
    return points, normals


def read_scan(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read a scan: points, and the normals and colours it carries.

    Parameters
    ----------
    path : str or PathLike
        ``.ply`` (point cloud or mesh, with or without vertex normals and colours; other vertex properties are
        ignored), ``.obj`` / ``.off`` (mesh or vertex-only file), ``.xyz`` / ``.pts`` (``x y z`` or
        ``x y z nx ny nz`` per line), ``.las`` / ``.laz`` (needs ``laspy``: ``pip install 'geomprior[lidar]'``).
        Coordinates are read as float64 (large offsets such as UTM keep their precision).

    Returns
    -------
    points : (N, 3) float64
    normals : (N, 3) float64 unit vectors, or None
        None when the file has no normals, or some of them have zero length / are not finite.
    colors : (N, 3) float64 in [0, 1], or None

    Raises
    ------
    InputError
        Missing, empty or unparseable file, unknown extension, no points, NaN/inf coordinates, a LAS file without
        laspy installed.
    """
    path = _check_readable(path, POINT_EXTENSIONS, "point")
    ext = _suffix(path)
    colors = None
    if ext in (".xyz", ".pts"):
        points, normals = _read_xyz(path)
    elif ext in (".las", ".laz"):
        points, normals, colors = _read_las(path)
    elif ext == ".ply":
        _check_magic(path)
        import open3d as o3d

        with _o3d_quiet() as lines:
            pc = o3d.io.read_point_cloud(str(path), format="ply")
        reason = _failure_reason(lines)
        if reason and "number of vertex <= 0" in reason:
            raise InputError(f"{path}: contains no points")
        if reason:
            raise InputError(f"{path}: cannot read PLY: {reason}")
        points = np.asarray(pc.points, dtype=np.float64)
        normals = np.asarray(pc.normals, dtype=np.float64) if pc.has_normals() else None
        if pc.has_colors():
            colors = _ply_colors(path, np.asarray(pc.colors, dtype=np.float64))
    else:  # .obj / .off
        _check_magic(path)
        mesh, reason = _read_mesh_o3d(path)
        points = np.asarray(mesh.vertices, dtype=np.float64)
        normals = (
            np.asarray(mesh.vertex_normals, dtype=np.float64) if mesh.has_vertex_normals() else None
        )
        if len(points) == 0:
            # open3d refuses vertex-only OBJ/OFF files; trimesh reads them as point clouds.
            points, normals = _read_vertices_trimesh(path, reason)
        elif reason and "no triangles" not in reason:
            raise InputError(f"{path}: cannot read {ext[1:].upper()}: {reason}")
    if len(points) == 0:
        raise InputError(f"{path}: contains no points")
    points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    _check_finite(path, points)
    normals = _clean_normals(path, normals, len(points))
    if colors is not None and (colors.shape != points.shape or not np.isfinite(colors).all()):
        logger.warning("%s: ignoring colours that do not match the points", path)
        colors = None
    logger.debug("read %d points%s%s from %s", len(points), " with normals" if normals is not None else "",
                 " with colours" if colors is not None else "", path)
    return points, normals, colors


def _ply_colors(path: Path, from_open3d: np.ndarray | None) -> np.ndarray:
    """Vertex colours of a PLY in [0, 1]. open3d divides every colour by 255; a binary PLY's colour properties are
    read here with their own type instead (uchar / 255, ushort / 65535, float as it is when in [0, 1])."""
    layout = _ply_vertex_layout(path)
    if layout is None or not all(c in layout[2].names for c in ("red", "green", "blue")):
        return np.clip(from_open3d, 0, 1)
    offset, count, dtype = layout
    records = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
    rgb = np.stack([np.asarray(records[c], dtype=np.float64) for c in ("red", "green", "blue")], 1)
    kind = dtype["red"]
    if kind.kind in "ui":
        rgb /= float(np.iinfo(kind).max)
    elif rgb.max(initial=0) > 1:
        rgb /= 255.0
    return np.clip(rgb, 0, 1)


def _read_las(path: Path) -> tuple[np.ndarray, None, np.ndarray | None]:
    """Points (scaled, float64) and colours of a LAS/LAZ file, through laspy."""
    try:
        import laspy
    except ImportError:
        raise InputError(f"{path}: reading LAS/LAZ files needs laspy: {LIDAR_HINT}") from None
    try:
        las = laspy.read(str(path))
    except Exception as e:  # laspy raises its own errors and OSError/ValueError on broken files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot read {_suffix(path)[1:].upper()}: {reason}") from None
    points = np.stack([np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64),
                       np.asarray(las.z, dtype=np.float64)], 1)
    colors = None
    if {"red", "green", "blue"} <= set(las.point_format.dimension_names):
        rgb = np.stack([np.asarray(las[c], dtype=np.float64) for c in ("red", "green", "blue")], 1)
        if rgb.max(initial=0) > 0:  # all zero: the format has colour fields, the file no colours
            colors = rgb / (255.0 if rgb.max() <= 255 else 65535.0)
    return points, None, colors


_PLY_SCALARS = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
_CHUNK = 1 << 20  # rows per chunk when scanning a memory-mapped file


def _ply_vertex_layout(path: Path):
    """(byte offset of the data, vertex count, record dtype) of a binary PLY whose first element is a vertex
    element of fixed-size properties; None for any other PLY (ASCII, lists in vertices, vertex not first)."""
    with open(path, "rb") as f:
        header = f.read(1 << 16)
    end = header.find(b"end_header")
    if end < 0:
        return None
    stop = header.find(b"\n", end)
    if stop < 0:
        return None
    lines = header[:end].decode("ascii", errors="replace").splitlines()
    order = None
    element = None
    fields: list[tuple[str, str]] = []
    count = 0
    for line in lines[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            order = {"binary_little_endian": "<", "binary_big_endian": ">"}.get(tok[1] if len(tok) > 1 else "")
            if order is None:
                return None
        elif tok[0] == "element":
            if element is not None:
                break  # only the first element matters
            if len(tok) != 3 or tok[1] != "vertex":
                return None
            element, count = tok[1], int(tok[2])
        elif tok[0] == "property" and element == "vertex":
            if len(tok) != 3 or tok[1] not in _PLY_SCALARS:
                return None  # a list property: records are not of one size
            fields.append((tok[2], order + _PLY_SCALARS[tok[1]]))
    if order is None or element is None:
        return None
    return stop + 1, count, np.dtype(fields)


def _xyz_view(mm: np.ndarray, dtype: np.dtype, names: tuple[str, str, str]) -> np.ndarray | None:
    """(N, 3) strided view of three consecutive float fields of the records in ``mm``, or None."""
    if not all(n in dtype.names for n in names):
        return None
    (t0, o0), (t1, o1), (t2, o2) = (dtype.fields[n][:2] for n in names)
    if not (t0 == t1 == t2 and t0.kind == "f" and o1 == o0 + t0.itemsize and o2 == o1 + t0.itemsize):
        return None
    return np.ndarray((len(mm) // dtype.itemsize, 3), dtype=t0, buffer=mm, offset=o0,
                      strides=(dtype.itemsize, t0.itemsize))


def map_points(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Points (and normals and colours) of a file, without loading the whole file where its format allows it.

    A binary PLY whose first element is ``vertex`` with fixed-size properties, x y z (and nx ny nz) consecutive
    and of one float type (what geomprior, open3d and most scanner software write), is memory-mapped: the
    arrays returned are read-only (N, 3) views of the file (float32 or float64), and slicing rows reads only
    those rows. The file is checked in chunks of a million rows (NaN coordinates: error; zero or non-finite
    normals: treated as none, as ``read_scan`` does). Any other file: ``read_scan`` (in memory, float64).

    Returns
    -------
    points : (N, 3) float array (a memory map view, or in memory)
    normals : (N, 3) float array or None (unit length within float rounding when mapped)
    colors : (N, 3) float64 in [0, 1] or None (in memory)
    """
    path = _check_readable(path, POINT_EXTENSIONS, "point")
    layout = _ply_vertex_layout(path) if _suffix(path) == ".ply" else None
    if layout is None:
        return read_scan(path)
    offset, count, dtype = layout
    if count <= 0:
        raise InputError(f"{path}: contains no points")
    need = offset + count * dtype.itemsize
    if path.stat().st_size < need:
        raise InputError(f"{path}: cannot read PLY: file is truncated ({path.stat().st_size} of {need} bytes)")
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(count * dtype.itemsize,))
    points = _xyz_view(mm, dtype, ("x", "y", "z"))
    if points is None:
        return read_scan(path)
    normals = _xyz_view(mm, dtype, ("nx", "ny", "nz"))
    bad_points = 0
    bad_normals = 0
    for start in range(0, count, _CHUNK):
        bad_points += int((~np.isfinite(points[start:start + _CHUNK]).all(1)).sum())
        if normals is not None:
            length = np.linalg.norm(np.asarray(normals[start:start + _CHUNK], dtype=np.float64), axis=1)
            bad_normals += int((~np.isfinite(length) | (length < 1e-12)).sum())
    if bad_points:
        raise InputError(f"{path}: {bad_points} of {count} points have NaN or infinite coordinates")
    if bad_normals:
        logger.warning("%s: %d of %d normals are zero or not finite; treating the file as having no normals",
                       path, bad_normals, count)
        normals = None
    colors = _ply_colors(path, None) if {"red", "green", "blue"} <= set(dtype.names) else None
    logger.debug("mapped %d points%s from %s", count, " with normals" if normals is not None else "", path)
    return points, normals, colors


def _read_vertices_trimesh(path: Path, reason: str | None) -> tuple[np.ndarray, None]:
    import trimesh

    try:
        loaded = trimesh.load(str(path), process=False)
        vertices = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float64)
    except Exception as e:  # trimesh raises many types on garbage
        logger.debug("trimesh could not read %s: %s", path, e)
        vertices = np.empty((0, 3))
    if len(vertices) == 0:
        detail = f": {reason}" if reason else ""
        raise InputError(f"{path}: no points could be read{detail}")
    return vertices.reshape(-1, 3), None


def read_mesh(path: str | os.PathLike):
    """Read a triangle mesh.

    Parameters
    ----------
    path : str or PathLike
        ``.ply``, ``.obj``, ``.off`` or ``.stl``.

    Returns
    -------
    open3d.geometry.TriangleMesh
        With at least one triangle; vertices (V, 3), triangles (F, 3).  Duplicated STL vertices are
        merged.

    Raises
    ------
    InputError
        Missing, empty or unparseable file, unknown extension, no triangles, NaN/inf vertices.
    """
    path = _check_readable(path, MESH_EXTENSIONS, "mesh")
    mesh, reason = _read_mesh_unchecked(path)
    return _checked_mesh(path, mesh, reason)


def _read_mesh_unchecked(path: Path):
    if _suffix(path) != ".stl":
        _check_magic(path)
    return _read_mesh_o3d(path)


def _checked_mesh(path: Path, mesh, reason: str | None):
    kind = _suffix(path)[1:].upper()
    if reason and "no triangles" not in reason:
        raise InputError(f"{path}: cannot read {kind}: {reason}")
    if len(mesh.vertices) == 0:
        raise InputError(f"{path}: no mesh could be read (not a valid {kind} file?)")
    if len(mesh.triangles) == 0:
        raise InputError(f"{path}: contains no triangles (a point cloud? use read_points)")
    _check_finite(path, np.asarray(mesh.vertices))
    if _suffix(path) == ".stl":
        mesh.remove_duplicated_vertices()
    logger.debug("read mesh with %d vertices, %d triangles from %s",
                 len(mesh.vertices), len(mesh.triangles), path)
    return mesh


def read_geometry(path: str | os.PathLike):
    """Read a file as a mesh when it has triangles, as a point cloud otherwise.

    Parameters
    ----------
    path : str or PathLike
        ``.ply``, ``.obj``, ``.off`` (mesh or points), ``.stl`` (mesh), ``.xyz`` / ``.pts`` / ``.las`` / ``.laz``
        (points).

    Returns
    -------
    open3d.geometry.TriangleMesh or tuple[(N, 3) float64, (N, 3) float64 or None, (N, 3) float64 or None]
        The mesh (as :func:`read_mesh` returns it), or points, normals and colours (as :func:`read_scan`).

    Raises
    ------
    InputError
        As :func:`read_mesh` / :func:`read_points`.
    """
    path = _check_readable(path, tuple(dict.fromkeys(MESH_EXTENSIONS + POINT_EXTENSIONS)), "mesh or point")
    if _suffix(path) in (".xyz", ".pts", ".las", ".laz"):
        return read_scan(path)
    mesh, reason = _read_mesh_unchecked(path)
    if _suffix(path) != ".stl" and len(mesh.triangles) == 0:  # a point cloud, or unreadable: read_scan says
        return read_scan(path)
    return _checked_mesh(path, mesh, reason)
