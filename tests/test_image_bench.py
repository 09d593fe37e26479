"""scripts/bench_image.py --quick runs end to end and writes its table."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_image.py"


def test_bench_image_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_image", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_image_quick.json").read_text())["rows"]
    assert {(r["task"], r["method"]) for r in rows} == {
        ("denoise", "dip"), ("denoise", "dd"), ("denoise", "mlp"), ("superres", "dip"), ("inpaint", "dd"),
        ("inpaint", "dip"), ("cs", "dd")}
    for r in rows:
        assert math.isfinite(r["psnr"]) and 0 <= r["chosen"] <= r["steps"] <= 20
        assert r["oracle_psnr"] >= r["psnr"] - 1e-6
    assert "oracle" in (tmp_path / "bench_image_quick.txt").read_text()
    assert "denoise" in capsys.readouterr().out
