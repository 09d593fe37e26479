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
