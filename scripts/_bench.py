"""Shared by the benchmark scripts: cached rows (one JSON file per row) and the header of a published table."""

from __future__ import annotations

import datetime
import json
import shlex
import sys
from pathlib import Path

from _scans import machine

from geomprior.io import write_json


class RowCache:
    """Rows of a benchmark kept as ``<folder>/<key>.json`` with the settings they were computed under.

    ``get(key)`` returns a row only when it was computed with the same settings; ``rows()`` lists them all.
    Lets a long table be built over several runs (``--reuse``) and survive an interruption.
    """

    def __init__(self, folder: str | Path, settings: dict):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON (tuples -> lists)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key.replace('/', '_').replace(' ', '_')}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        return saved["row"] if saved.get("settings") == self.settings else None

    def put(self, key: str, row: dict) -> None:
        write_json(str(self._path(key)), {"settings": self.settings, "row": row})

    def rows(self) -> list[dict]:
        found = (json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json")))
        return [f["row"] for f in found if f.get("settings") == self.settings]


def header(title: str, conventions: str, script: str, argv: list[str] | None, on: str | None = None) -> str:
    """Markdown heading of a published table: machine (``on``, default this one), date, the command that made it
    (``script`` run with ``argv``, default sys.argv[1:]), conventions."""
    args = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", f"scripts/{Path(script).name}", *(shlex.quote(a) for a in args)])
    return (f"### {title}\n\nMachine: {on or machine()}. Date: {datetime.date.today().isoformat()}.\n"
            f"Command: `{command}`\n\n{conventions}\n")
