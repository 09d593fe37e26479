"""Where does the automatic stop land, against the oracle epoch (closest to the TRUE surface)?

For each scan (20k points on the bunny / fandisk, noise σ = 0.5% of the diagonal, no normals) the local fit runs
to the cap with the validation curve recorded (held-out points; DGPConfig.val_score: their offset from the surface,
or with ``--val-score transport`` the former exact-matching transport cost), while a monitor measures the dense
output's mean distance to the true surface (the oracle; never used to stop). The default stopping rule (with the
tolerance that goes with the score) is then replayed on the recorded validation curve.

    python scripts/early_stop_study.py [--shapes bunny00 fandisk] [--points 20000] [--epochs 400]
                                       [--val-score surface|transport] [--out out/]

Writes early_stop_study.json and early_stop_study.png in --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from _scans import machine, scan

from geomprior.dgp import SCORE_TOLERANCE, DGPConfig, reconstruct
from geomprior.io import write_json
from geomprior.metrics import point_to_mesh_distance
from geomprior.patches import bbox_diagonal


def study(name: str, n_points: int, epochs: int, *, noise: float = 0.005, config: DGPConfig | None = None,
          seed: int = 0) -> dict:
    """Run the local fit of scan ``name`` (see :func:`_scans.scan`) to ``epochs`` with the true-surface monitor and
    replay the stopping rule of ``config`` (default preset) on its validation curve."""
    mesh, noisy = scan(name, n_points=n_points, noise=noise, seed=seed)
    diag = bbox_diagonal(np.asarray(mesh.vertices))
    base = config or DGPConfig.preset("default")
    cfg = dataclasses.replace(base, early_stop="run", patience=10**6, max_epochs=epochs, consistency=False)

    def oracle(points, normals):
        return {"true_distance": float(point_to_mesh_distance(points, mesh).mean() / diag)}

    t = time.perf_counter()
    rec = reconstruct(noisy, config=cfg, monitor=oracle, device="cpu", seed=seed)
    h = rec.history["local"]
    stop, best = base.stopper("run").replay(h["step"], h["val"])
    dist = dict(zip(h["step"], h["true_distance"]))
    oracle_step = min(dist, key=dist.get)
    return {
        "shape": name, "points": n_points, "noise": noise, "patches": rec.history["patches"],
        "val_score": base.val_score, "seconds": time.perf_counter() - t,
        "noisy_input_distance": float(point_to_mesh_distance(noisy, mesh).mean() / diag),
        "rule_stops_at": stop, "rule_keeps_step": best, "oracle_step": oracle_step,
        "distance_at_rule": dist[best], "distance_at_oracle": dist[oracle_step], "distance_at_cap": dist[h["step"][-1]],
        "curve": {"step": h["step"], "val": h["val"], "true_distance": h["true_distance"]},
    }


def plot(results: list[dict], path: str | None = None):
    """One panel per result: distance to the true surface per step, the oracle step, the step the automatic stop
    keeps, the validation curve. Saved to ``path`` when given; returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        c = r["curve"]
        ax.plot(c["step"], c["true_distance"], "k-", label="distance to true surface (oracle)")
        ax.axhline(r["noisy_input_distance"], color="grey", ls=":", label="noisy input")
        ax.axvline(r["oracle_step"], color="g", ls="--", label=f"oracle best (step {r['oracle_step']})")
        ax.axvline(r["rule_keeps_step"], color="r", ls="-.", label=f"automatic stop keeps step {r['rule_keeps_step']}")
        ax.set_xlabel("step")
        ax.set_ylabel("mean distance / bbox diagonal")
        ax2 = ax.twinx()
        ax2.plot(c["step"], c["val"], "b-", alpha=0.5)
        ax2.set_ylabel(f"validation score ({r.get('val_score', 'transport')})", color="b")
        ax.set_title(r["shape"])
        ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["bunny00", "fandisk"])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--val-score", choices=tuple(SCORE_TOLERANCE), default=DGPConfig.val_score)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    import os

    os.makedirs(args.out, exist_ok=True)
    config = dataclasses.replace(DGPConfig.preset("default"), val_score=args.val_score,
                                 tolerance=SCORE_TOLERANCE[args.val_score])
    results = [study(s, args.points, args.epochs, config=config) for s in args.shapes]
    print(f"machine: {machine()}; validation score: {args.val_score}")
    print("| shape | rule stops at | keeps step | oracle step | dist @ kept | dist @ oracle | dist @ cap | noisy input |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['shape']} | {r['rule_stops_at']} | {r['rule_keeps_step']} | {r['oracle_step']} | "
              f"{r['distance_at_rule']:.6f} | {r['distance_at_oracle']:.6f} | {r['distance_at_cap']:.6f} | "
              f"{r['noisy_input_distance']:.6f} |")
    write_json(os.path.join(args.out, "early_stop_study.json"), {"machine": machine(), "results": results})
    plot(results, os.path.join(args.out, "early_stop_study.png"))


if __name__ == "__main__":
    main()
