"""The training loop of both recipes: CIFAR (Sec. 4.2) and ImageNet (Sec. 3.4), one SGD step per iteration.

Under torchrun every process trains on its share of each global batch (DistributedDataParallel); rank 0 alone
logs, writes metrics and saves checkpoints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoints import BEST, LAST, latest_checkpoint, save_checkpoint
from ..data import ImageFiles, ImageSet, TrainLoader, has_split, load_split, open_split, pixel_mean, train_val_split
from ..data.cifar import find_cifar10
from ..data.sampler import EpochSampler
from ..errors import UserError
from ..evaluation.evaluate import validation_error
from ..models import ResNet, model_config
from ..runtime import autocast, resolve_device, resolve_precision
from ..weights import TrainedModel, load_weights, pretrained_model
from .batches import CifarBatches, ImageNetBatches, center_pixel_mean
from .config import TrainConfig
from .distributed import Group, process_group, sync_batchnorm
from .metrics import MetricsLog
from .schedule import Plateau, learning_rate, warmup_finished
from .sessions import record_session

LONG_VALIDATION = 2000  # images: a validation pass this long shows its own progress bar
MAX_VALIDATION_SHARE = 0.25  # of the run's time: above it, warn once that validation dominates


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainData:
    """The training images, the validation images (if any), and the input normalisation: the per-pixel mean of
    training, or the mean and std of the initial weights' own training (torchvision's) when fine-tuning."""

    train: ImageSet | ImageFiles
    val: ImageSet | ImageFiles | None
    mean: torch.Tensor | None = None  # set by the Trainer: restored, taken from the initial weights, or measured
    std: torch.Tensor | None = None


def prepare_data(config: TrainConfig, progress: bool = True) -> TrainData:
    """The training images and the validation images: a held-out part of train, or the data's own held-out split
    (CIFAR: ROOT/test, in memory; ImageNet: ROOT/val, decoded on demand) if it has one."""
    photos = config.augmentation == "imagenet"

    def load(split: str, labels_file: str | None = None) -> ImageSet | ImageFiles:
        if not photos:
            return load_split(config.data, split, skip_bad_images=config.skip_bad_images, progress=progress)
        options = dict(decode_cache=config.decode_cache, workers=config.workers, progress=progress)
        return open_split(
            config.data, split, labels_file=labels_file, skip_bad_images=config.skip_bad_images, **options
        )

    full = load("train")
    if progress and (full.skipped or full.ignored):
        print(f"data: skipped {full.skipped} unreadable images, ignored {full.ignored} non-image files")
    if config.val_split:
        train_idx, val_idx = train_val_split(full.labels, config.val_split, config.split_seed)
        return TrainData(full.subset(train_idx), full.subset(val_idx))
    held_out = "val" if photos else "test"
    # Only a missing split means no validation set (official CIFAR-10 always has 'test'); a broken one still fails.
    root = Path(config.data).expanduser()
    present = has_split(root, held_out) or (held_out == "test" and find_cifar10(root) is not None)
    return TrainData(full, load(held_out, config.val_labels) if present else None)


def training_mean(config: TrainConfig, train: ImageSet | ImageFiles, progress: bool = True) -> torch.Tensor:
    """The per-pixel mean of the training images (CIFAR), or of their centre views (ImageNet, Sec. 3.4)."""
    if config.augmentation == "cifar":
        return pixel_mean(train.images)
    return center_pixel_mean(
        train, resize=config.test_resize, crop=config.crop_size, workers=config.decode_workers, progress=progress
    )


def make_batches(
    config: TrainConfig, data: TrainData, sampler: EpochSampler, device: torch.device
) -> CifarBatches | ImageNetBatches:
    """The batch source of the run's augmentation."""
    if config.augmentation == "cifar":
        return CifarBatches(config, data.train, sampler, data.mean, data.std, device)
    loader = TrainLoader(
        data.train,
        sampler,
        config.seed,
        scale_range=config.scale_range,
        crop=config.crop_size,
        flip=config.flip,
        workers=config.decode_workers,
        skip_bad_images=config.skip_bad_images,
        pin_memory=device.type == "cuda",
    )
    return ImageNetBatches(config, loader, sampler, data.mean, data.std, device)


def load_initial_weights(model: ResNet, data: TrainData, initial: TrainedModel, source: str) -> str:
    """Fine-tuning: `initial`'s weights key for key (a classifier for another class count starts afresh), and the
    input normalisation they were trained with."""
    fresh = load_weights(model, initial.model.state_dict(), source=source, reset_head=True)
    data.mean, data.std = initial.pixel_mean, initial.pixel_std
    return f"initial weights from {source}" + (f"; {', '.join(fresh)} start afresh (other classes)" if fresh else "")


class Trainer:
    """Owns the model, optimizer and position of one run; `fit()` trains to `config.iters`.

    `group` is this process's place among torchrun's processes; without it the run is a single process.
    """

    def __init__(self, config: TrainConfig, resume: bool = False, group: Group | None = None):
        self.config = config
        self.run = Path(config.out)
        self.group = group or Group(resolve_device(config.device))
        self.device = self.group.device
        self.precision = resolve_precision(config.precision, self.device)
        self.is_main = self.group.is_main
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True

        found = latest_checkpoint(self.run) if self.run.is_dir() else None
        lowest, highest = self.group.min_max(found[1]["iteration"] if found else -1)
        if lowest != highest:
            raise UserError(
                f"the processes found different checkpoints in {self.run}; put --out on a file system every node sees"
            )
        # Workers that torchrun restarts (--max-restarts) continue from the newest checkpoint, as with --resume;
        # only the failed machine's torchrun counts the restart, so any rank's count decides.
        restarted = self.group.min_max(self.group.restarts)[1] > 0
        if found and not (resume or restarted):
            raise UserError(f"{found[0]} already exists; pass --resume to continue that run or choose another --out")
        with self.group.main_first():  # one process per node decodes, caches and downloads; the others read them
            self.data = prepare_data(config, progress=self.is_main)
            fine_tune = config.weights and not found
            initial = pretrained_model(config.model, config.weights, **config.model_options()) if fine_tune else None
        self.sampler = EpochSampler(
            len(self.data.train), config.batch_size, config.seed, self.group.rank, self.group.world_size
        )
        if config.epochs:
            config.iters = max(1, round(config.epochs * self.sampler.steps_per_epoch))
        if config.lr_schedule == "plateau" and self.data.val is None:
            raise UserError(
                "lr_schedule 'plateau' divides the lr when the validation error stalls, but there is no validation "
                "set; add ROOT/val, pass --val-split N, or use a step schedule"
            )
        if self.is_main:
            self.run.mkdir(parents=True, exist_ok=True)
            config.save(self.run / "config.json")

        classes = self.data.train.classes
        torch.manual_seed(config.seed)  # the initial weights
        self.model_config = model_config(config.model, num_classes=len(classes), **config.model_options())
        self.model = ResNet(self.model_config)
        if initial is not None:
            self._log(load_initial_weights(self.model, self.data, initial, config.weights))
        self.model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if config.sync_bn and self.group.active:
            self.model = sync_batchnorm(self.model, self.device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

        self.iteration = 0
        self.skipped_steps = 0  # fp16 steps the grad scaler skipped (overflow), each one retried
        self.warming_up = config.warmup_lr is not None
        self.best_val_error: float | None = None
        self.val_error: float | None = None  # of the latest validation, kept with the weights it measured
        self.plateau = Plateau()
        if found:
            self._restore(found[1])
            self._log(f"resuming {found[0]} at iteration {self.iteration}")
        if self.is_main:
            record_session(self.run, self.iteration, self.device, self.precision)
        # self.model stays the bare module, so checkpoints keep torchvision's key names.
        parallel = self.group.data_parallel(self.model)
        self.forward = torch.compile(parallel) if config.compile else parallel
        if self.data.mean is None:  # neither restored nor brought by the initial weights: measure it (once)
            self.data.mean = training_mean(config, self.data.train, progress=self.is_main)
        self.batches = make_batches(config, self.data, self.sampler, self.device)
        resume_from = self.iteration if found else None
        self.metrics = MetricsLog(self.run, resume_from, config.tensorboard) if self.is_main else None

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]
        self.warming_up = state["warming_up"]
        self.best_val_error = state["best_val_error"]
        self.val_error = state.get("val_error")  # absent from checkpoints written before it was kept
        self.plateau = Plateau(**state["plateau"])
        self.data.mean, self.data.std = state["pixel_mean"], state["pixel_std"]

    def state(self) -> dict:
        """Everything needed to continue exactly, and to rebuild and normalise the model for testing."""
        return {
            "iteration": self.iteration,
            "model_name": self.config.model,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "classes": self.data.train.classes,
            "pixel_mean": self.data.mean,
            "pixel_std": self.data.std,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "warming_up": self.warming_up,
            "best_val_error": self.best_val_error,
            "val_error": self.val_error,
            "plateau": self.plateau.state_dict(),
        }

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the augmented, normalised global batch of `iteration`, from (seed, iteration) alone."""
        x, y = self.batches.batch(iteration)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """One SGD step; returns the detached loss, the number of misclassified images and whether it was taken.

        With fp16 the grad scaler skips a step whose gradients overflowed (and lowers its scale); the caller
        then repeats the iteration, so a skipped step advances neither the schedule nor the data order.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.precision):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        taken = not self.scaler.is_enabled() or self.scaler.get_scale() >= scale
        return loss.detach(), (logits.detach().argmax(1) != y).sum(), taken

    def validate(self) -> float | None:
        """Top-1 error (%) on the validation images, measured by rank 0 and shared; None without a validation set."""
        val = self.data.val
        if val is None:
            return None
        if not self.is_main:  # rank 0 validates the model it saves (without --sync-bn, BN buffers differ by rank)
            return self.group.from_main(math.nan)
        photos = self.config.augmentation == "imagenet"  # the 224 centre crop of the 256 resize; CIFAR: the image
        result = validation_error(
            self.model,
            val,
            self.data.mean,
            std=self.data.std,
            view="center" if photos else "full",
            resize=self.config.test_resize,
            crop=self.config.crop_size,
            device=self.device,
            precision=self.precision,
            batch_size=self.config.eval_batch_size,
            workers=self.config.decode_workers if photos else 0,
            channels_last=self.config.channels_last,
            progress=len(val) >= LONG_VALIDATION,
        )
        return self.group.from_main(result["top1_error"])

    def _warn_if_validation_dominates(self, val_seconds: float, train_seconds: float, steps: int) -> None:
        """Once, after the first validation: warn when validating would take over a quarter of the remaining run."""
        eval_every = self.config.eval_interval(self.sampler.steps_per_epoch)
        remaining = self.config.iters - self.iteration
        validations = math.ceil(remaining / eval_every)
        validating, training = val_seconds * validations, train_seconds / steps * remaining
        share = validating / max(validating + training, 1e-9)
        if share > MAX_VALIDATION_SHARE:
            self._log(
                f"warning: validation takes {val_seconds:.0f} s and would be {100 * share:.0f}% of the remaining "
                f"run ({validations} validations, every {eval_every} iterations); pass --eval-every N with a larger "
                "N to validate less often"
            )

    def save(self, val_error: float | None) -> None:
        """Rank 0 writes last.pt, and best.pt when validation on held-out training images improved (never when
        validating on the test split: no model selection on test data); every rank keeps the same bookkeeping."""
        improved = val_error is not None and (self.best_val_error is None or val_error < self.best_val_error)
        improved = improved and self.config.selects_on_validation
        if improved:
            self.best_val_error = val_error
        self.val_error = val_error
        if self.is_main:
            state = self.state()
            save_checkpoint(self.run / LAST, state)
            if improved:
                save_checkpoint(self.run / BEST, state)
        self.group.barrier()  # no rank runs ahead (or exits) while the checkpoint is being written

    def _log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def fit(self) -> dict:
        """Train from the current iteration to `config.iters`, validating and checkpointing on the way."""
        config = self.config
        log_every, eval_every = config.log_every, config.eval_interval(self.sampler.steps_per_epoch)
        window_loss = torch.zeros((), device=self.device)
        window_wrong = torch.zeros((), device=self.device, dtype=torch.long)
        window_images = 0
        window_steps = 0
        eval_loss = eval_wrong = eval_images = eval_steps = 0
        train_seconds = 0.0
        last_row: dict = {}
        validated = False  # the first validation's cost is checked against the run's length
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
            lr = learning_rate(config, self.iteration, self.warming_up, self.plateau)
            x, y = self.batch(self.iteration)
            loss, wrong, taken = self.step(x, y, lr)
            if not taken:
                self.skipped_steps += 1
                continue
            window_loss += loss
            window_wrong += wrong
            window_images += len(y)
            window_steps += 1
            self.iteration += 1
            progress.update(1)
            at_eval = self.iteration % eval_every == 0 or self.iteration == config.iters
            if self.iteration % log_every and not at_eval:
                continue

            # Sums over all ranks, so that every rank takes the same NaN and warm-up decisions; each rank's loss
            # is a mean over its share, so the global batch's is the mean over ranks.
            totals = torch.stack(
                [
                    window_loss.double(),
                    window_wrong.double(),
                    torch.tensor(window_images, dtype=torch.float64, device=self.device),
                ]
            )
            loss_sum, wrong, images = self.group.sum(totals).tolist()
            loss_sum /= self.group.world_size
            mean_loss, error = loss_sum / window_steps, wrong / images
            if not math.isfinite(mean_loss):
                progress.close()
                raise TrainingDiverged(
                    f"loss became {mean_loss} by iteration {self.iteration}; the last good checkpoint "
                    f"{self.run / LAST} is kept; try a lower --lr or --precision fp32"
                )
            if self.warming_up and warmup_finished(config, error):
                self.warming_up = False
                self._log(f"warm-up done at iteration {self.iteration} (training error {100 * error:.1f}%)")
            eval_loss += loss_sum
            eval_wrong += wrong
            eval_images += images
            eval_steps += window_steps
            window_loss.zero_()
            window_wrong.zero_()
            window_steps = window_images = 0
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
                started = time.perf_counter()
                val_error = self.validate()
                if not validated and val_error is not None:
                    validated = True
                    self._warn_if_validation_dominates(time.perf_counter() - started, train_seconds, eval_steps)
                if config.lr_schedule == "plateau" and self.plateau.update(config, val_error):
                    self._log(f"val error stalled at {self.plateau.best:.2f}%: lr divided by {1 / config.lr_decay:g}")
                last_row = {
                    "iteration": self.iteration,
                    "lr": lr,
                    "train_loss": eval_loss / eval_steps,
                    "train_error": 100 * eval_wrong / eval_images,
                    "val_error": val_error,
                    "images_per_sec": eval_images / max(train_seconds, 1e-9),
                }
                if self.metrics:
                    self.metrics.write(last_row)
                self.save(val_error)
                if val_error is not None:
                    self._log(
                        f"iteration {self.iteration}: train error {last_row['train_error']:.2f}%, "
                        f"val error {val_error:.2f}%, {last_row['images_per_sec']:.0f} images/s"
                        + (f", {self.skipped_steps} overflowing fp16 steps retried" if self.skipped_steps else "")
                        + (f", {self.batches.skipped} unreadable images skipped" if self.batches.skipped else "")
                    )
                eval_loss = eval_wrong = eval_images = eval_steps = 0
                train_seconds = 0.0
            tick = time.perf_counter()
        progress.close()
        if self.metrics:
            self.metrics.close()
        return last_row


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) one training run, data-parallel over torchrun's processes; returns the last metrics row."""
    with process_group(config.device) as group:
        return Trainer(config, resume=resume, group=group).fit()
