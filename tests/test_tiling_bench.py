"""scripts/bench_tiling.py --quick runs end to end: tiled (≥ 8 tiles) and untiled meshes, metrics, its table."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from _scripts import load_script

pytest.importorskip("open3d")

can_render = bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None


def test_bench_tiling_quick(tmp_path):
    bench = load_script("bench_tiling")
    args = ["--quick", "--out", str(tmp_path)] + ([] if can_render else ["--no-render"])
    assert bench.main(args) == 0
    rows = {r["run"]: r for r in json.loads((tmp_path / "bench_tiling_quick.json").read_text())["rows"]}
    tiled, untiled = rows["tiled_3000_local"], rows["untiled_3000"]
    assert tiled["tiles"] >= 8 and untiled["tiles"] == 1
    for r in (tiled, untiled):
        assert 0 < r["chamfer_l1"] < 0.02 and r["seconds"] > 0 and 0 < r["peak_gib"] < 6
    assert abs(tiled["chamfer_vs_untiled"]) < 0.25  # a rough check at 20 steps; the real comparison is the 100k run
    if can_render:
        assert Path(tiled["render"]).stat().st_size > 0
    assert "| tiled_3000_local | 9 |" in (tmp_path / "bench_tiling_quick.md").read_text()
    assert sys.modules.get("make_big_scan") is not None


def test_bench_tiling_reuse_takes_runs_from_earlier_tables(tmp_path, monkeypatch):
    bench = load_script("bench_tiling")
    table = {"points": 3000, "radius": 0.05, "tile_size": 0.3, "preset": "fast"}
    mesh = tmp_path / "tiled_3000_local.ply"
    mesh.write_text("ply")
    row = {"run": "tiled_3000_local", "seconds": 12.0, "peak_gib": 1.0, "peak_driver_gib": 0.5, "tiles": 9,
           "retried": 0, "mesh": str(mesh), "summary": "s", "chamfer_l1": 0.1}
    gone = {**row, "run": "untiled_3000", "mesh": str(tmp_path / "missing.ply")}
    (tmp_path / "bench_tiling_3000_local.json").write_text(json.dumps({**table, "rows": [row, gone]}))
    (tmp_path / "bench_tiling_other.json").write_text(json.dumps({**table, "preset": "default", "rows": [
        {**row, "run": "tiled_3000_ray"}]}))
    found = bench.earlier_runs(tmp_path, table)
    assert list(found) == ["tiled_3000_local"]  # the other preset's run and the run without its mesh are not taken
    assert found["tiled_3000_local"]["seconds"] == 12.0 and found["tiled_3000_local"]["reused"]
    assert "chamfer_l1" not in found["tiled_3000_local"]
