"""A large synthetic noisy scan with its true surface, for tiled reconstruction: a wavy terrain (geomprior.synthetic.
terrain_mesh, 1 × 1, heights ±0.03, 8 plane waves, seed 0) sampled uniformly with Gaussian noise, written as a
binary PLY (points only, no normals) next to the true mesh.

    python scripts/make_big_scan.py OUT_DIR [--points 1000000] [--noise 0.0005] [--seed 0]
      -> OUT_DIR/terrain_<points>.ply (the scan), OUT_DIR/terrain_truth.ply (the true mesh)

Noise: σ per coordinate = ``noise`` × the bounding-box diagonal (default 0.05%: about the point spacing of a
million points on this terrain). It prints the patch radius suited to the density (``suggested_radius``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


from geomprior.io import write_mesh, write_points
from geomprior.synthetic import noisy_scan, terrain_mesh

AREA = 1.0  # the terrain is about the unit square (its waves add well under 1% of area)
DIAGONAL = math.sqrt(2.0)


def truth(resolution: int = 600):
    """The true surface of every scan this script makes (``resolution``: grid cells per side of the mesh)."""
    return terrain_mesh(size=1.0, resolution=resolution, amplitude=0.03, waves=8, seed=0)


def suggested_radius(points: int, *, padding: float = 1.3, members: int = 288) -> float:
    """Patch radius (fraction of the diagonal) whose reach (padding × radius) holds about ``members`` points of the
    scan (3/4 of the presets' max_points, 384): larger patches are cut to their nearest 384 points anyway, and
    then the scan needs more of them."""
    reach = math.sqrt(members * AREA / (math.pi * points))
    return round(reach / padding / DIAGONAL, 5)


def make(out_dir: str | Path, points: int = 1_000_000, noise: float = 0.0005, seed: int = 0,
         resolution: int = 600) -> tuple[Path, Path]:
    """Write the scan and the true mesh into ``out_dir`` (made if missing); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mesh = truth(resolution)
    scan_path, truth_path = out / f"terrain_{points}.ply", out / "terrain_truth.ply"
    write_points(scan_path, noisy_scan(mesh, points, noise, seed))
    write_mesh(truth_path, mesh)
    return scan_path, truth_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--noise", type=float, default=0.0005, help="σ, fraction of the diagonal")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scan, true = make(args.out_dir, args.points, args.noise, args.seed)
    print(f"scan: {scan} ({args.points} points, noise {args.noise:g} of the diagonal, seed {args.seed})")
    print(f"true surface: {true}")
    print(f"suggested patch radius: --radius {suggested_radius(args.points)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
