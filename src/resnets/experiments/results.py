"""OUT/results.md of an experiment: what was trained, its figure, its table next to the paper's."""

from __future__ import annotations

from pathlib import Path

from ..analysis.output import RESULTS_FILE, write_text
from ..analysis.runs import Run


def write_results(out: Path, title: str, runs: list[Run], table: str, notes: list[str], figure: str = "") -> Path:
    """Write OUT/results.md: a title, the shared settings of `runs`, the figure (if any), the table, notes."""
    config = runs[0].config
    settings = (
        f"{config.iters:,} iterations of the `{config.recipe}` recipe (batch {config.batch_size}), seed {config.seed}, "
        f"data `{config.data}`."
    )
    parts = [f"# {title}", settings, *([f"![{title}]({figure})"] if figure else []), table, *notes]
    return write_text(out / RESULTS_FILE, "\n\n".join(parts) + "\n")
