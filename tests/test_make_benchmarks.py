"""scripts/make_benchmarks.py assembles BENCHMARKS.md from the fragments present and names the missing ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_benchmarks.py"


def test_assembles_fragments_and_pictures(tmp_path):
    spec = importlib.util.spec_from_file_location("make_benchmarks", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    (out / "bench_surfaces").mkdir(parents=True)
    (out / "bench_surfaces" / "bench_surfaces.md").write_text("### Surfaces table\n\n| a |\n|---|\n| 1 |\n")
    (out / "bench_surfaces" / "scaling.png").write_bytes(b"png")
    target = tmp_path / "BENCHMARKS.md"
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(tmp_path / "docs")]) == 0
    text = target.read_text()
    assert "### Surfaces table" in text and "| 1 |" in text
    assert text.count("Not measured yet") == len(mod.FRAGMENTS) - 1
    assert (tmp_path / "docs" / "scaling.png").read_bytes() == b"png"
