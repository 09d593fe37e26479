"""scripts/bench_gpu.py --quick on the CPU: both jobs run, report finite numbers, and work without open3d."""

from __future__ import annotations

import builtins
import json
import math

import numpy as np
from _scripts import load_script


def _load():
    return load_script("bench_gpu")


def test_torus_distance_is_exact():
    from geomprior.synthetic import torus_scan

    mod = _load()
    clean, normals = torus_scan(500, 0.0, seed=1)
    assert mod.torus_distance(clean).max() < 1e-12
    np.testing.assert_allclose(mod.torus_distance(clean + 0.01 * normals), 0.01, atol=1e-12)


def test_quick_without_open3d(tmp_path, monkeypatch):
    mod = _load()
    real_import = builtins.__import__

    def no_open3d(name, *args, **kwargs):
        if name == "open3d" or name.startswith("open3d."):
            raise ImportError("no open3d here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_open3d)
    monkeypatch.setattr(mod.dgp, "finish", mod.dgp.finish)  # restored after the test
    assert mod.main(["--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench_gpu.json").read_text())
    rec, dip = res["reconstruction"], res["dip"]
    assert rec["meshing"].startswith("skipped") and rec["dense_points"] > 1000
    assert rec["dense_mean_distance"] < 5 * rec["input_mean_distance"]  # a surface near the torus, 20 epochs
    assert dip["iterations"] == 20 and math.isfinite(dip["psnr"])
    assert "Command:" in (tmp_path / "bench_gpu.md").read_text()
