"""Assemble BENCHMARKS.md from the tables the benchmark scripts wrote (nothing in it is typed by hand).

Each script writes a Markdown fragment that names its machine, date, command and conventions; this script puts
the fragments in order, copies the pictures they show into docs/benchmarks/ (links ``docs/benchmarks/NAME.png``
in a fragment: NAME.png beside it; renders listed in the fragment's JSON rows: embedded below it, also when only
the published copy is left, as in a fresh clone), and says which fragments are missing and how to make them. The
lecture claims' fragments are made here, from the JSON their scripts wrote under docs/claims. A
table (``### `` title) of the current BENCHMARKS.md that no fragment replaces is kept as it is, with its own
machine, date and command, so one table can be remeasured without the rows of the others (a GPU table on a machine
without one; ``--fresh``: the fragments alone).

    python scripts/make_benchmarks.py [--out benchmarks] [--output BENCHMARKS.md] [--claims docs/claims] [--fresh]
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
    ("Scans as they come", "bench_scans/bench_scans.md", "python scripts/bench_scans.py --reuse"),
    ("The outlier filter", "outlier_study.md", "python scripts/outlier_study.py"),
    ("Normal orientation (thin parts)", "normals_study.md", "python scripts/normals_study.py"),
    ("The kitten's reference normals", "reference_normals.md", "python scripts/reference_normals.py"),
    ("Speed of the core", "bench_dgp.md", "python scripts/bench_dgp.py --variants"),
    ("Where the time goes", "stage_times.md", "python scripts/stage_times.py"),
    ("Speed of a Deep Image Prior step", "dip_step_times.md", "python scripts/dip_step_times.py"),
    ("Large scans (tiling)", "tiling/bench_tiling_[0-9]*.md", "python scripts/bench_tiling.py"),
    ("Images", "bench_image/bench_image*.md", "python scripts/bench_image.py --reuse"),
    ("Images on a GPU", "gpu_image/bench_image*.md",
     "python scripts/bench_image.py --device cuda --out benchmarks/gpu_image --reuse [--preset quality]"),
    ("GPU", "gpu/bench_gpu.md", "bash scripts/bench_gpu.sh"),
    ("Lecture claims", None, "python scripts/claimN_*.py --out docs/claims"),  # made from the claims' JSON
]
CLAIM_SKIP = {"command", "machine", "quick", "config", "load_average"}  # not results
LINK = re.compile(r"\(docs/benchmarks/([\w.-]+\.png)\)")

INTRO = """# Benchmarks

Side-by-side numbers, each table measured in one run on the machine it names, by the command it names. The
tables are assembled by `python scripts/make_benchmarks.py` from the scripts' own output; rerun a script, then
this one, to update a section. Conventions of the surface metrics: DESIGN.md section 6 and `geomprior.metrics`.
"""


def _copy(src: Path, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, docs / src.name)


def _blocks(text: str) -> list[tuple[str, str]]:
    """The tables of a section: (``### `` title, its text up to the next title)."""
    found = re.split(r"^(?=### )", text, flags=re.M)
    return [(b.splitlines()[0], b.strip() + "\n") for b in found if b.startswith("### ")]


def published(text: str) -> dict[str, list[tuple[str, str]]]:
    """An assembled BENCHMARKS.md split back into its sections (``## `` headings) and their tables."""
    found = re.split(r"^## (.+)$", text, flags=re.M)
    return {name.strip(): _blocks(body) for name, body in zip(found[1::2], found[2::2])}


def _merge(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> list[str]:
    """Fresh tables replace the published ones of the same title (in order, for repeated titles) and the rest
    follow; a published table that no fresh one replaces is kept as it was, with its own machine, date and
    command (its rows may be gone: an earlier checkout, or a GPU that this machine lacks)."""
    fresh = list(new)
    merged = []
    for title, text in old:
        i = next((k for k, (t, _) in enumerate(fresh) if t == title), None)
        merged.append(text if i is None else fresh.pop(i)[1])
    return merged + [text for _, text in fresh]


def _fragment(path: Path, docs: Path) -> str:
    text = path.read_text().strip()
    for name in LINK.findall(text):
        if (path.parent / name).exists():
            _copy(path.parent / name, docs)
    rendered = path.with_suffix(".json")
    renders = json.loads(rendered.read_text()).get("rows", []) if rendered.exists() else []
    for row in renders:
        src = REPO / (row.get("render") or "")  # a relative path is the repository's
        if src.suffix != ".png":
            continue
        if src.exists():
            _copy(src, docs)
        if (docs / src.name).exists():  # published earlier: a clone has the copy, not the script's output
            text += f"\n\n![{row.get('run', src.stem)}](docs/benchmarks/{src.name})"
    return text + "\n"


def _leaves(value, prefix: str = ""):
    """(dotted key, value) for every scalar of a claim's JSON; lists of numbers (curves) are left out, lists of
    records become their rows."""
    if isinstance(value, dict):
        for key, v in value.items():
            if key not in CLAIM_SKIP:
                yield from _leaves(v, f"{prefix}{key}.")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict):
                yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), value


def claim_tables(claims: Path) -> list[str]:
    """One table per lecture claim: its script's first docstring line, the machine and command its JSON (under
    ``claims``) names, every number it recorded, and its picture."""
    import ast

    tables = []
    for path in sorted(claims.glob("claim*.json")):
        data = json.loads(path.read_text())
        script = REPO / "scripts" / f"{path.stem}.py"
        title = (ast.get_docstring(ast.parse(script.read_text())) or path.stem).splitlines()[0]
        rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in _leaves(data)]
        tables.append("\n".join([f"### {title}", "", f"Machine: {data.get('machine', '-')}. Command: "
                                  f"`{data.get('command', '-')}`", "", "| quantity | value |", "|---|---|", *rows,
                                  "", f"![{path.stem}](docs/claims/{path.stem}.png)", ""]))
    return tables


def build(out: Path, docs: Path, previous: str = "", claims: Path | None = None) -> str:
    """BENCHMARKS.md from the fragments under ``out`` (and the lecture claims' JSON under ``claims``), keeping the
    tables of ``previous`` (the file as it was) that no fragment replaces."""
    kept = published(previous)
    parts = [INTRO]
    for section, pattern, command in FRAGMENTS:
        parts.append(f"## {section}\n")
        if pattern is None:
            texts = claim_tables(claims) if claims is not None and claims.is_dir() else []
        else:
            texts = [_fragment(path, docs) for path in sorted(out.glob(pattern))]
        fresh = [b for text in texts for b in _blocks(text)]
        tables = _merge(kept.get(section, []), fresh)
        parts += tables or [f"Not measured yet: run `{command}`, then `python scripts/make_benchmarks.py`.\n"]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "benchmarks"), help="where the scripts wrote their tables")
    p.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    p.add_argument("--fresh", action="store_true",
                   help="only the fragments present (else the tables no fragment replaces are kept)")
    p.add_argument("--docs", default=str(REPO / "docs" / "benchmarks"), help="where the pictures are copied")
    p.add_argument("--claims", default=str(REPO / "docs" / "claims"),
                   help="the lecture claims' JSON and pictures (what scripts/claimN_*.py --out docs/claims wrote)")
    args = p.parse_args(argv)
    target = Path(args.output)
    previous = "" if args.fresh or not target.exists() else target.read_text()
    text = build(Path(args.out), Path(args.docs), previous, Path(args.claims))
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
