"""Assemble BENCHMARKS.md from the tables the benchmark scripts wrote (nothing in it is typed by hand).

Each script writes a Markdown fragment that names its machine, date, command and conventions; this script puts
the fragments in order, copies the pictures they show into docs/benchmarks/, and says which ones are missing and
how to make them.

    python scripts/make_benchmarks.py [--out out] [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (section, fragment under --out, pictures it shows (under --out -> docs/benchmarks/), command that makes it)
FRAGMENTS = [
    ("Surfaces", "bench_surfaces/bench_surfaces.md", ["bench_surfaces/scaling.png"],
     "python scripts/bench_surfaces.py --reuse"),
    ("Speed of the core", "bench_dgp.md", [], "python scripts/bench_dgp.py --variants"),
    ("Large scans (tiling)", "bench_tiling/bench_tiling.md", ["bench_tiling/tiled.png"],
     "python scripts/bench_tiling.py"),
    ("Images", "bench_image/bench_image.md", [], "python scripts/bench_image.py --reuse"),
    ("GPU", "gpu/bench_gpu.md", [], "bash scripts/bench_gpu.sh"),
]

INTRO = """# Benchmarks

Side-by-side numbers, each table measured in one run on the machine it names, by the command it names. The
tables are assembled by `python scripts/make_benchmarks.py` from the scripts' own output; rerun a script, then
this one, to update a section. Conventions of the surface metrics: DESIGN.md section 6 and `geomprior.metrics`.
"""


def build(out: Path, docs: Path) -> str:
    parts = [INTRO]
    for section, fragment, pictures, command in FRAGMENTS:
        parts.append(f"## {section}\n")
        path = out / fragment
        if not path.exists():
            parts.append(f"Not measured yet: run `{command}`, then `python scripts/make_benchmarks.py`.\n")
            continue
        parts.append(path.read_text().strip() + "\n")
        for picture in pictures:
            src = out / picture
            if src.exists():
                docs.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, docs / src.name)
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "out"), help="where the scripts wrote their tables")
    p.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    p.add_argument("--docs", default=str(REPO / "docs" / "benchmarks"), help="where the pictures are copied")
    args = p.parse_args(argv)
    text = build(Path(args.out), Path(args.docs))
    tmp = Path(args.output).with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
