"""scripts/bench_dgp.py --quick: batched and loop steps of the same maths both run and are timed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_dgp.py"


def test_bench_dgp_quick(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_dgp", SCRIPT)
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    finally:
        sys.path.remove(str(SCRIPT.parent))
    rows = json.loads((tmp_path / "bench_dgp_quick.json").read_text())["rows"]
    assert "Command:" in (tmp_path / "bench_dgp_quick.md").read_text()
    assert [r["label"] for r in rows] == ["default preset", "original MLP width"]
    for r in rows:
        assert r["patches"] == 12 and r["batched_step_s"] > 0 and r["loop_step_s"] > 0 and r["step_speedup"] > 0
