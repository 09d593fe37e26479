"""scripts/make_benchmarks.py assembles BENCHMARKS.md from the fragments present and names the missing ones."""

from __future__ import annotations

import json

from _scripts import load_script


def test_assembles_fragments_and_pictures(tmp_path):
    mod = load_script("make_benchmarks")
    out = tmp_path / "out"
    (out / "bench_surfaces").mkdir(parents=True)
    (out / "bench_surfaces" / "bench_surfaces.md").write_text(
        "### Surfaces table\n\n![scaling](docs/benchmarks/scaling.png)\n\n| a |\n|---|\n| 1 |\n")
    (out / "bench_surfaces" / "scaling.png").write_bytes(b"png")
    (out / "tiling").mkdir()
    (out / "tiling" / "bench_tiling_100_local.md").write_text("### Tiled\n")
    (out / "tiling" / "tiled_100_local.png").write_bytes(b"render")
    (out / "tiling" / "bench_tiling_100_local.json").write_text(json.dumps(
        {"rows": [{"run": "tiled_100_local", "render": str(out / "tiling" / "tiled_100_local.png")}]}))
    target, docs = tmp_path / "BENCHMARKS.md", tmp_path / "docs"
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(docs)]) == 0
    text = target.read_text()
    assert "### Surfaces table" in text and "| 1 |" in text and "### Tiled" in text
    assert "![tiled_100_local](docs/benchmarks/tiled_100_local.png)" in text
    assert text.count("Not measured yet") == len(mod.FRAGMENTS) - 2
    assert (docs / "scaling.png").read_bytes() == b"png" and (docs / "tiled_100_local.png").read_bytes() == b"render"
