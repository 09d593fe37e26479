"""Assemble BENCHMARKS.md from the tables the benchmark scripts wrote (nothing in it is typed by hand).

Each script writes a Markdown fragment that names its machine, date, command and conventions; this script puts
the fragments in order, copies the pictures they show into docs/benchmarks/ (links ``docs/benchmarks/NAME.png``
in a fragment: NAME.png beside it; renders listed in the fragment's JSON rows: embedded below it), and says which
fragments are missing and how to make them.

    python scripts/make_benchmarks.py [--out out] [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (section, fragments under --out (a glob), command that makes them)
FRAGMENTS = [
    ("Surfaces", "bench_surfaces/bench_surfaces.md", "python scripts/bench_surfaces.py --reuse"),
    ("Normal orientation (thin parts)", "normals_study.md", "python scripts/normals_study.py"),
    ("Speed of the core", "bench_dgp.md", "python scripts/bench_dgp.py --variants"),
    ("Large scans (tiling)", "tiling/bench_tiling_[0-9]*.md", "python scripts/bench_tiling.py"),
    ("Images", "bench_image/bench_image.md", "python scripts/bench_image.py --reuse"),
    ("Images on a GPU", "gpu_image/bench_image*.md",
     "python scripts/bench_image.py --device cuda --out out/gpu_image --reuse [--preset quality]"),
    ("GPU", "gpu/bench_gpu.md", "bash scripts/bench_gpu.sh"),
]
LINK = re.compile(r"\(docs/benchmarks/([\w.-]+\.png)\)")

INTRO = """# Benchmarks

Side-by-side numbers, each table measured in one run on the machine it names, by the command it names. The
tables are assembled by `python scripts/make_benchmarks.py` from the scripts' own output; rerun a script, then
this one, to update a section. Conventions of the surface metrics: DESIGN.md section 6 and `geomprior.metrics`.
"""


def _copy(src: Path, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, docs / src.name)


def build(out: Path, docs: Path) -> str:
    parts = [INTRO]
    for section, pattern, command in FRAGMENTS:
        parts.append(f"## {section}\n")
        paths = sorted(out.glob(pattern))
        if not paths:
            parts.append(f"Not measured yet: run `{command}`, then `python scripts/make_benchmarks.py`.\n")
        for path in paths:
            text = path.read_text().strip()
            for name in LINK.findall(text):
                if (path.parent / name).exists():
                    _copy(path.parent / name, docs)
            rendered = path.with_suffix(".json")
            renders = json.loads(rendered.read_text()).get("rows", []) if rendered.exists() else []
            for row in renders:
                src = Path(row.get("render") or "")
                if src.suffix == ".png" and src.exists():
                    _copy(src, docs)
                    text += f"\n\n![{row.get('run', src.stem)}](docs/benchmarks/{src.name})"
            parts.append(text + "\n")
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
