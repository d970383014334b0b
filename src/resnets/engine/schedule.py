"""Learning-rate schedules, in numbers: division by 10 at fixed iterations (CIFAR, Sec. 4.2; detection) or whenever
the validation error plateaus (ImageNet, Sec. 3.4), and the warm-up's end (Sec. 4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


def learning_rate(base: float, decay: float, divisions: int) -> float:
    """The lr after `divisions` drops: base x decay^divisions (the paper divides by 10: decay 0.1)."""
    return base * decay**divisions


def milestones_passed(iteration: int, milestones: Sequence[int]) -> int:
    """How many of the `milestones` (iterations, e.g. 32k and 48k of 64k) `iteration` has reached."""
    return sum(iteration >= m for m in milestones)


@dataclass
class Plateau:
    """The 'plateau' schedule's memory: the best val error so far, validations since it, and divisions made."""

    best: float | None = None
    waited: int = 0
    divisions: int = 0

    def update(self, val_error: float, patience: int, min_delta: float) -> bool:
        """Record one validation; True when the error has not improved by `min_delta` points for `patience`
        validations (then divide the lr)."""
        if self.best is None or val_error < self.best - min_delta:
            self.best, self.waited = val_error, 0
            return False
        self.waited += 1
        if self.waited < patience:
            return False
        self.waited = 0
        self.divisions += 1
        return True

    def state_dict(self) -> dict:
        """Plain values for the checkpoint."""
        return asdict(self)


def warmup_finished(recent_train_error: float, until: float) -> bool:
    """Sec. 4.2: warm up "until the training error is below 80%" (`until` 0.8)."""
    return recent_train_error < until
