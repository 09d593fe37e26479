"""scripts/bench_scans.py: its scans with stray points, and --quick end to end (tables, cache, verdicts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_scans")


def test_stray_scans(bench):
    mesh, plain = bench.make_scan("sphere", "", 2000)
    _, strays = bench.make_scan("sphere", "strays", 2000)
    _, box = bench.make_scan("sphere", "box", 2000)
    np.testing.assert_array_equal(strays[:2000], plain)
    diag = float(np.linalg.norm(np.ptp(np.asarray(mesh.vertices), axis=0)))
    far = np.linalg.norm(strays[2000:], axis=1) / diag
    assert len(strays) == 2012 and (far > 1.9).all() and (far < 4.2).all()  # 4 clusters of 3, 2-4 diagonals out
    assert len(box) == 2020 and np.abs(box[2000:]).max() > 1.5  # 1 % in a box 3x the sphere's size


def test_quick_run_writes_its_tables(bench, tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "bench_scans_quick.md").read_text()
    assert "#### Stray points" in text and "#### Closed shapes" in text
    assert "sphere strays:" in text and "| sphere | default | 1 | yes | yes | 2 (2) |" in text
    assert "| sphere | dense points instead of fitted | 1 | yes | yes | 2 |" in text
    assert "| sphere | noise-free samples, true normals | 1 | yes | yes | 2 |" in text
    rows = json.loads((tmp_path / "bench_scans_quick.json").read_text())["rows"]
    assert {(r["variant"], r["method"]) for r in rows} == {(v, m) for v in ("", "strays", "box")
                                                           for m in ("default", "poisson9")} | {("", "oracle")}
    plain = next(r for r in rows if r["method"] == "default" and not r["variant"])
    assert plain["config"]["mesh_points"] == "fitted" and plain["dense"]["chamfer_l1"] < 0.05
    strays = next(r for r in rows if r["variant"] == "strays" and r["method"] == "default")
    assert strays["set_aside"] == 12 and strays["quality"]["coverage"] > 0.95
    # with --reuse the cached rows come back as they were (nothing is refitted: the same times)
    assert bench.main(["--quick", "--out", str(tmp_path), "--reuse"]) == 0
    again = (tmp_path / "bench_scans_quick.md").read_text()
    assert again.split("#### Stray points")[1] == text.split("#### Stray points")[1]


@pytest.mark.parametrize("inward", [False, True])
def test_narrow_gaps_finds_two_spheres_nearly_touching(bench, inward):
    import open3d as o3d

    def sphere(x):
        s = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=80).translate((x, 0, 0))
        return s if not inward else o3d.geometry.TriangleMesh(s.vertices, o3d.utility.Vector3iVector(
            np.asarray(s.triangles)[:, ::-1]))

    alone = bench.narrow_gaps(sphere(0), 0.01)
    pair = sphere(-1.01) + sphere(1.01)  # 0.02 of air between them
    diag = float(np.linalg.norm(np.ptp(np.asarray(pair.vertices), axis=0)))
    (gap,) = bench.narrow_gaps(pair, 0.01)
    wide = bench.narrow_gaps(sphere(-1.1) + sphere(1.1), 0.01)  # 0.2 of air: wider than 0.01 of the diagonal
    assert alone == [] and wide == []
    assert 0.02 / diag <= gap < 0.03 / diag
