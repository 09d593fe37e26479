"""geomprior.io: round trips for every format, one InputError per bad input, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from geomprior.errors import InputError  # noqa: E402
from geomprior.io import (  # noqa: E402
    atomic_path,
    check_writable,
    map_points,
    read_mesh,
    read_points,
    read_scan,
    write_json,
    write_mesh,
    write_points,
)
from geomprior.synthetic import sphere_mesh  # noqa: E402


@pytest.fixture(scope="module")
def sphere():
    return sphere_mesh(resolution=12)


def _random_points(n=50, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    nrm = rng.normal(size=(n, 3))
    return p, nrm / np.linalg.norm(nrm, axis=1, keepdims=True)


def _files(folder):
    return sorted(os.listdir(folder))


def _order(points):
    """A permutation sorting rows of (N, 3) points (OBJ readers may reorder vertices)."""
    r = np.round(np.asarray(points), 4)
    return np.lexsort(r.T[::-1])


# --------------------------------------------------------------------------------------------
# round trips


def test_points_ply_with_normals(tmp_path):
    p, n = _random_points()
    write_points(tmp_path / "a.ply", p, 3.0 * n)  # unnormalised on disk
    q, m = read_points(tmp_path / "a.ply")
    assert q.dtype == np.float64 and q.shape == (50, 3)
    np.testing.assert_allclose(q, p)
    np.testing.assert_allclose(m, n, atol=1e-12)


def test_points_ply_without_normals(tmp_path):
    p, _ = _random_points()
    write_points(str(tmp_path / "a.ply"), p)
    q, m = read_points(str(tmp_path / "a.ply"))
    np.testing.assert_allclose(q, p)
    assert m is None


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off"])
def test_mesh_round_trip(tmp_path, sphere, ext):
    path = tmp_path / f"s{ext}"
    write_mesh(path, sphere)
    back = read_mesh(path)
    assert len(back.triangles) == len(sphere.triangles)
    got, want = np.asarray(back.vertices), np.asarray(sphere.vertices)
    np.testing.assert_allclose(got[_order(got)], want[_order(want)], atol=1e-5)
    assert abs(back.get_surface_area() - sphere.get_surface_area()) < 1e-4
    assert _files(tmp_path) == [path.name]  # no temporary or side files (.mtl)


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off"])
def test_points_from_mesh_vertices(tmp_path, sphere, ext):
    path = tmp_path / f"s{ext}"
    write_mesh(path, sphere)  # sphere_mesh has vertex normals
    p, n = read_points(path)
    want, want_n = np.asarray(sphere.vertices), np.asarray(sphere.vertex_normals)
    assert n is not None
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    i, j = _order(p), _order(want)
    np.testing.assert_allclose(p[i], want[j], atol=1e-5)
    np.testing.assert_allclose(n[i], want_n[j], atol=1e-4)


def test_points_from_mesh_ply_without_normals(tmp_path, sphere):
    bare = o3d.geometry.TriangleMesh(sphere.vertices, sphere.triangles)
    write_mesh(tmp_path / "s.ply", bare)
    p, n = read_points(tmp_path / "s.ply")
    assert p.shape == (len(sphere.vertices), 3) and n is None


@pytest.mark.parametrize("ext", [".obj", ".off"])
def test_points_from_vertex_only_files(tmp_path, ext):
    path = tmp_path / f"v{ext}"
    if ext == ".obj":
        path.write_text("v 1 2 3\nv 4 5 6\nv 7 8 10\n")
    else:
        path.write_text("OFF\n3 0 0\n1 2 3\n4 5 6\n7 8 10\n")
    p, n = read_points(path)
    np.testing.assert_allclose(p, [[1, 2, 3], [4, 5, 6], [7, 8, 10]])
    assert n is None


@pytest.mark.parametrize("ext", [".xyz", ".pts"])
def test_xyz_without_normals(tmp_path, ext):
    p, _ = _random_points()
    path = tmp_path / f"a{ext}"
    np.savetxt(path, p, fmt="%.17g")
    q, m = read_points(path)
    np.testing.assert_allclose(q, p)
    assert m is None


@pytest.mark.parametrize("ext", [".xyz", ".pts"])
def test_xyz_with_normals(tmp_path, ext):
    p, n = _random_points()
    path = tmp_path / f"a{ext}"
    np.savetxt(path, np.hstack([p, 2.0 * n]), fmt="%.17g")
    q, m = read_points(path)
    np.testing.assert_allclose(q, p)
    np.testing.assert_allclose(m, n, atol=1e-12)


def test_xyz_comments_blank_lines_and_pts_count_header(tmp_path):
    (tmp_path / "c.xyz").write_text("# a comment\n1 2 3 0 0 1\n\n4 5 6 0 1 0\n")
    q, m = read_points(tmp_path / "c.xyz")
    np.testing.assert_allclose(q, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(m, [[0, 0, 1], [0, 1, 0]])
    (tmp_path / "c.pts").write_text("2\n1 2 3\n4 5 6\n")
    q, m = read_points(tmp_path / "c.pts")
    np.testing.assert_allclose(q, [[1, 2, 3], [4, 5, 6]])
    assert m is None


def test_zero_length_normals_mean_no_normals(tmp_path):
    (tmp_path / "z.xyz").write_text("1 2 3 0 0 0\n4 5 6 0 0 2\n")
    q, m = read_points(tmp_path / "z.xyz")
    assert q.shape == (2, 3) and m is None
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.eye(3)))
    pc.normals = o3d.utility.Vector3dVector(np.zeros((3, 3)))
    o3d.io.write_point_cloud(str(tmp_path / "z.ply"), pc)
    assert read_points(tmp_path / "z.ply")[1] is None


def test_read_mesh_stl(tmp_path, sphere):
    o3d.io.write_triangle_mesh(str(tmp_path / "s.stl"), sphere)
    back = read_mesh(tmp_path / "s.stl")
    assert len(back.triangles) == len(sphere.triangles)
    assert len(back.vertices) == len(sphere.vertices)  # STL's per-face vertices merged


def test_shared_shapes_if_present():
    shapes = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "shapes")
    if not os.path.isdir(shapes):
        pytest.skip("shared/data/shapes not beside the repository")
    p, n = read_points(os.path.join(shapes, "kitten.xyz"))
    assert p.shape[1] == 3 and n is not None and len(n) == len(p)
    assert len(read_mesh(os.path.join(shapes, "bunny00.off")).triangles) > 1000


def test_write_json_round_trip(tmp_path):
    write_json(tmp_path / "h.json", {"a": np.float32(1.5), "b": np.arange(3), "c": tmp_path / "x"})
    assert json.loads((tmp_path / "h.json").read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": str(tmp_path / "x")}


# --------------------------------------------------------------------------------------------
# bad input: one InputError each, with a one-line message


def _raises(fn, *args, match=None):
    with pytest.raises(InputError, match=match) as info:
        fn(*args)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off", ".xyz", ".pts"])
def test_read_points_missing_empty_garbage(tmp_path, ext):
    _raises(read_points, tmp_path / f"missing{ext}", match="no such file")
    (tmp_path / f"empty{ext}").write_bytes(b"")
    _raises(read_points, tmp_path / f"empty{ext}", match="empty")
    (tmp_path / f"garbage{ext}").write_bytes(b"\x89\x00\xffgarbage\x01\x02" * 50)
    _raises(read_points, tmp_path / f"garbage{ext}")


def test_read_points_unknown_extension_lists_valid_ones(tmp_path):
    (tmp_path / "a.abc").write_text("1 2 3\n")
    msg = _raises(read_points, tmp_path / "a.abc")
    for ext in (".ply", ".obj", ".off", ".xyz", ".pts"):
        assert ext in msg


def test_read_points_folder(tmp_path):
    (tmp_path / "d.ply").mkdir()
    _raises(read_points, tmp_path / "d.ply")


@pytest.mark.parametrize("text", ["1 2 nan\n4 5 6\n", "1 2 3\ninf 5 6\n"])
def test_read_points_non_finite_xyz(tmp_path, text):
    (tmp_path / "a.xyz").write_text(text)
    _raises(read_points, tmp_path / "a.xyz", match="NaN or infinite")


def test_read_points_non_finite_ply(tmp_path):
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.array([[0, 0, 0], [np.nan, 1, 1.0]])))
    o3d.io.write_point_cloud(str(tmp_path / "a.ply"), pc)
    _raises(read_points, tmp_path / "a.ply", match="NaN or infinite")


def test_read_points_zero_points(tmp_path):
    (tmp_path / "a.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
        "property float z\nend_header\n"
    )
    _raises(read_points, tmp_path / "a.ply", match="no points")
    (tmp_path / "a.xyz").write_text("# only a comment\n\n")
    _raises(read_points, tmp_path / "a.xyz", match="no points")


@pytest.mark.parametrize("text", ["1 2\n3 4\n", "1,2,3\n", "1 2 3\nfoo bar baz\n4 5 6\n",
                                  "1 2 3 0 0 1\n4 5 6\n", "1 2 3 4\n"])
def test_read_points_unparseable_xyz(tmp_path, text):
    (tmp_path / "a.xyz").write_text(text)
    _raises(read_points, tmp_path / "a.xyz")


def test_read_points_truncated_ply(tmp_path, sphere):
    write_mesh(tmp_path / "s.ply", sphere)
    data = (tmp_path / "s.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[: len(data) // 2])
    _raises(read_points, tmp_path / "t.ply")
    _raises(read_mesh, tmp_path / "t.ply")


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off", ".stl"])
def test_read_mesh_missing_empty_garbage(tmp_path, ext):
    _raises(read_mesh, tmp_path / f"missing{ext}", match="no such file")
    (tmp_path / f"empty{ext}").write_bytes(b"")
    _raises(read_mesh, tmp_path / f"empty{ext}", match="empty")
    (tmp_path / f"garbage{ext}").write_bytes(b"\x89\x00\xffgarbage\x01\x02" * 50)
    _raises(read_mesh, tmp_path / f"garbage{ext}")


def test_read_mesh_point_cloud_and_unknown_extension(tmp_path):
    write_points(tmp_path / "p.ply", _random_points()[0])
    _raises(read_mesh, tmp_path / "p.ply", match="no triangles")
    (tmp_path / "a.xyz").write_text("1 2 3\n")
    msg = _raises(read_mesh, tmp_path / "a.xyz")
    assert ".stl" in msg


def test_write_errors_name_the_path(tmp_path, sphere):
    p, _ = _random_points()
    for fn, arg, bad in [
        (write_mesh, sphere, tmp_path / "m.stl"),
        (write_mesh, sphere, tmp_path / "no_such_dir" / "m.ply"),
        (write_points, p, tmp_path / "p.xyz"),
        (write_points, p, tmp_path / "no_such_dir" / "p.ply"),
    ]:
        msg = _raises(fn, bad, arg)
        assert str(bad) in msg
    (tmp_path / "dir.ply").mkdir()
    _raises(write_mesh, tmp_path / "dir.ply", sphere)
    _raises(write_mesh, tmp_path / "e.ply", o3d.geometry.TriangleMesh())
    _raises(write_mesh, tmp_path / "e.ply", "not a mesh")
    _raises(write_points, tmp_path / "p.ply", p[:, :2])
    _raises(write_points, tmp_path / "p.ply", np.full((3, 3), np.nan))
    _raises(write_points, tmp_path / "p.ply", p, p[:3])
    _raises(check_writable, tmp_path / "no_such_dir" / "h.json")
    assert _files(tmp_path) == ["dir.ply"]


# --------------------------------------------------------------------------------------------
# atomic writes, inputs untouched


def test_atomic_path_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.ply") as tmp:
            assert tmp.endswith(".ply") and os.path.dirname(tmp) == str(tmp_path)
            with open(tmp, "w") as f:
                f.write("partial")
            raise RuntimeError("boom")
    assert _files(tmp_path) == []


def test_atomic_path_failure_keeps_old_file(tmp_path):
    (tmp_path / "h.json").write_text("old")
    with pytest.raises(TypeError):
        write_json(tmp_path / "h.json", {"x": object()})
    assert (tmp_path / "h.json").read_text() == "old"
    assert _files(tmp_path) == ["h.json"]


def test_atomic_path_nothing_written_is_an_error(tmp_path):
    with pytest.raises(InputError):
        with atomic_path(tmp_path / "out.ply"):
            pass
    assert _files(tmp_path) == []


def test_atomic_path_success_and_nesting(tmp_path, sphere):
    with atomic_path(tmp_path / "m.ply") as tmp:
        write_mesh(tmp, sphere)  # itself atomic: a temporary of the temporary
        assert not (tmp_path / "m.ply").exists()
    assert _files(tmp_path) == ["m.ply"]
    assert len(read_mesh(tmp_path / "m.ply").triangles) == len(sphere.triangles)


def test_reading_leaves_input_unchanged(tmp_path, sphere):
    for name in ("s.ply", "s.obj", "s.off"):
        write_mesh(tmp_path / name, sphere)
    np.savetxt(tmp_path / "p.xyz", _random_points()[0])
    before = {f: ((tmp_path / f).read_bytes(), os.stat(tmp_path / f).st_mtime_ns) for f in _files(tmp_path)}
    for name in ("s.ply", "s.obj", "s.off", "p.xyz"):
        read_points(tmp_path / name)
    for name in ("s.ply", "s.obj", "s.off"):
        read_mesh(tmp_path / name)
    after = {f: ((tmp_path / f).read_bytes(), os.stat(tmp_path / f).st_mtime_ns) for f in _files(tmp_path)}
    assert after == before


# --------------------------------------------------------------------------------------------------------------------
# scans as scanners write them: colours and extra properties, LAS/LAZ, large coordinates


def _ply(path, fields: list[tuple[str, str]], n: int = 50, seed: int = 0) -> np.ndarray:
    """A binary PLY of n vertices with these (name, numpy type) properties, random values; returns the records."""
    rng = np.random.default_rng(seed)
    records = np.zeros(n, fields)
    for name, kind in fields:
        info = np.iinfo(kind) if np.dtype(kind).kind in "ui" else None
        records[name] = rng.integers(0, info.max, n) if info else rng.random(n)
    types = {"f4": "float", "f8": "double", "u1": "uchar", "u2": "ushort", "i4": "int"}
    header = "".join(f"property {types[np.dtype(k).str[1:]]} {name}\n" for name, k in fields)
    path.write_bytes(f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n{header}end_header\n".encode()
                     + records.tobytes())
    return records


@pytest.mark.parametrize("kind, scale", [("u1", 255.0), ("u2", 65535.0), ("f4", 1.0)])
def test_ply_colours_of_any_type_with_extra_properties(tmp_path, kind, scale):
    fields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
              ("red", kind), ("green", kind), ("blue", kind), ("intensity", "<f4"), ("scalar_class", "<i4")]
    records = _ply(tmp_path / "scan.ply", fields)
    points, normals, colors = read_scan(tmp_path / "scan.ply")
    np.testing.assert_array_equal(points[:, 0], records["x"])
    assert normals is not None
    np.testing.assert_allclose(colors[:, 1], records["green"] / scale, atol=1e-6)
    mapped, _, mapped_colors = map_points(tmp_path / "scan.ply")
    np.testing.assert_array_equal(mapped[:, 2], records["z"])
    np.testing.assert_allclose(mapped_colors, colors)
    assert read_points(tmp_path / "scan.ply")[0].shape == (50, 3)


def test_ply_without_colours_and_xyz_have_none(tmp_path):
    _ply(tmp_path / "plain.ply", [("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    assert read_scan(tmp_path / "plain.ply")[2] is None
    (tmp_path / "a.xyz").write_text("0 0 0\n1 0 0\n0 1 0\n")
    assert read_scan(tmp_path / "a.xyz")[2] is None


def test_large_coordinates_keep_their_precision(tmp_path):
    utm = np.array([[512345.125, 5412345.0625, 312.5], [512345.25, 5412345.1875, 312.75], [512346.0, 5412346.0, 313.0]])
    (tmp_path / "utm.xyz").write_text("\n".join(" ".join(f"{v:.4f}" for v in p) for p in utm) + "\n")
    np.testing.assert_array_equal(read_points(tmp_path / "utm.xyz")[0], utm)


def test_las_round_trip(tmp_path):
    laspy = pytest.importorskip("laspy")
    rng = np.random.default_rng(0)
    xyz = np.array([4.5e5, 5.4e6, 300.0]) + rng.random((200, 3)) * 10  # UTM-like
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets, header.scales = xyz.min(0), [0.001, 0.001, 0.001]
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz.T
    rgb = rng.integers(0, 65535, (200, 3))
    las.red, las.green, las.blue = rgb.T
    for ext in (".las", ".laz"):
        las.write(tmp_path / f"scan{ext}")
        points, normals, colors = read_scan(tmp_path / f"scan{ext}")
        np.testing.assert_allclose(points, xyz, atol=0.0006)  # the file's 1 mm quantisation
        assert normals is None
        np.testing.assert_allclose(colors, rgb / 65535.0)


def test_las_without_laspy_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    (tmp_path / "scan.las").write_bytes(b"LASF" + bytes(400))
    real_import = builtins.__import__

    def no_laspy(name, *args, **kwargs):
        if name == "laspy" or name.startswith("laspy."):
            raise ImportError("no laspy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_laspy)
    with pytest.raises(InputError, match=r"needs laspy: pip install 'geomprior\[lidar\]'"):
        read_scan(tmp_path / "scan.las")


def test_broken_las_is_an_input_error(tmp_path):
    pytest.importorskip("laspy")
    (tmp_path / "scan.las").write_bytes(b"LASF" + bytes(40))
    with pytest.raises(InputError, match="cannot read LAS"):
        read_scan(tmp_path / "scan.las")
