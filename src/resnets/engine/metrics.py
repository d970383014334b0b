"""Metrics a person can plot: one CSV row per evaluation, optionally mirrored to TensorBoard."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from ..core.atomic import atomic_write
from ..core.errors import UserError

METRICS_FILE = "metrics.csv"
COLUMNS = ("iteration", "lr", "train_loss", "train_error", "val_error", "images_per_sec")


class MetricsLog:
    """Appends rows to RUN/metrics.csv; on resume, rows past the resumed iteration are dropped first."""

    def __init__(
        self, run: Path, resume_from: int | None = None, tensorboard: bool = False, columns: tuple[str, ...] = COLUMNS
    ):
        self.path = run / METRICS_FILE
        self.columns = columns  # classification's by default; detection logs its four losses
        kept = []
        if resume_from is not None and self.path.exists():
            with self.path.open(newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["iteration"]) <= resume_from]
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns)
        writer.writeheader()
        writer.writerows(kept)
        with atomic_write(self.path) as f:  # an interrupted rewrite keeps the old file
            f.write(text.getvalue().encode())
        self.tensorboard = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.tensorboard = SummaryWriter(str(run / "tensorboard"))

    def write(self, row: Mapping[str, float | int | None]) -> None:
        """Append one evaluation's row (missing values stay empty)."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: ("" if row.get(k) is None else row[k]) for k in self.columns})
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "iteration" and value is not None:
                    self.tensorboard.add_scalar(key, value, row["iteration"])
            self.tensorboard.flush()

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.tensorboard is not None:
            self.tensorboard.close()


def read_metrics(path: Path) -> list[dict[str, float | None]]:
    """Rows of a metrics.csv as numbers (None for empty cells)."""
    with path.open(newline="") as f:
        return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]
