"""The package's shape: its modules import each other without a cycle (counting imports inside functions too), the
library's errors speak of its own arguments, not of command-line flags (those are the CLI's), and its modules and
functions stay small enough to read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "geomprior"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules that the file at ``path`` imports, anywhere in it."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # "from a import b" imports a.b when it is a module, else a name of a
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module(f) for f in files}
    return {_module(f): _imports(f, modules) for f in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan); a package importing its own submodules from its
    __init__ and a submodule importing that package's name is left out (that is how packages are built)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _without_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without a submodule's edge to its own package (``from geomprior.x import y`` inside x/z.py)."""
    return {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}


def test_the_package_has_no_import_cycle():
    graph = _without_package_edges(import_graph())
    assert "geomprior.cli.image" in graph and "geomprior.dgp" in graph["geomprior.tiling"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _raised_texts(path: Path) -> list[str]:
    """The string pieces of every ``raise X(...)`` in a file."""
    texts = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            texts += [c.value for arg in node.exc.args for c in ast.walk(arg)
                      if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return texts


def test_library_errors_do_not_name_command_line_flags():
    flag = re.compile(r"(^|\s|`)--[a-z]")
    found = [(str(f.relative_to(PACKAGE)), t) for f in sorted(PACKAGE.rglob("*.py")) if "cli" not in f.parts
             for t in _raised_texts(f) if flag.search(t)]
    assert found == []
    assert flag.search("use --radius") and not flag.search("a-b --") and _raised_texts(PACKAGE / "cli" / "surface.py")


def test_modules_and_functions_stay_small():
    """No module of geomprior above 600 lines; no function above 80 without a "Long:" reason in its docstring."""
    root = PACKAGE
    too_long = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 600:
            too_long.append(f"{path.relative_to(root)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80 and "Long:" not in (ast.get_docstring(node) or ""):
                    too_long.append(f"{path.relative_to(root)}: {node.name}() {length} lines")
    assert not too_long, too_long
