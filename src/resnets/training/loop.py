"""The training loop: the paper's CIFAR recipe (Sec. 4.2) on a uint8 dataset held on the training device."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import ImageSet, load_split, normalize, pixel_mean, random_crop_flip, train_val_split
from ..errors import UserError
from ..evaluation.evaluate import evaluate
from ..models import ResNet, model_config
from .checkpoint import BEST, LAST, latest_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import autocast, resolve_device, resolve_precision
from .metrics import MetricsLog
from .rng import seeded_generator
from .sampler import EpochSampler
from .schedule import learning_rate, warmup_finished

AUGMENT_STREAM = 2  # keys augmentation randomness apart from the epoch permutations


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainData:
    """The training images, the held-out validation images (if any) and the per-pixel mean of training."""

    train: ImageSet
    val: ImageSet | None
    mean: torch.Tensor


def prepare_data(config: TrainConfig, progress: bool = True) -> TrainData:
    """Load the training split, hold out `val_split` images (or use the test split when it is 0)."""
    full = load_split(config.data, "train", skip_bad_images=config.skip_bad_images, progress=progress)
    if full.skipped or full.ignored:
        print(f"data: skipped {full.skipped} unreadable images, ignored {full.ignored} non-image files")
    if config.val_split:
        train_idx, val_idx = train_val_split(full.labels, config.val_split, config.split_seed)
        train, val = (ImageSet(full.images[i], full.labels[i], full.classes) for i in (train_idx, val_idx))
    else:
        train, val = full, _optional_split(config, "test", progress)
    return TrainData(train, val, pixel_mean(train.images))


def _optional_split(config: TrainConfig, split: str, progress: bool) -> ImageSet | None:
    try:
        return load_split(config.data, split, skip_bad_images=config.skip_bad_images, progress=progress)
    except UserError:
        return None


class Trainer:
    """Owns the model, optimizer and position of one run; `fit()` trains to `config.iters`."""

    def __init__(self, config: TrainConfig, resume: bool = False):
        self.config = config
        self.run = Path(config.out)
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.is_main = True
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True

        found = latest_checkpoint(self.run) if self.run.is_dir() else None
        if found and not resume:
            raise UserError(f"{found[0]} already exists; pass --resume to continue that run or choose another --out")
        self.run.mkdir(parents=True, exist_ok=True)
        config.save(self.run / "config.json")

        self.data = prepare_data(config, progress=self.is_main)
        classes = self.data.train.classes
        torch.manual_seed(config.seed)  # the initial weights
        self.model_config = model_config(config.model, num_classes=len(classes), **config.model_options())
        self.model = ResNet(self.model_config).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.forward = torch.compile(self.model) if config.compile else self.model

        self.iteration = 0
        self.warming_up = config.warmup_lr is not None
        self.best_val_error: float | None = None
        if found:
            self._restore(found[1])
            print(f"resuming {found[0]} at iteration {self.iteration}")
        self.images = self.data.train.images.to(self.device)
        self.labels = self.data.train.labels.to(self.device)
        self.mean = self.data.mean.to(self.device)
        self.sampler = EpochSampler(len(self.images), config.batch_size, config.seed)
        self.metrics = MetricsLog(
            self.run, resume_from=self.iteration if found else None, tensorboard=config.tensorboard
        )

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]
        self.warming_up = state["warming_up"]
        self.best_val_error = state["best_val_error"]

    def state(self) -> dict:
        """Everything needed to continue exactly, and to rebuild and normalise the model for testing."""
        return {
            "iteration": self.iteration,
            "model_name": self.config.model,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "classes": self.data.train.classes,
            "pixel_mean": self.data.mean,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "warming_up": self.warming_up,
            "best_val_error": self.best_val_error,
        }

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented, normalised batch of `iteration`: a function of (seed, iteration) alone."""
        idx = self.sampler.batch(iteration).to(self.device)
        generator = seeded_generator(self.config.seed, AUGMENT_STREAM, iteration, device=self.device)
        x = random_crop_flip(self.images[idx], self.config.crop_padding, generator, flip=self.config.flip)
        x = normalize(x, self.mean)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step; returns the detached loss and the number of misclassified images."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.precision):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), (logits.detach().argmax(1) != y).sum()

    def validate(self) -> float | None:
        """Top-1 error (%) on the validation images, or None without a validation set."""
        val = self.data.val
        if val is None:
            return None
        result = evaluate(
            self.model,
            val.images,
            val.labels,
            self.data.mean,
            device=self.device,
            precision=self.precision,
            batch_size=self.config.eval_batch_size,
            channels_last=self.config.channels_last,
        )
        return result["top1_error"]

    def save(self, val_error: float | None) -> None:
        """Write last.pt, and best.pt when validation improved."""
        improved = val_error is not None and (self.best_val_error is None or val_error < self.best_val_error)
        if improved:
            self.best_val_error = val_error
        state = self.state()
        save_checkpoint(self.run / LAST, state)
        if improved:
            save_checkpoint(self.run / BEST, state)

    def fit(self) -> dict:
        """Train from the current iteration to `config.iters`, validating and checkpointing on the way."""
        config = self.config
        log_every, eval_every = config.log_every, config.eval_interval
        window_loss = torch.zeros((), device=self.device)
        window_wrong = torch.zeros((), device=self.device, dtype=torch.long)
        window_steps = 0
        eval_loss = eval_wrong = eval_images = eval_steps = 0
        train_seconds = 0.0
        last_row: dict = {}
        progress = tqdm(
            total=config.iters,
            initial=self.iteration,
            unit="it",
            disable=not self.is_main,
            dynamic_ncols=True,
            mininterval=1.0,
            desc=config.model,
        )
        tick = time.perf_counter()
        while self.iteration < config.iters:
            lr = learning_rate(config, self.iteration, self.warming_up)
            x, y = self.batch(self.iteration)
            loss, wrong = self.step(x, y, lr)
            window_loss += loss
            window_wrong += wrong
            window_steps += 1
            self.iteration += 1
            progress.update(1)
            at_eval = self.iteration % eval_every == 0 or self.iteration == config.iters
            if self.iteration % log_every and not at_eval:
                continue

            images = window_steps * len(y)
            mean_loss, error = float(window_loss) / window_steps, float(window_wrong) / images
            if not math.isfinite(mean_loss):
                progress.close()
                raise TrainingDiverged(
                    f"loss became {mean_loss} by iteration {self.iteration}; the last good checkpoint "
                    f"{self.run / LAST} is kept; try a lower --lr or --precision fp32"
                )
            if self.warming_up and warmup_finished(config, error):
                self.warming_up = False
                tqdm.write(f"warm-up done at iteration {self.iteration} (training error {100 * error:.1f}%)")
            eval_loss += float(window_loss)
            eval_wrong += float(window_wrong)
            eval_images += images
            eval_steps += window_steps
            window_loss.zero_()
            window_wrong.zero_()
            window_steps = 0
            now = time.perf_counter()
            train_seconds += now - tick
            progress.set_postfix(
                loss=f"{mean_loss:.3f}",
                err=f"{100 * error:.1f}%",
                lr=f"{lr:g}",
                img_s=f"{eval_images / max(train_seconds, 1e-9):.0f}",
                refresh=False,
            )
            if at_eval:
                val_error = self.validate()
                last_row = {
                    "iteration": self.iteration,
                    "lr": lr,
                    "train_loss": eval_loss / eval_steps,
                    "train_error": 100 * eval_wrong / eval_images,
                    "val_error": val_error,
                    "images_per_sec": eval_images / max(train_seconds, 1e-9),
                }
                self.metrics.write(last_row)
                self.save(val_error)
                if val_error is not None:
                    tqdm.write(
                        f"iteration {self.iteration}: train error {last_row['train_error']:.2f}%, "
                        f"val error {val_error:.2f}%, {last_row['images_per_sec']:.0f} images/s"
                    )
                eval_loss = eval_wrong = eval_images = eval_steps = 0
                train_seconds = 0.0
            tick = time.perf_counter()
        progress.close()
        self.metrics.close()
        return last_row


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) one training run; returns the last metrics row."""
    return Trainer(config, resume=resume).fit()
