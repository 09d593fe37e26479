"""scripts/bench_dgp.py --quick: batched and loop steps of the same maths both run and are timed."""

from __future__ import annotations

import json

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
