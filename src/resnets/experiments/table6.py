"""Table 6: the CIFAR-10 ResNets, their parameters and error next to the paper's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.runs import load_run, validation_label
from ..core.tables import markdown_table, millions, paper_name, percent
from ..models import paper
from .family import FAMILIES
from .results import write_results
from .runner import Experiment, run_members

DEPTHS = (20, 32, 44, 56, 110)  # Table 6 but ResNet-1202, which costs 11 times ResNet-110 (add it with --depths)


def table6(
    depths: list[int] | None,
    data: str,
    out: Path,
    recipe: str | None = None,
    reuse: Path | None = None,
    **overrides: Any,
) -> Path:
    """Train ResNet-<depth> for each depth (resumable); write OUT/results.md with Table 6's columns. Nets started in
    the experiment folder `reuse` go on there instead of being trained twice."""
    fam = FAMILIES["cifar"]
    depths = fam.check_depths(list(DEPTHS if depths is None else depths), plain=False)
    members = [f"resnet{d}" for d in depths]
    recipe = fam.recipe_name(recipe)
    folders = run_members(Experiment("table6", fam.name, depths, members, recipe, data, out, overrides, reuse=reuse))
    runs = [load_run(folder) for folder in folders]

    val_label = validation_label(runs[0].config)
    header = ["net", "layers", "params", "paper params", f"{val_label} (%)", "paper error (%)"]
    rows = []
    for run, depth in zip(runs, depths):
        reported_params, reported_error = paper.TABLE6[run.model]
        rows.append(
            [
                paper_name(run.model),
                str(depth),
                millions(run.params),
                millions(reported_params),
                percent(run.final("val_error")),
                percent(reported_error),
            ]
        )
    notes = [f"Paper: {fam.reported}."]
    return write_results(out, "Table 6: ResNets on CIFAR-10", runs, markdown_table(header, rows), notes)
