"""The learning-rate schedule: step decay at fixed iterations (Sec. 4.2), after an optional warm-up."""

from __future__ import annotations

from .config import TrainConfig


def learning_rate(config: TrainConfig, iteration: int, warming_up: bool) -> float:
    """The lr for `iteration`: `warmup_lr` while warming up, else lr x lr_decay^(milestones passed)."""
    if warming_up:
        return config.warmup_lr  # type: ignore[return-value]
    passed = sum(iteration >= m for m in config.milestone_iters)
    return config.lr * config.lr_decay**passed


def warmup_finished(config: TrainConfig, recent_train_error: float) -> bool:
    """Sec. 4.2: warm up "until the training error is below 80%"."""
    return recent_train_error < config.warmup_until_error
