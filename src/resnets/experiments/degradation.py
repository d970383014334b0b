"""The degradation experiment (Fig. 6 on CIFAR-10, Fig. 4 on ImageNet): plain and residual nets of equal depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.output import RESULTS_FILE
from ..analysis.plots import error_curves
from ..analysis.runs import group_by_kind, load_run, validation_label
from ..core.tables import markdown_table, paper_name, percent
from ..models import paper
from .family import FAMILIES
from .results import write_results
from .runner import Experiment, run_members

FIGURE = "degradation.png"


def degradation(
    family: str,
    depths: list[int] | None,
    data: str,
    out: Path,
    recipe: str | None = None,
    reuse: Path | None = None,
    **overrides: Any,
) -> Path:
    """Train the plain and the residual net of each depth (resumable); write the figure and OUT/results.md. Nets
    started in the experiment folder `reuse` (e.g. Table 6's) go on there instead of being trained twice."""
    fam = FAMILIES[family]
    recipe = fam.recipe_name(recipe)
    depths = fam.check_depths(list(fam.degradation_depths if depths is None else depths), plain=True)
    members = [f"{kind}{d}" for d in depths for kind in ("plain", "resnet")]
    writes = (RESULTS_FILE, FIGURE)
    experiment = Experiment("degradation", family, depths, members, recipe, data, out, overrides, writes, reuse)
    folders = run_members(experiment)
    runs = [load_run(folder) for folder in folders]

    val_label = validation_label(runs[0].config)
    title = f"Degradation ({fam.degradation_figure}): plain and residual nets on {fam.dataset}"
    style = fam.training_line
    error_curves(group_by_kind(runs), out / FIGURE, title=title, train_style=style, val_label=val_label)
    header = ["model", "training error (%)", f"{val_label} (%)", "paper (%)"]
    rows = [
        [
            paper_name(run.model),
            percent(run.final("train_error")),
            percent(run.final("val_error")),
            percent(paper.reported_error(run.model)),
        ]
        for run in runs
    ]
    notes = [
        "Training error: over the augmented training batches since the previous validation. "
        f"{style.capitalize()}: training error; bold: {val_label}.",
        f"Paper: {fam.reported}; an empty cell is a net the paper draws as a curve only.",
    ]
    return write_results(out, title, runs, markdown_table(header, rows), notes, figure=FIGURE)
