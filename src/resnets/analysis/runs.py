"""A training run read back from its folder (config.json and metrics.csv), for tables and curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..engine.metrics import METRICS_FILE, read_metrics
from ..engine.run import config_path, read_config
from ..models.complexity import model_complexity
from ..training.config import TrainConfig


@dataclass
class Run:
    """One run folder: its resolved configuration and one metrics row per validation."""

    path: Path
    config: TrainConfig
    rows: list[dict[str, float | None]]

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def residual(self) -> bool:
        """False for the plain counterparts (the registry's plain* names)."""
        return "plain" not in self.model

    @property
    def iteration(self) -> int:
        """Iterations trained so far, as of the last validation."""
        return int(row_iteration(self.rows[-1])) if self.rows else 0

    def final(self, column: str) -> float | None:
        """The last row's value of `column` (e.g. 'train_error', 'val_error'), None before the first row."""
        return self.rows[-1][column] if self.rows else None

    @property
    def best_val_error(self) -> float | None:
        """The lowest validation error of the run; None when it validated on the test split (no selection there)."""
        if not self.config.selects_on_validation:
            return None
        errors = [r["val_error"] for r in self.rows if r["val_error"] is not None]
        return min(errors) if errors else None

    @property
    def params(self) -> int:
        """Parameters of the network as this run built it (the recipe's shortcut option included)."""
        return model_complexity(self.model, **self.config.model_options()).params


def row_iteration(row: dict[str, float | None]) -> float:
    """A metrics row's iteration: training writes one on every row (other cells may be empty)."""
    iteration = row["iteration"]
    assert iteration is not None, "a metrics row without its iteration"
    return iteration


def validation_set(config: TrainConfig) -> str:
    """The images a run's 'val_error' is measured on: a held-out part of train, or the test split (val_split 0)."""
    return f"held-out {config.val_split:,}" if config.selects_on_validation else "test split"


def validation_label(config: TrainConfig) -> str:
    """The name of a run's 'val_error' in tables and legends, saying honestly what it measures."""
    return f"validation error ({validation_set(config)})" if config.selects_on_validation else "test error"


def load_run(path: str | Path) -> Run:
    """Read a run folder written by `resnets train`."""
    path = Path(path)
    config_file, metrics_file = config_path(path), path / METRICS_FILE
    if not (config_file.is_file() and metrics_file.is_file()):
        raise UserError(f"{path} is not a training run folder (it needs config.json and metrics.csv)")
    values = read_config(config_file, "is it a run folder of `resnets train`?")
    return Run(path, TrainConfig.from_dict(values, source=str(config_file)), read_metrics(metrics_file))


def group_by_kind(runs: list[Run]) -> dict[str, list[Run]]:
    """Plain nets, then residual nets, as the two panels of Fig. 4 and Fig. 6; empty groups are left out."""
    groups = {"plain": [r for r in runs if not r.residual], "ResNet": [r for r in runs if r.residual]}
    return {title: members for title, members in groups.items() if members}
