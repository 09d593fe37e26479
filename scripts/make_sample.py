"""Make the bundled sample scan data/bunny_noisy.ply (deterministic).

20,000 points sampled uniformly (area-weighted) on the Stanford bunny, plus Gaussian noise with
σ = 0.5% of the bounding-box diagonal, seed 0, no normals.

    python scripts/make_sample.py [--mesh PATH/bunny00.off] [--out data/bunny_noisy.ply]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from geomprior.io import read_mesh, write_points
from geomprior.synthetic import noisy_scan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", type=Path, default=REPO.parent / "shared" / "data" / "shapes" / "bunny00.off",
                        help="source mesh (default: <repo>/../shared/data/shapes/bunny00.off)")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bunny_noisy.ply", help="output .ply")
    parser.add_argument("--points", type=int, default=20_000, help="number of points (default: 20000)")
    parser.add_argument("--noise", type=float, default=0.005,
                        help="noise σ as a fraction of the bounding-box diagonal (default: 0.005)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    mesh = read_mesh(args.mesh)
    points = noisy_scan(mesh, args.points, args.noise, args.seed)
    write_points(args.out, points)
    print(f"wrote {len(points)} points to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
