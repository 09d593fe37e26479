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
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(docs), "--claims", "-"]) == 0
    text = target.read_text()
    assert "### Surfaces table" in text and "| 1 |" in text and "### Tiled" in text
    assert "![tiled_100_local](docs/benchmarks/tiled_100_local.png)" in text
    assert text.count("Not measured yet") == len(mod.FRAGMENTS) - 2
    assert (docs / "scaling.png").read_bytes() == b"png" and (docs / "tiled_100_local.png").read_bytes() == b"render"
    (out / "tiling" / "tiled_100_local.png").unlink()  # a fresh clone: the render is gone, its copy is published
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(docs), "--claims", "-"]) == 0
    assert target.read_text() == text


def test_keeps_the_published_tables_no_fragment_replaces(tmp_path):
    mod = load_script("make_benchmarks")
    out, target, docs = tmp_path / "out", tmp_path / "BENCHMARKS.md", tmp_path / "docs"
    (out / "bench_surfaces").mkdir(parents=True)
    (out / "bench_surfaces" / "bench_surfaces.md").write_text(
        "### Surfaces: ablations\n\nMachine: new.\n\n| b |\n\n### Surfaces: another\n\n| c |\n")
    target.write_text("# Benchmarks\n\nintro\n\n## Surfaces\n\n### Surfaces: matrix\n\nMachine: old.\n\n| a |\n\n"
                      "### Surfaces: ablations\n\nMachine: old.\n\n| stale |\n\n## GPU\n\n### GPU subset\n\n| gpu |\n")
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(docs), "--claims", "-"]) == 0
    text = target.read_text()
    surfaces = text[text.index("## Surfaces"):text.index("## Normal")]
    assert surfaces.index("### Surfaces: matrix") < surfaces.index("### Surfaces: ablations") < surfaces.index(
        "### Surfaces: another")  # published order kept, the new table after it
    assert "| a |" in surfaces and "| b |" in surfaces and "| c |" in surfaces and "stale" not in text
    assert "### GPU subset\n\n| gpu |" in text and text.count("Not measured yet") == len(mod.FRAGMENTS) - 2
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(docs), "--claims", "-"]) == 0
    assert target.read_text() == text  # assembling again changes nothing
    assert mod.main(["--out", str(out), "--output", str(target), "--docs", str(docs), "--fresh"]) == 0
    assert "| a |" not in target.read_text() and "| gpu |" not in target.read_text()


def test_the_committed_benchmarks_md_is_what_the_committed_fragments_make(tmp_path):
    import shutil

    mod = load_script("make_benchmarks")
    docs = tmp_path / "docs"
    shutil.copytree(mod.REPO / "docs" / "benchmarks", docs)  # the published pictures, as a clone has them
    published = (mod.REPO / "BENCHMARKS.md").read_text()
    assert mod.build(mod.REPO / "benchmarks", docs, published, mod.REPO / "docs" / "claims") == published


def test_claim_tables_hold_every_number_of_a_claims_json(tmp_path):
    mod = load_script("make_benchmarks")
    (tmp_path / "claim1_dip_signal_first.json").write_text(json.dumps(
        {"command": "c", "machine": "m", "config": {"lr": 0.01}, "curve": [1.0, 2.0],
         "runs": [{"k": 4, "fit": 0.123456}], "peak": {"psnr": 26.4975}}))
    (table,) = mod.claim_tables(tmp_path)
    assert table.startswith("### Claim 1: Deep Image Prior fits a natural image before it fits noise")
    assert "Machine: m. Command: `c`" in table
    assert "| runs.0.fit | 0.1235 |" in table and "| peak.psnr | 26.5 |" in table
    assert "lr" not in table and "curve" not in table  # settings and curves are not results
    assert "![claim1_dip_signal_first](docs/claims/claim1_dip_signal_first.png)" in table
