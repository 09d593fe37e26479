"""geomprior.mesh: the manifold re-extraction of a surface and the meshes of objects, closed and open."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

o3d = pytest.importorskip("open3d")

import geomprior.mesh as gmesh  # noqa: E402
from geomprior import mesh_filters  # noqa: E402
from geomprior.mesh_filters import _sides  # noqa: E402
from geomprior.metrics import evaluate, mesh_facts, point_to_mesh_distance, sample_surface  # noqa: E402
from geomprior.synthetic import sphere_mesh, torus_mesh  # noqa: E402


def oriented(mesh, n: int, seed: int = 0):
    """(points, outward unit normals) sampled on a mesh."""
    return sample_surface(mesh, n, seed=seed)


def test_signed_distance_signs_by_pseudo_normals_also_at_edges_and_corners():
    # a unit cube about the origin: the exact signed distance is known; points near its edges and corners are where
    # a face normal would give the wrong sign
    box = o3d.geometry.TriangleMesh.create_box(1, 1, 1).translate((-0.5, -0.5, -0.5))
    field = gmesh._Field(np.asarray(box.vertices), np.asarray(box.triangles, dtype=np.int64), cube=0.05)
    g = np.arange(-16, 17)
    cubes = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    values = field.at(gmesh._pack(cubes))[:, 0]  # each cube's first corner is the cube itself
    q = cubes * 0.05
    outside = np.abs(q).max(1) > 0.5
    truth = np.where(outside, np.linalg.norm(np.maximum(np.abs(q) - 0.5, 0), axis=1),
                     -(0.5 - np.abs(q).max(1)))
    on_surface = np.abs(truth) < 1e-9
    np.testing.assert_allclose(values[~on_surface], truth[~on_surface], atol=1e-5)


def test_the_field_keeps_every_corner_it_computed_in_order_with_its_value():
    # corners asked for in overlapping batches are each computed once and read back the values that one call over
    # all of them gives (the cache's keys stay sorted and aligned with their values)
    box = o3d.geometry.TriangleMesh.create_box(1, 1, 1).translate((-0.5, -0.5, -0.5))
    vertices, faces = np.asarray(box.vertices), np.asarray(box.triangles, dtype=np.int64)
    g = np.arange(-12, 13)
    keys = gmesh._pack(np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3))
    whole = gmesh._Field(vertices, faces, cube=0.05).at(keys)
    field = gmesh._Field(vertices, faces, cube=0.05)
    rng = np.random.default_rng(0)
    for part in [rng.choice(keys, 2000, replace=False) for _ in range(4)] + [keys[::-1]]:
        field.at(part)
    assert np.all(np.diff(field.keys) > 0)
    assert len(field.keys) == len(np.unique((keys[:, None] + gmesh._CORNER_SHIFTS[None]).ravel()))
    np.testing.assert_array_equal(field.at(keys), whole)


def test_the_key_set_helpers_agree_with_numpy():
    rng = np.random.default_rng(1)
    for n in (0, 1, 1000):
        keys = rng.integers(-50, 50, n)
        np.testing.assert_array_equal(gmesh._distinct(keys), np.unique(keys))
        known = np.unique(rng.integers(-60, 60, 40))
        np.testing.assert_array_equal(gmesh._within(keys, known), np.isin(keys, known))
        np.testing.assert_array_equal(gmesh._within(keys, known[:0]), np.zeros(n, bool))


@pytest.mark.parametrize("make, euler", [(lambda: sphere_mesh(resolution=30), 2),
                                         (lambda: torus_mesh(radial_resolution=40, tubular_resolution=20), 0)])
def test_manifold_surface_of_a_poisson_mesh_is_watertight_with_its_topology(make, euler):
    truth = make()
    points, normals = oriented(truth, 4000)
    poisson = gmesh.poisson_mesh(points, normals, depth=6)
    out = gmesh.manifold_surface(poisson)
    facts = mesh_facts(out)
    assert facts == {"components": 1, "edge_manifold": True, "boundary_edges": 0, "watertight": True, "euler": euler}
    assert not out.is_self_intersecting()
    diag = float(np.linalg.norm(np.ptp(np.asarray(truth.vertices), axis=0)))
    # the same surface: every new vertex within a few thousandths of the diagonal of the Poisson mesh
    assert point_to_mesh_distance(np.asarray(out.vertices), poisson).max() < 0.005 * diag
    normals_out = np.asarray(out.compute_vertex_normals().vertex_normals)
    nearest = np.asarray(o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)))
                         .search_knn_vector_3d(np.asarray(out.vertices)[0], 1)[1])
    assert normals_out[0] @ normals[nearest[0]] > 0  # faces outward, as the input does


def test_blocks_share_the_vertices_on_their_faces(monkeypatch):
    points, normals = oriented(sphere_mesh(resolution=30), 4000)
    poisson = gmesh.poisson_mesh(points, normals, depth=6)
    whole = gmesh.manifold_surface(poisson)
    monkeypatch.setattr(gmesh, "BLOCK", 4)  # many blocks: every seam must close
    pieces = gmesh.manifold_surface(poisson)
    assert mesh_facts(pieces)["watertight"] and len(pieces.vertices) == len(whole.vertices)
    np.testing.assert_allclose(np.sort(np.asarray(pieces.vertices), 0), np.sort(np.asarray(whole.vertices), 0),
                               atol=1e-6)


def test_non_manifold_input_gives_an_edge_manifold_output():
    # two boxes sharing one edge: the triangles along it meet four at an edge
    a = o3d.geometry.TriangleMesh.create_box(1, 1, 1).subdivide_midpoint(4)
    b = o3d.geometry.TriangleMesh(a).translate((1, 1, 0))
    both = a + b
    both.merge_close_vertices(1e-9)
    assert not mesh_facts(both)["edge_manifold"]
    out = gmesh.manifold_surface(both, cube=0.05)
    assert mesh_facts(out)["edge_manifold"] and mesh_facts(out)["boundary_edges"] == 0


def test_closed_auto_open_and_objects():
    sphere = sphere_mesh(resolution=30)
    points, normals = oriented(sphere, 4000)
    closed, facts = gmesh.mesh_surface(points, normals, depth=6, max_distance=0.15, min_area=1e-3)
    assert facts[0]["closed"] and mesh_facts(closed)["watertight"]
    # without its bottom cap (15 % of its area) the scan does not enclose a volume: the mesh stays near the points
    top = points[:, 2] > -0.7
    cut, facts = gmesh.mesh_surface(points[top], normals[top], depth=6, max_distance=0.15, min_area=1e-3)
    assert not facts[0]["closed"] and facts[0]["open_share"] > gmesh.CLOSED_SHARE
    assert mesh_facts(cut)["boundary_edges"] > 0 and mesh_facts(cut)["components"] == 1
    assert np.asarray(cut.vertices)[:, 2].min() > -0.85
    # closed=True closes it
    forced, facts = gmesh.mesh_surface(points[top], normals[top], depth=6, max_distance=0.15, closed=True)
    assert facts[0]["closed"] and mesh_facts(forced)["watertight"]
    assert np.asarray(forced.vertices)[:, 2].min() < -0.9
    # two objects: two closed pieces, nothing between them
    far = points + [3.0, 0, 0]
    two, facts = gmesh.mesh_surface(np.concatenate([points, far]), np.concatenate([normals, normals]),
                                    objects=np.repeat([0, 1], len(points)), depth=7, max_distance=0.15)
    assert [f["closed"] for f in facts] == [True, True] and mesh_facts(two)["components"] == 2
    x = np.asarray(two.vertices)[:, 0]
    assert not ((x > 1.2) & (x < 1.8)).any()
    # the former output: open3d's Poisson mesh as it comes
    former, _ = gmesh.mesh_surface(points, normals, depth=6, max_distance=0.15, manifold=False)
    assert len(former.triangles) > 0


def _volume(mesh) -> float:
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    return float(np.einsum("ij,ij->i", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])).sum() / 6)


def test_a_closed_mesh_faces_outward_whichever_way_its_normals_face():
    # a hollow ball (radii 1 and 0.6): its inner wall faces the cavity; with every normal turned the other way the
    # mesh is the same, not inside out
    outer, inner = (oriented(sphere_mesh(radius=r, resolution=30), 4000, seed=i) for i, r in enumerate((1.0, 0.6)))
    points, normals = np.concatenate([outer[0], inner[0]]), np.concatenate([outer[1], -inner[1]])
    shell = 4 / 3 * np.pi * (1 - 0.6**3)
    for sign in (1, -1):
        mesh, _ = gmesh.mesh_surface(points, sign * normals, depth=6, closed=True)
        assert mesh_facts(mesh)["components"] == 2 and _volume(mesh) == pytest.approx(shell, rel=0.05)


def test_a_small_piece_stays_when_enough_points_lie_nearest_to_it():
    # a ball and, apart, a small one scanned with 60 points (its mesh smaller than min_area): an arm scanned sparsely
    big, small = oriented(sphere_mesh(resolution=30), 4000), oriented(sphere_mesh(radius=0.15, resolution=20), 60)
    points, normals = np.concatenate([big[0], small[0] + [2.0, 0, 0]]), np.concatenate([big[1], small[1]])
    for min_points, pieces in ((0, 1), (16, 2), (61, 1)):
        mesh, _ = gmesh.mesh_surface(points, normals, depth=7, closed=True, min_area=0.5, min_points=min_points)
        assert mesh_facts(mesh)["components"] == pieces


def test_a_handle_narrower_than_two_cells_goes_a_real_one_stays():
    # a torus whose hole (radius 0.06) is about two depth-8 cells wide: Poisson at depth 8 keeps a hairline hole,
    # depth 7 closes it; the mesh is the handle-free one. A torus with a wide hole keeps it at the depth asked.
    narrow = sample_surface(torus_mesh(tube_radius=0.94, radial_resolution=80, tubular_resolution=40), 6000, seed=0)
    assert gmesh._extract(*narrow, depth=8, closed=True, max_distance=None, min_area=0).facts["genus"] == 1
    mesh, facts = gmesh.mesh_surface(*narrow, depth=8, closed=True)
    assert facts[0]["genus"] == 0 and facts[0]["depth"] == 7 and mesh_facts(mesh)["euler"] == 2
    wide = sample_surface(torus_mesh(radial_resolution=80, tubular_resolution=40), 6000, seed=0)
    mesh, facts = gmesh.mesh_surface(*wide, depth=8, closed=True)
    assert facts[0]["genus"] == 1 and facts[0]["depth"] == 8 and mesh_facts(mesh)["euler"] == 0


def test_support_points_measure_the_trim_where_the_mesh_points_are_sparse():
    sphere = sphere_mesh(resolution=30)
    sparse, normals = oriented(sphere, 150)  # mean spacing ~0.3 on the unit sphere: wider than the trim distance
    dense, _ = oriented(sphere, 8000, seed=1)
    alone, facts = gmesh.mesh_surface(sparse, normals, depth=6, max_distance=0.1, min_area=1e-3)
    assert not facts[0]["closed"]  # between its own points the surface is farther than 0.1 from all of them
    held, facts = gmesh.mesh_surface(sparse, normals, depth=6, max_distance=0.1, min_area=1e-3,
                                     support=(dense, None))
    assert facts[0]["closed"] and mesh_facts(held)["watertight"]
    # per object: each object's support is its own
    two, facts = gmesh.mesh_surface(np.concatenate([sparse, sparse + [3.0, 0, 0]]), np.concatenate([normals] * 2),
                                    objects=np.repeat([0, 1], len(sparse)), depth=6, max_distance=0.1,
                                    min_area=1e-3, support=(dense, np.zeros(len(dense), int)))
    assert [f["closed"] for f in facts] == [True, False]


def test_trim_ends_an_open_mesh_closer_without_changing_the_closed_or_open_decision():
    sphere = sphere_mesh(resolution=30)
    points, normals = oriented(sphere, 4000)
    top = points[:, 2] > -0.7
    wide, facts_wide = gmesh.mesh_surface(points[top], normals[top], depth=6, max_distance=0.3, min_area=1e-3)
    tight, facts_tight = gmesh.mesh_surface(points[top], normals[top], depth=6, max_distance=0.3, trim=0.05,
                                            min_area=1e-3)
    assert not facts_wide[0]["closed"] and not facts_tight[0]["closed"]
    assert facts_tight[0]["open_share"] == facts_wide[0]["open_share"]
    reach = cKDTree(points[top])
    assert reach.query(np.asarray(tight.vertices))[0].max() <= 0.05 < reach.query(np.asarray(wide.vertices))[0].max()
    # a closed scan stays closed whatever the trim
    _, facts = gmesh.mesh_surface(points, normals, depth=6, max_distance=0.3, trim=0.01, min_area=1e-3)
    assert facts[0]["closed"]


def test_per_point_distances_keep_a_sparse_stretch_whole_and_a_dense_edge_tight():
    sphere = sphere_mesh(resolution=30)
    points, normals = oriented(sphere, 12000)
    rng = np.random.default_rng(7)  # not sample_surface's seed: its stream picks the faces
    keep = (points[:, 0] < 0) | (rng.random(len(points)) < 0.03)  # the x > 0 half is 30× sparser (spacing ~0.2)
    cap = keep & (points[:, 2] > -0.7)  # an open scan: a sphere without its bottom
    pts, nrm = points[cap], normals[cap]
    d8 = cKDTree(pts).query(pts, k=[8])[0][:, 0]
    local = np.maximum(0.05, d8)  # per point: at least its distance to its 8th nearest neighbour
    one, facts_one = gmesh.mesh_surface(pts, nrm, depth=6, max_distance=0.3, trim=0.05, min_area=1e-3)
    each, facts_each = gmesh.mesh_surface(pts, nrm, depth=6, max_distance=np.maximum(0.3, d8), trim=local,
                                          min_area=1e-3)
    assert not facts_one[0]["closed"] and not facts_each[0]["closed"]
    truth, _ = oriented(sphere, 4000, seed=1)
    truth = truth[(truth[:, 2] > -0.6) & (truth[:, 0] > 0.1)]  # the sparse half, away from the scan's edge
    missing = [np.mean(point_to_mesh_distance(truth, m) > 0.05) for m in (one, each)]
    assert missing[1] < 0.01 < 0.2 < missing[0]  # one distance cuts holes between the sparse points
    # every vertex lies within its nearest point's distance; at the dense half's edge that is about the trim
    v = np.asarray(each.vertices)
    dist, near = cKDTree(pts).query(v)
    assert np.all(dist <= local[near] + 1e-9)
    dense_edge = (v[:, 0] < -0.3) & (v[:, 2] < -0.6)
    assert dense_edge.any() and dist[dense_edge].max() <= 0.1 < 0.3
    # the closed-or-open decision measured per point: where the points are sparse, the space between them is no hole
    whole = (points[:, 0] < 0) | (rng.random(len(points)) < 0.1)
    d8 = cKDTree(points[whole]).query(points[whole], k=[8])[0][:, 0]
    _, facts = gmesh.mesh_surface(points[whole], normals[whole], depth=6, max_distance=0.1, min_area=1e-3)
    assert not facts[0]["closed"]
    _, facts = gmesh.mesh_surface(points[whole], normals[whole], depth=6, max_distance=np.maximum(0.1, 2 * d8),
                                  min_area=1e-3)
    assert facts[0]["closed"]


def noisy_box(level: int = 4, noise: float = 0.01, seed: int = 0):
    """A unit box's mesh, subdivided ``level`` times, each vertex moved by Gaussian noise (``noise`` per axis):
    (vertices, triangles)."""
    box = o3d.geometry.TriangleMesh.create_box().subdivide_midpoint(level)
    box.merge_close_vertices(1e-9)
    v, t = np.asarray(box.vertices), np.asarray(box.triangles)
    return v + np.random.default_rng(seed).normal(scale=noise, size=v.shape), t


def turned_over(before, after, triangles) -> int:
    """How many triangles turned over (their normal more than 90° from before) between two vertex arrays."""
    return int((np.sum(gmesh._faces(before, triangles)[0] * gmesh._faces(after, triangles)[0], 1) < 0).sum())


def keep_edges_face_by_face(vertices, triangles, iterations, sigma, vertex_steps):
    """The reference of ``keep_edges``: the same filter with one loop over the faces and one over the vertices."""
    v = np.array(vertices, dtype=np.float64)
    corners = v[triangles]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1) / 2
    n = cross / (2 * area[:, None])
    c = corners.mean(1)
    sigma_s = np.mean([np.linalg.norm(v[a] - v[b]) for f in triangles for a, b in zip(f, np.roll(f, 1))])
    faces_of = [set() for _ in v]
    for i, f in enumerate(triangles):
        for k in f:
            faces_of[k].add(i)
    near = [sorted(set().union(*(faces_of[k] for k in f))) for f in triangles]
    for _ in range(iterations):
        new = np.zeros_like(n)
        for i, js in enumerate(near):
            for j in js:
                w = area[j] * np.exp(-np.sum((c[i] - c[j]) ** 2) / (2 * sigma_s**2))
                new[i] += w * np.exp(-np.sum((n[i] - n[j]) ** 2) / (2 * sigma**2)) * n[j]
        n = new / np.linalg.norm(new, axis=1, keepdims=True)
    for _ in range(vertex_steps):
        c = v[triangles].mean(1)
        v = v + np.array([np.mean([n[f] * (n[f] @ (c[f] - x)) for f in faces_of[k]], axis=0)
                          for k, x in enumerate(v)])
    return v


def test_keep_edges_matches_its_face_by_face_reference():
    v, t = noisy_box(level=1, noise=0.02)
    fast = gmesh.keep_edges(v, t, 3, sigma=0.3, vertex_steps=4)
    assert np.abs(fast - keep_edges_face_by_face(v, t, 3, 0.3, 4)).max() < 1e-5
    assert np.array_equal(gmesh.keep_edges(v, t, 0), v)


def test_keep_edges_takes_the_noise_out_of_a_box_and_keeps_its_edges():
    v, t = noisy_box()
    clean = o3d.geometry.TriangleMesh.create_box().subdivide_midpoint(4)
    clean.merge_close_vertices(1e-9)
    truth = np.asarray(clean.vertices)

    def off_box(x):  # each vertex's distance to the box's surface
        inside = np.minimum(x, 1 - x)
        return np.abs(np.where(np.abs(inside).min(1, keepdims=True) == np.abs(inside), inside, 0).sum(1))

    def angle_error(x):  # degrees between each face's normal and its true face's axis, faces along the box's edges
        n, _, _ = gmesh._faces(x, t)
        true, _, _ = gmesh._faces(truth, t)
        edge = (np.minimum(truth[t], 1 - truth[t]) < 1e-9).sum(2).max(1) >= 2  # a corner on two box faces
        return np.degrees(np.arccos(np.sum(n * true, 1).clip(-1, 1)))[edge].mean()

    kept = gmesh.keep_edges(v, t, 5)
    rounded = gmesh.keep_edges(v, t, 5, sigma=100.0)  # no range term: a plain smoothing of the normals
    assert off_box(kept).mean() < 0.6 * off_box(v).mean()
    assert angle_error(kept) < 0.6 * angle_error(v)
    assert angle_error(kept) < 0.7 * angle_error(rounded)


def test_keep_edges_turns_no_triangle_over():
    v, t = noisy_box(level=3, noise=0.03, seed=1)  # noise about half the edge length: the filter would fold some
    assert turned_over(v, gmesh.keep_edges(v, t, 5), t) == 0


def follow_points_vertex_by_vertex(vertices, triangles, points, width):
    """The reference of ``follow_points`` before its fold guard: closest points by brute force over the triangles
    (each point's distance, signed by its closest triangle's side, shared among its corners by barycentric
    weights; none from points farther than FAR_POINT edges), the averaging steps one vertex at a time over its
    ring, moves at most MAX_MOVE edges."""
    v = np.asarray(vertices, dtype=np.float64)
    normals, _, areas = gmesh._faces(v, triangles)
    sides = [v[a] - v[b] for tri in triangles for a, b in zip(tri, np.roll(tri, 1))]
    edge = np.sqrt(np.mean([np.dot(x, x) for x in sides]))
    mass, total = np.zeros(len(v)), np.zeros(len(v))
    for q in points:
        best = (np.inf, None, None, 0.0)
        for f, (a, b, c) in enumerate(v[triangles]):
            # the closest point of the triangle: the plane's foot if inside, else the nearest point of its edges
            foot = q - np.dot(q - a, normals[f]) * normals[f]
            bary = np.linalg.solve(np.stack([b - a, c - a, normals[f]], 1), foot - a)[:2]
            if not (bary.min() >= 0 and bary.sum() <= 1):
                foot = min((p0 + np.clip(np.dot(q - p0, p1 - p0) / np.dot(p1 - p0, p1 - p0), 0, 1) * (p1 - p0)
                            for p0, p1 in ((a, b), (b, c), (c, a))), key=lambda x: np.linalg.norm(q - x))
                bary = np.linalg.lstsq(np.stack([b - a, c - a], 1), foot - a, rcond=None)[0]
            d = np.linalg.norm(q - foot)
            if d < best[0]:
                best = (d, f, bary, d * float(np.sign(np.dot(q - foot, normals[f]))))
        _, f, (s1, s2), signed = best
        if abs(signed) > mesh_filters.FAR_POINT * edge:
            continue
        for corner, weight in zip(triangles[f], (1 - s1 - s2, s1, s2)):
            mass[corner] += max(weight, 0.0)
            total[corner] += max(weight, 0.0) * signed
    ring = [set() for _ in v]
    for a, b, c in triangles:
        ring[a] |= {b, c}
        ring[b] |= {a, c}
        ring[c] |= {a, b}
    for _ in range(int(np.ceil(7 * width**2 / (6 * edge**2)))):
        mass, total = (np.array([(x[i] + sum(x[j] for j in ring[i])) / (1 + len(ring[i])) for i in range(len(v))])
                       for x in (mass, total))
    out, limit = v.copy(), mesh_filters.MAX_MOVE * edge
    for i in range(len(v)):
        n = sum(normals[f] * areas[f] for f in np.flatnonzero((triangles == i).any(1)))
        if mass[i] > 0:
            out[i] = v[i] + n / np.linalg.norm(n) * np.clip(total[i] / mass[i], -limit, limit)
    return out


def test_follow_points_matches_its_vertex_by_vertex_reference():
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.95, resolution=6)
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(150, 3))
    points *= (1 + rng.normal(scale=0.02, size=(150, 1))) / np.linalg.norm(points, axis=1, keepdims=True)
    fast = gmesh.follow_points(v, t, points, 0.6)
    assert np.abs(fast - follow_points_vertex_by_vertex(v, t, points, 0.6)).max() < 1e-5
    np.testing.assert_array_equal(gmesh.follow_points(v, t, points, 0.0), v)
    np.testing.assert_array_equal(gmesh.follow_points(v, t, points[:0], 0.3), v)


def test_follow_points_puts_a_shrunk_sphere_back_on_its_points_without_their_noise():
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.97, resolution=30)
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(5000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    points += rng.normal(scale=0.01, size=points.shape)
    radius = np.linalg.norm(gmesh.follow_points(v, t, points, 0.1), axis=1)
    assert np.abs(radius - 1).mean() < 0.1 * 0.03  # a tenth of the shrinkage left
    assert radius.std() < 0.3 * 0.01  # the points' noise averaged out


def test_follow_points_moves_each_side_of_a_thin_part_to_its_own_points():
    # a plate 0.03 thick; its points lie 0.005 inside the top and 0.005 outside the bottom: closer to the other
    # side's vertices than the width, each side follows its own (the averaging goes along the surface)
    box = o3d.geometry.TriangleMesh.create_box(1, 1, 0.03).translate((0, 0, -0.015)).subdivide_midpoint(4)
    box.merge_close_vertices(1e-9)
    v, t = np.asarray(box.vertices), np.asarray(box.triangles)
    g = np.linspace(0.02, 0.98, 60)
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    points = np.concatenate([np.c_[xy, np.full(len(xy), 0.01)], np.c_[xy, np.full(len(xy), -0.02)]])
    moved = gmesh.follow_points(v, t, points, 0.05)
    inner = (np.abs(v[:, :2] - 0.5) < 0.35).all(1)
    top, bottom = inner & (v[:, 2] > 0), inner & (v[:, 2] < 0)
    np.testing.assert_allclose(moved[top, 2], 0.01, atol=5e-4)
    np.testing.assert_allclose(moved[bottom, 2], -0.02, atol=5e-4)


def test_follow_points_moves_no_vertex_farther_than_its_limit():
    # points 0.25 outside a sphere meshed with edges ~0.2: every vertex would move 0.25, the limit is half an edge
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.75, resolution=12)
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    points = np.random.default_rng(0).normal(size=(2000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    edge = np.sqrt(np.mean(np.sum(_sides(v, t) ** 2, 2)))  # root-mean-square
    moves = np.linalg.norm(gmesh.follow_points(v, t, points, 0.3) - v, axis=1)
    assert 0.25 > mesh_filters.MAX_MOVE * edge
    np.testing.assert_allclose(moves, mesh_filters.MAX_MOVE * edge, rtol=1e-6)


def test_follow_points_ignores_a_point_far_off_the_mesh():
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.99, resolution=20)
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    points = np.random.default_rng(0).normal(size=(3000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    alone = gmesh.follow_points(v, t, points, 0.2)
    stray = np.concatenate([points, [[0.0, 0.0, 2.0]]])  # 1.0 above the top, ~7 edges
    assert 1.0 > mesh_filters.FAR_POINT * np.sqrt(np.mean(np.sum(_sides(v, t) ** 2, 2)))
    np.testing.assert_array_equal(gmesh.follow_points(v, t, stray, 0.2), alone)


def test_follow_points_turns_no_triangle_over():
    v, t = noisy_box(level=4, noise=0.02, seed=1)  # a noisy mesh (edges ~0.06) and noisier points, averaged over
    points, _ = oriented(o3d.geometry.TriangleMesh.create_box(), 3000, seed=1)  # little: unguarded, 17 would turn
    points += np.random.default_rng(1).normal(scale=0.05, size=points.shape)
    assert turned_over(v, gmesh.follow_points(v, t, points, 0.02), t) == 0


def test_taubin_smooth_takes_out_a_triangles_roughness_and_keeps_the_shape():
    mesh = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=30)
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    edge = np.sqrt(np.mean(np.sum(_sides(v, t) ** 2, 2)))
    rough = v * (1 + np.random.default_rng(0).normal(scale=0.1 * edge, size=(len(v), 1)))  # bumps a vertex wide

    def errors(x):  # degrees between face and true normals; distance to the sphere; mean radius
        n, c, _ = gmesh._faces(x, t)
        radius = np.linalg.norm(x, axis=1)
        angle = np.degrees(np.arccos(np.sum(n * c / np.linalg.norm(c, axis=1, keepdims=True), 1).clip(-1, 1)))
        return angle.mean(), np.abs(radius - 1).mean(), radius.mean()

    (angle_r, off_r, _), (angle_s, off_s, mean_s) = errors(rough), errors(gmesh.taubin_smooth(rough, t, 2))
    assert angle_s < 0.6 * angle_r and off_s < 0.7 * off_r
    assert abs(mean_s - 1) < 0.01 * edge  # not shrunk: two steps of open3d's Laplacian filter shrink it 0.05 edges
    assert np.array_equal(gmesh.taubin_smooth(rough, t, 0), rough)


def test_taubin_smooth_turns_no_triangle_over():
    v, t = noisy_box(level=3, noise=0.05, seed=1)  # noise near the edge length: unguarded, 29 would turn over
    assert turned_over(v, gmesh.taubin_smooth(v, t, 2), t) == 0


def test_max_cube_refines_a_sparse_scans_mesh_toward_the_surface():
    # 300 points on a torus: Poisson's mesh follows their spacing (~0.09); re-extracted at its own resolution, its
    # facets and chords cut the tube's curve, cubes of 0.025 follow it closer (as a reconstruction meshes: filtered)
    torus = torus_mesh(radial_resolution=60, tubular_resolution=30)
    points, normals = oriented(torus, 300)

    def errors(mesh):
        v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        quality = evaluate(mesh, torus, n_samples=20_000)
        edges = np.linalg.norm(_sides(v, t), axis=2)
        return quality["chamfer_l1"], 1 - quality["normal_consistency"], np.median(edges)

    coarse, _ = gmesh.mesh_surface(points, normals, depth=8, closed=True, edge_filter=5)
    fine, _ = gmesh.mesh_surface(points, normals, depth=8, closed=True, edge_filter=5, max_cube=0.025)
    (dist_c, normal_c, edge_c), (dist_f, normal_f, edge_f) = errors(coarse), errors(fine)
    assert edge_c > 0.05 and edge_f < 0.03
    assert dist_f < 0.97 * dist_c and normal_f < 0.7 * normal_c
    assert mesh_facts(fine)["watertight"]
    # a bound above the mesh's own resolution changes nothing
    same, _ = gmesh.mesh_surface(points, normals, depth=8, closed=True, edge_filter=5, max_cube=10.0)
    np.testing.assert_array_equal(np.asarray(same.vertices), np.asarray(coarse.vertices))
