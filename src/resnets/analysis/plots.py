"""The paper's figures as PNGs: error curves (Fig. 4 and 6) and layer responses (Fig. 7), drawn off-screen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.atomic import atomic_write
from ..core.errors import UserError
from ..core.tables import paper_name, unique_labels

if TYPE_CHECKING:
    from .responses import LayerResponses
    from .runs import Run

DPI = 120
# Fig. 6 draws training error dashed, Fig. 4 thin; both draw the test/validation error bold.
TRAIN_LINES: dict[str, dict[str, Any]] = {
    "dashed": {"linestyle": "--", "linewidth": 1.2},
    "thin": {"linestyle": "-", "linewidth": 0.8, "alpha": 0.8},
}
VAL_LINE: dict[str, Any] = {"linestyle": "-", "linewidth": 2.4}


def _figure(rows: int, cols: int, size: tuple[float, float]):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("drawing figures needs matplotlib: pip install 'resnets[plots]'") from None
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)  # Agg, off-screen, without touching pyplot's global backend
    return figure, figure.subplots(rows, cols, squeeze=False, sharey=True)


def _save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        figure.savefig(f, format="png", dpi=DPI)


def error_curves(
    panels: dict[str, list[Run]],
    path: Path,
    *,
    title: str,
    train_style: str,
    val_label: str,
    iteration_unit: int = 1,
    max_error: float | None = None,
) -> None:
    """Error (%) against iterations (counted in `iteration_unit`s), one panel per group of runs: training error thin
    or dashed, validation bold; `max_error` fixes the error axis (Fig. 6: 0-20%). A panel without runs stays empty."""
    figure, axes = _figure(1, len(panels), (6.0 * len(panels), 4.5))
    for ax, (panel, runs) in zip(axes[0], panels.items()):
        if runs:
            _draw_runs(ax, runs, train_style, val_label, iteration_unit)
        else:
            ax.text(0.5, 0.5, "no finished run yet", ha="center", va="center", transform=ax.transAxes, color="0.5")
        unit = f" ({iteration_unit:.0e})".replace("e+0", "e") if iteration_unit > 1 else ""
        ax.set(title=panel, xlabel=f"iterations{unit}", ylabel="error (%)")
        ax.set_ylim(0, max_error)
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    _save(figure, path)


def _draw_runs(ax, runs: list[Run], train_style: str, val_label: str, iteration_unit: int) -> None:
    """Each run's training error (thin or dashed) and validation error (bold) in one colour, and the legend."""
    from matplotlib.lines import Line2D

    from .runs import row_iteration

    labels = unique_labels([paper_name(r.model) for r in runs], [r.path.name for r in runs])
    handles = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = f"C{i % 10}"
        iterations = [row_iteration(r) / iteration_unit for r in run.rows]
        ax.plot(iterations, [r["train_error"] for r in run.rows], color=color, **TRAIN_LINES[train_style])
        val = [(row_iteration(r) / iteration_unit, r["val_error"]) for r in run.rows if r["val_error"] is not None]
        if val:
            ax.plot(*zip(*val), color=color, **VAL_LINE)
        handles.append(Line2D([], [], color=color, linewidth=2.4, label=label))
    handles += [
        Line2D([], [], color="0.35", label="training error", **TRAIN_LINES[train_style]),
        Line2D([], [], color="0.35", label=val_label, **VAL_LINE),
    ]
    ax.legend(handles=handles, fontsize="small")


def response_plot(responses: Sequence[LayerResponses], path: Path, *, title: str) -> None:
    """Fig. 7: each model's layer response std in layer order (top) and sorted in descending order (bottom)."""
    figure, axes = _figure(2, 1, (8.0, 7.5))
    top, bottom = axes[:, 0]
    for i, r in enumerate(responses):
        style = {"color": f"C{i % 10}", "linestyle": "-" if r.residual else "--", "marker": ".", "label": r.label}
        layers = range(1, len(r.stds) + 1)
        top.plot(layers, r.stds, **style)
        bottom.plot(layers, sorted(r.stds, reverse=True), **style)
    top.set(title="in layer order", xlabel="layer index (original)")
    bottom.set(title="sorted in descending order", xlabel="layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std of the 3x3 layer's output after BN")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(title)
    _save(figure, path)
