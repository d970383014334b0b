"""predict's outputs: a readable table, and CSV or JSON Lines files written as the results come."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.atomic import check_not_input, check_writable
from ..core.errors import UserError
from ..data.paths import what_is

FORMATS = (".csv", ".jsonl")
FIELDS = ("label", "index", "probability")  # of each ranked class


def table(results: list[dict[str, Any]]) -> str:
    """One block per image: its file, then a line per class with rank, probability (? if not finite), index and
    label."""
    lines = []
    for entry in results:
        lines.append(entry["file"])
        for rank, top in enumerate(entry["top"], start=1):
            p = top["probability"]
            shown = "      ?" if p is None else f"{100 * p:6.2f}%"
            lines.append(f"  {rank:>2}  {shown}  {top['index']:>5}  {top['label']}")
    return "\n".join(lines)


class ResultWriter:
    """Writes entries to `path` as they come, into `path`.partial, renamed to `path` once the run completes."""

    def __init__(self, path: Path, top_k: int):
        self.path, self.partial = path, path.with_name(path.name + ".partial")
        self.csv = path.suffix.lower() == ".csv"
        # An earlier run's leftover goes; a link there is removed, never written through (it may name an input).
        self.partial.unlink(missing_ok=True)
        self.file = open(self.partial, "x", newline="", encoding="utf-8")  # closed by close()
        if self.csv:
            self.rows = csv.writer(self.file)
            ranks = range(1, top_k + 1)
            self.rows.writerow(["file", *(f"{k}{r}" for r in ranks for k in FIELDS)])

    def write(self, entry: dict[str, Any]) -> None:
        """One image's result: a CSV row, or a JSON line."""
        if self.csv:
            self.rows.writerow(
                [entry["file"], *(t[k] for t in entry["top"] for k in ("label", "index", "probability"))]
            )
        else:
            self.file.write(json.dumps(entry) + "\n")

    def close(self, complete: bool) -> None:
        """Close the file; a complete run's replaces `path`, an interrupted one stays as `path`.partial."""
        self.file.close()
        if complete:
            os.replace(self.partial, self.path)


def open_writer(out: str, top_k: int, *, overwrite: bool = False, inputs: Iterable[Path] = ()) -> ResultWriter:
    """A ResultWriter for `out` (.csv or .jsonl); an existing file is kept unless `overwrite`, and one of the `inputs`
    always. Everything that would stop the writing is checked here, before any image is predicted."""
    path = Path(out).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out} must end in .csv or .jsonl")
    if not path.parent.is_dir():
        raise UserError(f"--out {out}: {path.parent} {what_is(path.parent)}, not a folder; name a file in a folder")
    for target in (path, path.with_name(path.name + ".partial")):
        if (target.exists() or target.is_symlink()) and not target.is_file():
            raise UserError(f"--out {out}: {target} {what_is(target)}, not a file; choose another --out, or move it")
    check_not_input(path, inputs)
    if path.exists() and not overwrite:
        raise UserError(f"--out {out} exists; pass --overwrite to replace it, or choose another file")
    check_writable(path.parent, f"--out {out}")
    return ResultWriter(path, top_k)
