"""Quick runs of the speed scripts (bench_dgp, stage_times, dip_step_times) and error_regions' helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _scripts import load_script


def test_bench_dgp_quick(tmp_path):
    assert load_script("bench_dgp").main(["--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_dgp_quick.json").read_text())["rows"]
    assert "Command:" in (tmp_path / "bench_dgp_quick.md").read_text()
    assert [r["label"] for r in rows] == ["default preset", "original MLP width"]
    for r in rows:
        assert r["patches"] == 12 and r["batched_step_s"] > 0 and r["loop_step_s"] > 0 and r["step_speedup"] > 0


def test_stage_times_quick(tmp_path):
    """scripts/stage_times.py --quick: every stage of a reconstruction is timed, none twice (nested calls inside
    one stage), and the library's functions are restored afterwards."""
    import geomprior.dgp as dgp

    mod = load_script("stage_times")
    before = {name: getattr(dgp, name) for _, name in mod.STAGES}
    assert mod.main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "stage_times_quick.json").read_text())
    stages = {r["stage"]: r["seconds"] for r in res["rows"]}
    assert {"local fit", "consistency", "mesh (closed/open, manifold)", "other"} <= set(stages)
    assert all(v >= 0 for k, v in stages.items() if k != "other")
    assert stages["other"] >= -0.01 * res["total"] and res["poisson9"] > 0  # no stage counted twice
    assert all(getattr(dgp, name) is func for name, func in before.items())
    assert "Screened Poisson depth 9" in (tmp_path / "stage_times_quick.md").read_text()


def test_off_regions_group_the_far_samples():
    mod = load_script("error_regions")
    rng = np.random.default_rng(0)
    near = rng.uniform(0, 1, (300, 3))
    far_a, far_b = rng.normal(0, 0.01, (60, 3)) + 3, rng.normal(0, 0.01, (30, 3)) - 3
    samples = np.concatenate([near, far_a, far_b])
    dist = np.r_[np.full(300, 0.001), np.full(60, 0.05), np.full(30, 0.02)]
    regions = mod.off_regions(samples, dist, threshold=0.01, link=0.1)
    assert [len(r["index"]) for r in regions] == [60, 30]
    np.testing.assert_allclose(regions[0]["center"], 3, atol=0.01)
    assert regions[0]["share"] == 60 / 390 and regions[1]["cost"] == pytest.approx(30 * 0.02 / dist.sum())
    assert mod.off_regions(samples, np.full(390, 0.001), threshold=0.01, link=0.1) == []


def test_diagnose_finds_a_bump_and_nothing_on_the_true_surface():
    from geomprior.synthetic import sphere_mesh

    mod = load_script("error_regions")
    sphere = sphere_mesh(resolution=40)
    assert mod.diagnose(sphere, sphere, n=5000)["mesh"]["regions"] == []
    bumped = sphere_mesh(resolution=40)
    v = np.asarray(bumped.vertices)
    cap = v[:, 0] > 0.9
    v[cap] *= 1.15  # 15 % of the radius out: about 4 % of the diagonal
    bumped.vertices = type(bumped.vertices)(v)
    res = mod.diagnose(bumped, sphere, n=20_000)
    top = res["mesh"]["regions"][0]
    assert top["center"][0] > 0.25 and abs(top["center"][1]) < 0.05 and top["component"] == 0
    assert res["components"] == 1 and res["mesh"]["off_share"] > 0.01


def test_error_regions_quick(tmp_path):
    assert load_script("error_regions").main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "error_regions-torus-0.005.json").read_text())
    assert set(res) == {"mesh", "reference", "components"} and res["mesh"]["chamfer_half"] > 0


def test_dip_step_times_quick(tmp_path):
    """scripts/dip_step_times.py --quick: every layout and float type is timed, and the solver's one is marked."""
    assert load_script("dip_step_times").main(["--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "dip_step_times_quick.json").read_text())["rows"]
    assert len(rows) == 8 and all(r["seconds"] > 0 for r in rows)
    assert sum(r["solver"] for r in rows) == 2  # one per network
    assert "Command:" in (tmp_path / "dip_step_times_quick.md").read_text()
