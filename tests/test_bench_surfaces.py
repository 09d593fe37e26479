"""scripts/bench_surfaces.py: the scans it makes, and --quick end to end (tables, cache, plot)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_surfaces")


def test_scans_are_deterministic_and_have_their_variants(bench):
    from geomprior.metrics import point_to_mesh_distance

    ref, plain = bench.make_scan("sphere", 0.005, "", 2000)
    _, again = bench.make_scan("sphere", 0.005, "", 2000)
    np.testing.assert_array_equal(plain, again)
    diag = float(np.linalg.norm(np.ptp(np.asarray(ref.vertices), axis=0)))
    d = point_to_mesh_distance(plain, ref) / diag
    assert 0.003 < np.sqrt((d ** 2).mean()) < 0.007  # the noise: sigma = 0.5 % of the diagonal
    _, outl = bench.make_scan("sphere", 0.005, "outliers", 2000)
    assert len(outl) == 2040
    _, nonu = bench.make_scan("sphere", 0.005, "nonuniform", 2000)
    right = (nonu[:, 0] > 0).sum()
    assert len(nonu) == 2000 and 5 < (len(nonu) - right) / right < 20  # one half ~10x denser
    kitten_ref, kitten = bench.make_scan("kitten", 0.0025, "", 0) if (bench.SHAPES / "kitten.xyz").exists() else (
        None, None)
    if kitten is not None:
        assert isinstance(kitten_ref, tuple) and kitten.shape == kitten_ref[0].shape


def test_rows_from_before_a_new_config_field_stay_valid(bench):
    import dataclasses

    from geomprior.dgp import DGPConfig

    fast = DGPConfig.preset("fast")
    now, plain = bench._config_json(fast), bench._config_json(dataclasses.replace(fast, thin_parts=False))
    before = {k: v for k, v in now.items() if k != "thin_parts"}  # a row cached before the field existed
    assert bench._same_config(before, plain) and bench._same_config(now, now)
    # thin_parts' default changed from False to "auto": such a row ran with False, which differs in the normals only
    assert not bench._same_config(before, now) and bench._differs_in(before, now, "thin_parts")
    assert not bench._differs_in({**before, "widths": [1]}, now, "thin_parts")
    assert not bench._differs_in(None, now, "thin_parts")
    assert not bench._same_config({**now, "widths": [1]}, now) and not bench._same_config(None, now)
    assert bench._same_config(None, None)  # a baseline row


def test_a_row_from_before_the_surface_score_counts_as_the_transport_ablation(bench):
    import dataclasses

    from geomprior.dgp import DGPConfig

    default = DGPConfig.preset("default")
    # a default row cached before val_score existed: the transport score with the tolerance it had then
    before = {k: v for k, v in bench._config_json(dataclasses.replace(default, tolerance=0.01)).items()
              if k != "val_score"}
    transport = dataclasses.replace(default, **bench.ABLATIONS["transport validation (the former score)"])
    assert bench._same_config(before, bench._config_json(transport))
    assert not bench._same_config(before, bench._config_json(default))


def test_ablations_option_picks_the_rows_and_their_point_counts(bench):
    import argparse

    args = argparse.Namespace(quick=False, shapes=["bunny00", "kitten"], points=20_000, samples=1000, max_epochs=None,
                              ablations=["default", "default, 5,000 points",
                                         "Sinkhorn-divergence loss, 5,000 points"])
    jobs = bench.ablation_jobs(args)
    assert [(j["shape"], j["ablation"], j["points"]) for j in jobs] == [
        ("bunny00", "default", 20_000), ("bunny00", "default, 5,000 points", 5_000),
        ("bunny00", "Sinkhorn-divergence loss, 5,000 points", 5_000)]
    assert len({j["key"] for j in jobs}) == 3
    args.ablations = ["default", "default, fit seed 1", "default, fit seed 2"]
    jobs = bench.ablation_jobs(args)
    assert [j.get("seed") for j in jobs] == [None, 1, 2] and len({j["key"] for j in jobs}) == 3
    configs = [bench._config_json(bench._config(j["method"], j["overrides"], None)) for j in jobs]
    assert configs[0] == configs[1] == configs[2]  # the same DGPConfig: only the seed differs


def test_noise_option_picks_the_matrix_scans(bench):
    import argparse

    def scans(noise, variants=bench.VARIANTS):
        args = argparse.Namespace(quick=False, shapes=["sphere"], noise=noise, methods=["fast"], points=1000,
                                  samples=1000, max_epochs=None, variants=list(variants))
        return [(j["noise"], j["variant"]) for j in bench.matrix_jobs(args)]

    # the outlier and non-uniform variants are 0.5 % scans: they come with 0.005 only
    assert scans([0.01]) == [(0.01, "")]
    assert scans([0.0025, 0.005]) == [(0.0025, ""), (0.005, ""), (0.005, "outliers"), (0.005, "nonuniform")]
    assert scans([0.005], variants=[]) == [(0.005, "")]


def test_winners_names_the_scans_a_peer_wins(bench):
    def row(shape, method, chamfer):
        return {"shape": shape, "noise": 0.005, "variant": "", "method": method, "chamfer_l1": chamfer,
                "normal_consistency": 0.9}

    rows = [row("sphere", "fast", 0.002), row("sphere", "default", 0.003), row("sphere", "poisson9", 0.0025),
            row("plate", "default", 0.004), row("plate", "bpa", 0.003), row("plate", "poisson8", float("nan")),
            row("plate", bench.NO_FIT, 0.001)]  # no peer, and not geomprior's best: what the fit adds
    text = "\n".join(bench.winners(rows))
    assert "| sphere | 0.5% | - | fast (0.002000) | fast (0.9000) | fast -20.0 % vs poisson9 |" in text
    assert "| plate | 0.5% | - | bpa (0.003000) | default (0.9000) | default +33.3 % vs bpa |" in text
    assert "A peer wins 1 of 2 scans: plate 0.5% plain (bpa)." in text
    assert ("Against the default preset alone a peer wins 2: sphere 0.5% plain (poisson9); plate 0.5% plain (bpa)."
            in text)


def test_fit_gain_counts_the_scans_where_the_fit_beats_its_own_mesh_stage(bench):
    def row(shape, method, chamfer, nc):
        return {"shape": shape, "noise": 0.005, "variant": "", "method": method, "chamfer_l1": chamfer,
                "normal_consistency": nc}

    rows = [row("sphere", "default", 0.002, 0.99), row("sphere", bench.NO_FIT, 0.003, 0.98),
            row("plate", "default", 0.004, 0.97), row("plate", bench.NO_FIT, 0.003, 0.96),
            row("torus", "default", 0.002, 0.99), row("torus", "poisson9", 0.003, 0.98)]  # no nofit row: left out
    (line, _) = bench.fit_gain(rows)
    assert "Chamfer-L1 is lower on 1 of 2 scans (not on plate 0.5% plain), its normal consistency higher on 2." in line
    assert bench.fit_gain(rows[4:]) == []


def test_time_ratio_only_between_rows_of_one_run(bench):
    def row(method, seconds, run):
        return {"shape": "bunny00", "noise": 0.005, "variant": "", "points": 20_000, "method": method,
                "seconds": seconds, "run": run, "machine": "CPU X", "threads": 2, "load": 1.0}

    same = "\n".join(bench.time_ratio([row("poisson9", 2.0, "r1"), row("default", 19.0, "r1"),
                                       {**row("default", 1.0, "r1"), "noise": 0.01}]))
    assert "19.0 s / 2.0 s = 9.5×" in same and "r1, CPU X" in same
    apart = "\n".join(bench.time_ratio([row("poisson9", 2.0, "r1"), row("default", 19.0, "r2")]))
    assert "different runs" in apart and "×" not in apart
    assert bench.time_ratio([row("default", 19.0, "r1")]) == []


def test_seed_spread_over_the_three_fit_seeds_of_one_scan(bench):
    def row(shape, ablation, cd):
        return {"shape": shape, "ablation": ablation, "chamfer_l1": cd}

    seeds = ("default", "default, fit seed 1", "default, fit seed 2")
    rows = [row("fandisk", name, cd) for name, cd in zip(seeds, (0.0021, 0.0020, 0.0022))]
    rows += [row("fandisk", "widths 32-32-32", 0.0040), row("bunny00", "default", 0.0019)]  # not a seed / one seed
    rows += [row("bunny00", f"default, uneven sampling{s}", cd) for s, cd in ((", fit seed 2", 0.0025), ("", 0.0026),
                                                                             (", fit seed 1", 0.0025))]
    line = "\n".join(bench.seed_spread(rows))
    assert "fandisk plain 10.0 % (0.002000–0.002200)" in line
    assert "bunny00 nonuniform 4.0 % (0.002500–0.002600)" in line
    assert "bunny00 plain" not in line
    assert bench.seed_spread(rows[3:5]) == []


def test_rows_of_another_machine_are_marked(bench):
    def row(method, machine=None):
        r = {"shape": "sphere", "noise": 0.005, "variant": "", "method": method, "chamfer_l1": 0.002,
             "hausdorff": 0.01, "normal_consistency": 0.99, "fscore": 1.0, "seconds": 3.0, "peak_mb": 500.0}
        return r if machine is None else {**r, "machine": machine}

    rows = [row("fast"), row("default"), row("poisson9", "CPU Y")]  # the first two: before rows named it
    assert bench._table_machine(rows) == bench.EARLIER_MACHINE
    lines = bench._quality_table(rows, "method")
    assert [line.count("§") for line in lines[2:5]] == [0, 0, 1]
    assert "§ rows measured on another machine than the table's: CPU Y (1 rows)" in "\n".join(lines)
    assert not any("§" in line for line in bench._quality_table(rows[:2], "method"))


def test_against_counts_the_rows_a_revision_had_and_lists_the_worse_ones(bench, tmp_path):
    import subprocess

    def row(key, method, chamfer, seconds=1.0):
        return {"key": key, "shape": "plate", "noise": 0.01, "variant": "", "method": method, "chamfer_l1": chamfer,
                "normal_consistency": 0.8, "seconds": seconds}

    then = [row("a", "default", 0.010), row("b", "fast", 0.010), row("c", "default", 0.010), row("p", "bpa", 0.01)]
    (tmp_path / "matrix").mkdir()
    for r in then:
        (tmp_path / "matrix" / f"{r['key']}.json").write_text(json.dumps({"row": r}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "rows"]):
        subprocess.run([*git, *args], check=True)
    now = [row("a", "default", 0.011), row("b", "fast", 0.009), row("c", "default", 0.010),
           row("d", "default", 0.5), row("p", "bpa", 0.5)]  # c: the same row; d: not at the revision; p: a peer
    text = "\n".join(bench.against(now, "HEAD", "then", tmp_path))
    assert ("of 2 geomprior rows, Chamfer-L1 more than 1 % lower on 1, within 1 % on 0, more than 1 % higher on 1"
            in text)
    assert "(1 more not remeasured since):" in text
    assert "| plate | 1% | - | default | 0.010000 → 0.011000 (+10.0 %) | 0.8000 → 0.8000 |" in text
    assert "| fast |" not in text and bench.against(now, "no-such-rev", "then", tmp_path) == []


def test_a_row_with_other_normals_settings_is_reused_only_with_the_same_normals(bench, tmp_path, monkeypatch):
    import dataclasses

    job = bench._job("sphere", 0.005, "", "fast", 1000, 2000, max_epochs=5)
    old = bench._config_json(dataclasses.replace(bench._config("fast", {}, 5), thin_parts=False))
    metrics = dict(chamfer_l1=0.5, hausdorff=0.5, normal_consistency=0.5, fscore=0.5, seconds=1.0, peak_mb=1.0)
    cached = {**job, "config": old, **metrics}
    cache = bench.RowCache(tmp_path, {"x": 1})
    cache.put(job["key"], cached)
    assert bench.run_rows([job], cache, reuse=False, cached_only=True) == ([], [job])  # no check computed there
    # a sphere gets the same normals with "auto": the row is reused as it is, and keeps the check
    (row,), _ = bench.run_rows([job], cache, reuse=True, fresh_process=False)
    assert row["chamfer_l1"] == 0.5 and row["normals_check"]["same"] and row["normals_check"]["thin_parts"] == "auto"
    assert bench.run_rows([job], cache, reuse=False, cached_only=True) == ([row], [])
    table = "\n".join(bench._quality_table([row], "method"))
    assert "1.0† (" in table and "1 rows ran with thin_parts=False" in table
    # other normals: the row is computed again
    monkeypatch.setattr(bench, "_normals_check", lambda job, saved: {"thin_parts": "auto", "same": False,
                                                                     "extra_seconds": 0.0})
    cache.put(job["key"], cached)
    (row,), _ = bench.run_rows([job], cache, reuse=True, fresh_process=False)
    assert row["chamfer_l1"] < 0.05 and "normals_check" not in row and row["config"]["thin_parts"] == "auto"


def test_a_row_from_before_the_adaptive_radius_is_reused_where_its_scan_keeps_the_radius(bench, tmp_path):
    jobs = [bench._job("sphere", noise, "", "fast", 1000, 2000, max_epochs=5) for noise in (0.01, 0.001)]
    current = bench._config_json(bench._config("fast", {}, 5))
    old = {k: v for k, v in current.items() if k != "adapt_radius"}  # cached before the field: a fixed radius
    metrics = dict(chamfer_l1=0.5, hausdorff=0.5, normal_consistency=0.5, fscore=0.5, seconds=1.0, peak_mb=1.0)
    cache = bench.RowCache(tmp_path, {"x": 1})
    for job in jobs:
        cache.put(job["key"], {**job, "config": old, **metrics})
    (noisy, quiet), _ = bench.run_rows(jobs, cache, reuse=True, fresh_process=False)
    assert noisy["chamfer_l1"] == 0.5 and noisy["radius_check"] == {"adapt_radius": True, "radius": 0.05,
                                                                      "same": True}
    assert quiet["chamfer_l1"] < 0.05 and "radius_check" not in quiet and quiet["config"] == current


def test_a_row_with_a_former_defaults_is_shown_marked_until_computed_again(bench, tmp_path):
    import dataclasses

    job = bench._job("sphere", 0.005, "", "fast", 1000, 2000, max_epochs=5)
    current = bench._config_json(bench._config("fast", {}, 5))
    old = {k: v for k, v in current.items() if k not in bench.SINCE}  # cached before the fields: former meshes
    assert bench._differs_in(old, current, bench.SINCE) and not bench._same_config(old, current)
    assert not bench._differs_in(old, current, "surface")  # its mesh_points differ too
    cache = bench.RowCache(tmp_path, {"x": 1})
    cache.put(job["key"], {**job, "config": old, "chamfer_l1": 0.5, "hausdorff": 0.5, "normal_consistency": 0.5,
                           "fscore": 0.5, "seconds": 1.0, "peak_mb": 1.0})
    (row,), missing = bench.run_rows([job], cache, reuse=False, cached_only=True)
    assert missing == [] and row["former_defaults"] and "former_defaults" not in cache.get(job["key"])
    table = "\n".join(bench._quality_table([row], "method"))
    assert "1.0‡ (" in table and "1 rows ran with former defaults" in table
    # another setting as well: not shown; computing (not cached_only) runs it again with the manifold mesh
    cache.put(job["key"], {**cache.get(job["key"]), "config": {**old, "widths": [1]}})
    assert bench.run_rows([job], cache, reuse=False, cached_only=True) == ([], [job])
    (row,), _ = bench.run_rows([job], cache, reuse=True, fresh_process=False)
    assert "former_defaults" not in row and row["config"] == current
    assert dataclasses.asdict(bench._config("fast", {}, 5))["surface"] == "manifold"
    assert dataclasses.asdict(bench._config("fast", {}, 5))["mesh_points"] == "fitted"


def test_a_row_runs_in_a_fresh_process(bench, tmp_path):
    job = bench._job("sphere", 0.005, "", "poisson8", 1000, 2000)
    cache = bench.RowCache(tmp_path, {"x": 1})
    (row,), missing = bench.run_rows([job], cache, reuse=False)
    assert missing == []
    assert cache.get(job["key"]) == row
    assert row["n_input"] == 1000 and row["chamfer_l1"] < 0.05 and row["peak_mb"] > 50


def test_device_option_fits_there_and_the_table_names_the_gpu(bench, tmp_path, monkeypatch):
    import torch

    from geomprior.synthetic import sphere_mesh

    seen = []

    def fake_reconstruct(method, points, cfg, device="cpu", seed=0):
        seen.append(device)
        return sphere_mesh(resolution=20), {"steps": 7, "best_step": [5], "reason": "fake"}

    monkeypatch.setattr(bench, "_reconstruct", fake_reconstruct)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 80GB")
    assert bench.main(["--quick", "--suite", "ablations", "--device", "cuda", "--out", str(tmp_path)]) == 0
    assert seen and set(seen) == {"cuda"}
    text = (tmp_path / "bench_surfaces_quick.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| sphere")]
    assert rows and all("(Fake GPU 80GB) |" in line for line in rows)
    cpu_row = {**json.loads((tmp_path / "bench_surfaces_quick.json").read_text())["ablations"][0], "threads": 2,
               "load": 1.5}
    del cpu_row["gpu"]
    assert "(2, 1.5) |" in bench._quality_table([cpu_row], "setting")[2]


def test_quick_runs_and_reuses(bench, tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "bench_surfaces_quick.json").read_text())
    assert {r["method"] for r in summary["matrix"]} == {"fast", "poisson8"}
    assert len(summary["scaling"]) == 4 and len(summary["ablations"]) == 2
    for rows in summary.values():
        for r in rows:
            assert math.isfinite(r["chamfer_l1"]) and r["chamfer_l1"] < 0.05 and r["seconds"] > 0
    text = (tmp_path / "bench_surfaces_quick.md").read_text()
    assert "Machine:" in text and "Command:" in text and "Fitted exponents" in text
    assert {(r["machine"], r["run"]) for rows in summary.values() for r in rows} == {(bench.machine(), bench.RUN)}
    assert (tmp_path / "scaling_quick.png").stat().st_size > 1000
    capsys.readouterr()
    assert bench.main(["--quick", "--out", str(tmp_path), "--reuse", "--suite", "matrix"]) == 0
    assert "Chamfer-L1 0." not in capsys.readouterr().out.split("###")[0]  # nothing recomputed
    assert bench.main(["--quick", "--out", str(tmp_path), "--cached-only"]) == 0
    assert "Not measured yet" not in (tmp_path / "bench_surfaces_quick.md").read_text()


def test_cached_only_computes_nothing_and_lists_the_missing_rows(bench, tmp_path, capsys):
    # nothing cached: no table written (make_benchmarks keeps the published one)
    assert bench.main(["--quick", "--out", str(tmp_path), "--cached-only"]) == 0
    assert "no rows yet" in capsys.readouterr().err and not (tmp_path / "bench_surfaces_quick.md").exists()
    assert bench.main(["--quick", "--out", str(tmp_path), "--suite", "matrix", "--methods", "poisson8"]) == 0
    capsys.readouterr()
    assert bench.main(["--quick", "--out", str(tmp_path), "--cached-only", "--suite", "matrix", "scaling"]) == 0
    printed = capsys.readouterr()
    assert "Chamfer-L1 0." not in printed.out.split("###")[0] and "left out: scaling" in printed.err
    summary = json.loads((tmp_path / "bench_surfaces_quick.json").read_text())
    assert [r["method"] for r in summary["matrix"]] == ["poisson8"] and "scaling" not in summary
    text = (tmp_path / "bench_surfaces_quick.md").read_text()
    assert "Not measured yet (1 rows):\n\n- sphere 0.5% plain (1,000 points): fast\n" in text


def test_normals_study_quick(tmp_path):
    study = load_script("normals_study")
    assert study.main(["--quick", "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "normals_study_quick.json").read_text())["scans"]
    # a sphere: both estimates face the right way everywhere, agree, and "auto" keeps the plain one
    assert row["plain_facing"] > 0.99 and row["thin_facing"] > 0.99 and row["disagree"] < 0.01
    assert row["auto"] == "plain"
    (dense,) = json.loads((tmp_path / "normals_study_quick.json").read_text())["dense"]
    assert dense["neighbours"] == 30 and dense["fixed_cos"] == dense["adapted_cos"] > 0.9  # sparse: the same 30
    text = (tmp_path / "normals_study_quick.md").read_text()
    assert "Machine:" in text and "| sphere 0.5% plain seed 0 | 2000 |" in text
    assert "### Normal estimate: neighbours against density" in text and "| sphere 0.5% plain | 2000 | 30 |" in text


def test_an_mls_row_keeps_the_best_filter_scale(bench):
    pytest.importorskip("pymeshlab")
    row = bench._row(bench._job("sphere", 0.005, "", "apss", 1000, 2000))
    assert [t["filter_scale"] for t in row["scales"]] == list(bench.MLS_SCALES)
    assert row["chamfer_l1"] == min(t["chamfer_l1"] for t in row["scales"]) < 0.05
    assert "(scale " in bench._quality_table([row], "method")[2]


def test_reference_normals_quick(tmp_path):
    """scripts/reference_normals.py --quick: the kitten's normals are found to be a PCA estimate, and on a sphere
    (where PCA normals of clean points are nearly true) the three references score every method alike."""
    pytest.importorskip("pymeshlab")
    study = load_script("reference_normals")
    if not (study.SHAPES / "kitten.xyz").exists():
        pytest.skip("kitten.xyz is not in ../shared/data/shapes")
    assert study.main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "reference_normals_quick.json").read_text())
    best = min(res["kitten"], key=lambda r: r["mean"])
    assert res["k"] == best["k"] and best["mean"] < 1e-3  # the file's normals are a k-NN PCA estimate
    assert [r["method"] for r in res["rows"]] == ["fast", *study.PEERS]
    for r in res["rows"]:
        nc = [r[ref]["normal_consistency"] for ref in study.REFERENCES]
        assert min(nc) > 0.97 and max(nc) - min(nc) < 0.005, r
    (gap,) = res["gaps"]
    assert all(abs(gap[ref]["gap"]) < 0.02 for ref in study.REFERENCES)
    # the kitten's budget: the fit's points lie nearer their clean points than the scan's do; meshed, the clean
    # points score best
    fit, clean, noisy, apss = res["budget"]["rows"]
    assert clean["offset_rms"] == 0 < fit["offset_rms"] < noisy["offset_rms"]
    assert clean["normal_consistency"] > max(fit["normal_consistency"], noisy["normal_consistency"])
    assert apss["points"].startswith("APSS (scale ") and apss["offset_rms"] is None
    text = (tmp_path / "reference_normals_quick.md").read_text()
    assert "### The kitten's reference normals" in text and "| sphere | apss (scale " in text
    assert "### Where the kitten's normal consistency goes" in text


def test_outlier_study_quick(tmp_path):
    """scripts/outlier_study.py --quick: on a 2 % outlier sphere the filter keeps fewer outliers than the counts
    alone, none of them 8 σ off, and drops no surface point; the table names both."""
    study = load_script("outlier_study")
    assert study.main(["--quick", "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "outlier_study_quick.json").read_text())["rows"]
    counts, full = row["counts"], row["filter"]
    assert row["outliers"] == 40 and row["beyond_8"] > 20
    assert full["kept"] < counts["kept"] and full["kept_beyond_8"] == 0 and full["surface_dropped"] == 0
    assert "| sphere | 2040 | 40 (" in (tmp_path / "outlier_study_quick.md").read_text()

def test_reference_normals_gap_is_against_the_best_peer():
    study = load_script("reference_normals")
    rows = [{"shape": "s", "method": m, **{ref: {"normal_consistency": nc + i * 0.001} for i, ref in
                                           enumerate(study.REFERENCES)}}
            for m, nc in (("default", 0.95), ("apss", 0.96), ("rimls", 0.94))]
    (gap,) = study.gaps(rows, "default")
    assert gap["surface"] == {"gap": pytest.approx(-0.01), "best_peer": "apss"}


def test_the_no_fit_rows_mesh_the_scan_points_and_fit_nothing(bench, monkeypatch):
    """A "nofit" row (and the ablation that runs it): the default's mesh stage on the scan's own points, nearer the
    sphere than Poisson's mesh of them; no fit runs (reconstruct would call fit_dense)."""
    import argparse

    import geomprior.dgp as dgp

    monkeypatch.setattr(dgp, "fit_dense", lambda *a, **k: pytest.fail("a fit ran"))
    args = argparse.Namespace(quick=False, shapes=["bunny00"], points=20_000, samples=1000, max_epochs=None,
                              ablations=["no fit (the mesh stage on the scan's points)"])
    assert [j["method"] for j in bench.ablation_jobs(args)] == [bench.NO_FIT]
    row = bench._row(bench._job("sphere", 0.005, "", bench.NO_FIT, 2000, 20_000))
    poisson = bench._row(bench._job("sphere", 0.005, "", "poisson9", 2000, 20_000))
    assert "epochs" not in row and row["config"]["radius"] == bench._config("default", {}, None).radius
    assert row["chamfer_l1"] < poisson["chamfer_l1"] and row["normal_consistency"] > poisson["normal_consistency"]
