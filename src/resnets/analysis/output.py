"""Writing result files (CSV, markdown, JSON): the folder is created, and a crash never leaves half a file."""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import atomic_write

RESULTS_FILE = "results.md"  # what an experiment or analysis folder shows a reader; `resnets report` embeds it


def write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically, creating its folder; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(text.encode())
    return path
