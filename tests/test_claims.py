"""The lecture's claims (scripts/claim*.py) at their --quick size: each writes its PNG and JSON, and the effect it
illustrates goes the right way (directions, not float snapshots)."""

from __future__ import annotations

import json
from pathlib import Path

from _scripts import load_script

PNG = b"\x89PNG\r\n\x1a\n"


def run_quick(stem: str, out: Path) -> dict:
    assert load_script(stem).main(["--quick", "--out", str(out)]) == 0
    png = (out / f"{stem}.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 5000
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    record = json.loads((out / f"{stem}.json").read_text())
    assert record["quick"] and record["command"].endswith("--quick --out " + str(out)) and record["seconds"] > 0
    return record


def test_dip_fits_the_image_before_the_noise(tmp_path):
    r = run_quick("claim1_dip_signal_first", tmp_path)
    clean, noise, noisy = r["curves"].values()
    never = float("inf")
    for level in ("0.01", "0.003"):  # the clean image gets there first, the pure noise later
        assert (clean["iterations_to_loss"][level] or never) < (noise["iterations_to_loss"][level] or never)
    mid = len(clean["loss"]) // 4
    assert clean["loss"][mid] < noise["loss"][mid] and clean["loss"][mid] < noisy["loss"][mid]
    # the fit of the noisy image comes closer to the clean image than the noisy input, then moves away again
    assert noisy["peak_psnr"] > noisy["input_psnr"] + 2
    assert noisy["peak_psnr"] > noisy["final_psnr"] + 1
    assert 0 < noisy["peak_step"] < noisy["final_step"]


def test_under_parameterised_deep_decoder_cannot_fit_noise(tmp_path):
    r = run_quick("claim2_dd_cannot_fit_noise", tmp_path)
    rows = r["noise_fit"]
    fractions = [row["fitted_fraction"] for row in rows]
    assert fractions == sorted(fractions) and fractions[0] < fractions[-1]  # more weights fit more noise
    assert all(0 <= f < 1 for f in fractions)
    for row in rows:
        if row["parameter_ratio"] < 1:  # fewer weights than pixel values: well under the whole noise energy
            assert row["fitted_fraction"] < 0.5
    den = r["denoise"]
    assert den["parameter_ratio"] < 1
    assert den["final_psnr"] > den["input_psnr"]  # it denoises ...
    assert den["final_psnr"] > den["peak_psnr"] - 0.5  # ... and, run to the end, stays near its best


def test_dgp_fits_the_shape_before_the_noise(tmp_path):
    r = run_quick("claim3_dgp_shape_first", tmp_path)["result"]
    assert r["fell_by"] > 0 and r["rose_by"] > 0 and r["minimum_inside"]  # falls, bottoms out, rises
    assert r["distance_min"] < r["noisy_input_distance"]
    assert r["rule_stops_at"] is not None and r["rule_stops_at"] <= r["last_step"]  # the stop lands in the run
    assert r["distance_at_rule"] < r["distance_at_start"] and r["distance_at_rule"] < r["distance_at_cap"]


def test_dip_inpaints_random_pixels_better_than_large_holes(tmp_path):
    r = run_quick("claim4_dip_superres_inpaint", tmp_path)
    holes, pixels = r["inpainting"]["large holes"], r["inpainting"]["random pixels"]
    assert abs(holes["missing_fraction"] - pixels["missing_fraction"]) < 1e-9  # the same share is missing
    assert pixels["dip_hole_psnr"] > holes["dip_hole_psnr"] + 2
    assert pixels["biharmonic_hole_psnr"] > holes["biharmonic_hole_psnr"] + 2
    sr = r["superresolution"]
    assert sr["dip_psnr"] > 10 and sr["bicubic_psnr"] > 10


def test_compressed_sensing_dip_needs_early_stopping_and_dd_does_not(tmp_path):
    r = run_quick("claim5_cs_dd_vs_dip", tmp_path)
    (noise, run), = r["runs"].items()
    assert float(noise) > 0  # the quick run has noisy measurements
    dd, dip = run["dd"], run["dip"]
    assert dd["parameter_ratio"] < 1 < dip["parameter_ratio"]
    assert dd["drop_db"] < 0.5  # the Deep Decoder ends near its best ...
    assert dip["drop_db"] > 1 and dip["drop_db"] > dd["drop_db"] + 1  # ... DIP falls well below its peak


def test_image_adaptive_gan_goes_beyond_the_generators_range(tmp_path):
    r = run_quick("claim6_learned_priors", tmp_path)
    assert set(r["results"]) == {"held-out digits", "letters"} and set(r["methods"]) == {
        "csgm", "iagan", "lcm", "dip", "dd", "tv"}
    # adapting the generator to the image fits it closer than its latent alone can, on digits and on letters
    assert r["verdicts"]["held-out: IAGAN - CSGM"] > 0 and r["verdicts"]["letters: IAGAN - CSGM"] > 0
    assert r["digit_indices"] and r["generator"]["held_out"] is None  # the indices are recorded once
