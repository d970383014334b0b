"""The learning-rate schedule: an optional warm-up, then division by 10 at fixed iterations (CIFAR, Sec. 4.2) or
whenever the validation error plateaus (ImageNet, Sec. 3.4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import TrainConfig


@dataclass
class Plateau:
    """The 'plateau' schedule's memory: the best val error so far, validations since it, and divisions made."""

    best: float | None = None
    waited: int = 0
    divisions: int = 0

    def update(self, config: TrainConfig, val_error: float) -> bool:
        """Record one validation; True when the error has stalled for `plateau_patience` of them (divide the lr)."""
        if self.best is None or val_error < self.best - config.plateau_min_delta:
            self.best, self.waited = val_error, 0
            return False
        self.waited += 1
        if self.waited < config.plateau_patience:
            return False
        self.waited = 0
        self.divisions += 1
        return True

    def state_dict(self) -> dict:
        """Plain values for the checkpoint."""
        return asdict(self)


def learning_rate(config: TrainConfig, iteration: int, warming_up: bool, plateau: Plateau | None = None) -> float:
    """The lr for `iteration`: `warmup_lr` while warming up, else lr x lr_decay^(divisions so far)."""
    if warming_up:
        return config.warmup_lr  # type: ignore[return-value]
    if config.lr_schedule == "plateau":
        divisions = plateau.divisions if plateau else 0
    else:
        divisions = sum(iteration >= m for m in config.milestone_iters)
    return config.lr * config.lr_decay**divisions


def warmup_finished(config: TrainConfig, recent_train_error: float) -> bool:
    """Sec. 4.2: warm up "until the training error is below 80%"."""
    return recent_train_error < config.warmup_until_error
