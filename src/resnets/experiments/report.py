"""`resnets report`: one markdown file with training curves (as Figs. 4 and 6), a table of runs, each results.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..analysis.output import RESULTS_FILE, write_text
from ..analysis.plots import error_curves
from ..analysis.runs import Run, group_by_kind, load_run, validation_label, validation_set
from ..core.atomic import check_not_input
from ..core.errors import UserError
from ..core.tables import markdown_table, millions, paper_name, percent
from ..engine.metrics import METRICS_FILE
from ..engine.run import CONFIG_FILE, config_path
from ..models import paper
from .runner import EXPERIMENT_FILE, experiment_members

REPORT_TITLE = "# Report"  # a report's first line, by which --out recognises an earlier one

LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _link(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target, base)).as_posix()


def collect(paths: list[Path]) -> tuple[list[Run], list[Path]]:
    """The runs behind `paths` (run folders, and the members of experiment folders) and their results.md files."""
    runs: dict[Path, Run] = {}
    results = []
    for path in paths:
        if (path / EXPERIMENT_FILE).is_file():
            found = [
                load_run(m) for m in experiment_members(path) if (m / "metrics.csv").is_file()
            ]  # not started yet: left out
        elif config_path(path).is_file():
            found = [load_run(path)]
        elif (path / RESULTS_FILE).is_file():
            found = []
        else:
            raise UserError(
                f"{path} is not a training run (config.json, metrics.csv), an experiment ({EXPERIMENT_FILE}) "
                f"or an analysis folder ({RESULTS_FILE})"
            )
        runs.update((run.path.resolve(), run) for run in found)
        if (path / RESULTS_FILE).is_file():
            results.append(path / RESULTS_FILE)
    return list(runs.values()), results


def runs_table(runs: list[Run], base: Path) -> str:
    """Every run's progress, size and last errors next to the paper's figure."""
    header = ["run", "model", "iterations", "params", "training error (%)", "val error (%)", "best val (%)"]
    header += ["validated on", "paper (%)"]
    rows = [
        [
            f"[{run.path.name}]({_link(run.path, base)})",
            paper_name(run.model),
            f"{run.iteration:,} / {run.config.iters:,}",
            millions(run.params),
            percent(run.final("train_error")),
            percent(run.final("val_error")),
            percent(run.best_val_error),
            validation_set(run.config),
            percent(paper.reported_error(run.model)),
        ]
        for run in runs
    ]
    return markdown_table(header, rows)


def embed(results: Path, base: Path) -> str:
    """A results.md one heading level down, its relative links rewritten to point from `base`."""
    text = re.sub(r"^#", "##", results.read_text(), flags=re.MULTILINE)

    def rebase(match: re.Match) -> str:
        target = match[2]
        if "://" in target or target.startswith(("/", "#")):
            return match[0]
        return match[1] + _link(results.parent / target, base) + match[3]

    return LINK.sub(rebase, text).strip()


def is_report(path: Path) -> bool:
    """Whether `path` is a report that write_report wrote (which a new report may replace)."""
    with path.open("rb") as f:
        return f.read(len(REPORT_TITLE) + 1) == (REPORT_TITLE + "\n").encode()


def write_report(paths: list[Path], out: Path) -> list[Path]:
    """Write OUT (markdown), OUT's curves beside it (OUT-curves.png) and, for the CIFAR nets, Fig. 6 of the finished
    runs (OUT-fig6.png); returns the files written."""
    runs, results = collect(paths)
    if not runs and not results:
        raise UserError(f"{', '.join(map(str, paths))}: no training run has metrics yet; nothing to report")
    curves, fig6 = out.with_name(f"{out.stem}-curves.png"), out.with_name(f"{out.stem}-fig6.png")
    read = [run.path / name for run in runs for name in (CONFIG_FILE, METRICS_FILE)]
    read += [*results, *(path / EXPERIMENT_FILE for path in paths)]
    for target in (out, curves, fig6):  # checked before anything is written, and even with --force
        check_not_input(target, read)
    base = out.parent
    parts, written = [REPORT_TITLE], []
    if runs:
        labels = {validation_label(run.config) for run in runs}
        val_label = labels.pop() if len(labels) == 1 else "validation error"
        title = "Training curves (as Figs. 4 and 6)"
        error_curves(group_by_kind(runs), curves, title=title, train_style="thin", val_label=val_label)
        written.append(curves)
        parts += [
            "## Training curves",
            f"Thin: training error; bold: {val_label}.",
            f"![training curves]({_link(curves, base)})",
        ]
        if (panels := fig6_panels(runs)) is not None:
            written.append(_draw_fig6(panels, fig6, val_label))
            parts += [
                "## Fig. 6",
                f"The finished runs in the paper's layout: thin: training error; bold: {val_label}.",
                f"![Fig. 6]({_link(fig6, base)})",
            ]
        parts += [
            "## Runs",
            runs_table(runs, base),
            "Training error: over the augmented training batches since the previous validation. "
            "Paper: Table 6 (CIFAR-10 test) or Table 2 (ImageNet val, 10-crop) where the paper states a number.",
        ]
    parts += [embed(result, base) for result in results]
    return [write_text(out, "\n\n".join(parts) + "\n"), *written]


def fig6_panels(runs: list[Run]) -> dict[str, list[Run]] | None:
    """Fig. 6's panels (paper.FIG6_PANELS) of the runs that finished their schedule, or None when no run is one of
    Fig. 6's nets; a panel whose nets have not finished yet is empty."""
    if not any(run.model in models for run in runs for models in paper.FIG6_PANELS.values()):
        return None
    finished = {run.model: run for run in runs if run.rows and run.iteration >= run.config.iters}
    return {title: [finished[m] for m in models if m in finished] for title, models in paper.FIG6_PANELS.items()}


def _draw_fig6(panels: dict[str, list[Run]], path: Path, val_label: str) -> Path:
    """Fig. 6 as the paper draws it: three panels, iterations in 1e4, error from 0 to 20%."""
    title = "Fig. 6: training on CIFAR-10, the finished runs"
    unit, top = paper.FIG6_ITERATION_UNIT, paper.FIG6_MAX_ERROR
    error_curves(panels, path, title=title, train_style="thin", val_label=val_label, iteration_unit=unit, max_error=top)
    return path
