"""Classification training on the engine, for both recipes: CIFAR (Sec. 4.2) and ImageNet (Sec. 3.4), one SGD step
per iteration.

Under torchrun every process trains on its share of each global batch (DistributedDataParallel); rank 0 alone
logs, writes metrics and saves checkpoints.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.checkpoints import BEST, LAST
from ..core.errors import UserError
from ..core.runtime import autocast
from ..data import ImageFiles, ImageSet, train_val_split
from ..data.classes import class_listing
from ..data.sampler import EpochSampler
from ..engine.distributed import Group, sync_batchnorm
from ..engine.schedule import Plateau, learning_rate, milestones_passed, warmup_finished
from ..engine.trainer import FORCE_HINT, Engine, train_run
from ..evaluation.evaluate import validation_error
from ..models import ResNet, model_config
from ..weights.files import TrainedModel, load_weights, pretrained_model
from .config import TrainConfig, epoch_iters
from .pipeline import Pipeline, pipeline_for

LONG_VALIDATION = 2000  # images: a validation pass this long shows its own progress bar
MAX_VALIDATION_SHARE = 0.25  # of the run's time: above it, warn once that validation dominates


@dataclass
class TrainData:
    """The training images, the validation images (if any), and the input normalisation: the per-pixel mean of
    training, or the mean and std of the initial weights' own training (torchvision's) when fine-tuning."""

    train: ImageSet | ImageFiles
    val: ImageSet | ImageFiles | None
    mean: torch.Tensor | None = None  # set by the Trainer: restored, taken from the initial weights, or measured
    std: torch.Tensor | None = None


def prepare_data(config: TrainConfig, pipeline: Pipeline, progress: bool = True) -> TrainData:
    """The training images and the validation images: a held-out part of train, or the data's own held-out split
    (CIFAR: ROOT/test, in memory; ImageNet: ROOT/val, decoded on demand) if it has one."""
    full = pipeline.load("train", progress=progress)
    if progress and (full.skipped or full.ignored):
        print(f"data: skipped {full.skipped} unreadable images, ignored {full.ignored} non-image files")
    if len(full.classes) < 2:  # softmax over one class is 0% error from the first step: nothing is learned
        raise UserError(
            f"the training images of {config.data} have one class ({', '.join(full.classes)}); a classifier needs at "
            "least two class folders"
        )
    if config.val_split:
        train_idx, val_idx = train_val_split(full.labels, config.val_split, config.split_seed)
        return TrainData(full.subset(train_idx), full.subset(val_idx))
    # Only a missing split means no validation set (official CIFAR-10 always has 'test'); a broken one still fails.
    if not pipeline.has_held_out(Path(config.data).expanduser()):
        if progress:
            print(
                f"warning: --val-split 0 and {config.data} has no {pipeline.held_out} split: this run validates "
                "on nothing (val_error stays empty, no best.pt); pass --val-split N to hold out N training images",
                file=sys.stderr,
            )
        return TrainData(full, None)
    return TrainData(full, pipeline.load(pipeline.held_out, config.val_labels, progress=progress))


def load_initial_weights(model: ResNet, data: TrainData, initial: TrainedModel, source: str) -> str:
    """Fine-tuning: `initial`'s weights key for key (a classifier for another class count starts afresh), and the
    input normalisation they were trained with."""
    fresh = load_weights(model, initial.model.state_dict(), source=source, reset_head=True)
    data.mean, data.std = initial.pixel_mean, initial.pixel_std
    return f"initial weights from {source}" + (f"; {', '.join(fresh)} start afresh (other classes)" if fresh else "")


@dataclass
class Tally:
    """Sums over a span of iterations: the loss (of each step's mean), misclassified and seen images, steps."""

    loss: float = 0.0
    wrong: float = 0.0
    images: float = 0.0
    steps: int = 0
    seconds: float = 0.0  # training time, validation excluded


class Trainer(Engine):
    """A classifier's run on the engine: the model, data, schedule and validation; `fit()` trains to `config.iters`.

    `group` is this process's place among torchrun's processes; without it the run is a single process. Nothing
    is written into the run folder until the data is read and a checkpoint (when resuming) restored.
    """

    parse_config = staticmethod(TrainConfig.from_dict)

    def __init__(
        self,
        config: TrainConfig,
        resume: bool = False,
        group: Group | None = None,
        force: bool = False,
        replace_hint: str = FORCE_HINT,
    ):
        super().__init__(config.out, config.device, config.precision, group, replace_hint)
        self.config = config
        self.description = config.model
        torch.backends.cudnn.benchmark = not config.deterministic
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        found = self.find_checkpoint(resume, force)
        self.pipeline = pipeline_for(config)  # CIFAR's or ImageNet's: chosen once, from `augmentation`
        with self.group.main_first():  # one process per node decodes, caches and downloads; the others read them
            self.data = prepare_data(config, self.pipeline, progress=self.is_main)
            initial = None
            if config.weights and not found:  # fine-tuning
                initial = pretrained_model(config.model, config.weights, **config.model_options())
        self.sampler = EpochSampler(
            len(self.data.train), config.batch_size, config.seed, self.group.rank, self.group.world_size
        )
        self.config = config = epoch_iters(config, self.sampler.steps_per_epoch)
        self.iters, self.checkpoint_minutes = config.iters, config.checkpoint_minutes
        if config.lr_schedule == "plateau" and self.data.val is None:
            raise UserError(
                "--lr-schedule plateau divides the lr when the validation error stalls, but there is no validation "
                "set; add ROOT/val, pass --val-split N, or use a step schedule"
            )
        self._build(initial)
        if found:
            self._restore(*found)
        self._ready(resumed=found is not None)

    def _build(self, initial: TrainedModel | None) -> None:
        """The network (fresh, or with the initial weights), its optimizer, grad scaler and bookkeeping."""
        config = self.config
        torch.manual_seed(config.seed)  # the initial weights
        self.model_config = model_config(
            config.model, num_classes=len(self.data.train.classes), **config.model_options()
        )
        self.model = ResNet(self.model_config)
        if initial is not None:
            assert config.weights is not None  # initial weights come from --weights
            self.log(load_initial_weights(self.model, self.data, initial, config.weights))
        self.model.to(self.device)
        if config.channels_last:
            # torch's stubs list no memory_format for Module.to, which takes it (and returns the module)
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if config.sync_bn and self.group.active:
            self.model = sync_batchnorm(self.model, self.device)
        self.use_optimizer(self.model.parameters(), config.momentum, config.weight_decay)
        self.warming_up = config.warmup_lr is not None
        self.best_val_error: float | None = None
        self.val_error: float | None = None  # of the latest validation, kept with the weights it measured
        self.plateau = Plateau()

    def _restore(self, path: Path, state: dict) -> None:
        """Continue from `state`, after checking that it is this run's: same network, same classes, same data."""
        config, classes = self.config, self.data.train.classes
        if state["model_name"] != config.model:
            raise UserError(f"{path} is a {state['model_name']}, not --model {config.model}; resume with the run's")
        if state["classes"] != classes or state.get("train_images", len(self.data.train)) != len(self.data.train):
            raise UserError(
                f"--data {config.data} is not the data of the run in {self.run}: it has {len(self.data.train)} "
                f"training images of {class_listing(classes)}, the run {state.get('train_images', 'its')} of "
                f"{class_listing(state['classes'])}; resume with the run's --data"
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            reason = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
            raise UserError(f"{path} does not fit --model {config.model} ({reason}); resume with the run's") from None
        self.restore_optimizer(state)
        self.warming_up = state["warming_up"]
        self.best_val_error = state["best_val_error"]
        self.val_error = state.get("val_error")  # absent from checkpoints written before it was kept
        self.plateau = Plateau(**state["plateau"])
        self.data.mean, self.data.std = state["pixel_mean"], state["pixel_std"]
        self.log(f"resuming {path} at iteration {self.iteration}")

    def _ready(self, resumed: bool) -> None:
        """Write the run's config and session, then ready the forward pass, the batches and the metrics log."""
        self.start(self.config.to_dict(), resumed, tb=self.config.tensorboard)
        # self.model stays the bare module, so checkpoints keep torchvision's key names.
        parallel = self.group.data_parallel(self.model)
        self.forward = torch.compile(parallel, mode=self.config.compile_mode) if self.config.compile else parallel
        if self.data.mean is None:  # neither restored nor brought by the initial weights: measure it (once)
            self.data.mean = self.pipeline.mean(self.data.train, progress=self.is_main)
        self.batches = self.pipeline.batches(self.data.train, self.sampler, self.data.mean, self.data.std, self.device)

    def state(self) -> dict:
        """Everything needed to continue exactly, and to rebuild and normalise the model for testing."""
        return {
            **super().state(),
            "model_name": self.config.model,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "classes": self.data.train.classes,
            "train_images": len(self.data.train),  # with the classes: which data the run learns from
            "pixel_mean": self.data.mean,
            "pixel_std": self.data.std,
            "model": self.model.state_dict(),
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
        """One SGD step; the detached loss, the number of misclassified images, and whether fp16 took the step."""
        with autocast(self.device, self.precision):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        taken = self.optimize(loss, lr)
        return loss.detach(), (logits.detach().argmax(1) != y).sum(), taken

    def train_step(self) -> bool:
        """One iteration into the running window; False when fp16's scaler skipped it (then it is repeated)."""
        self._lr = scheduled_lr(self.config, self.iteration, self.warming_up, self.plateau)
        x, y = self.batch(self.iteration)
        loss, wrong, taken = self.step(x, y, self._lr)
        if not taken:
            return False
        self._window[0].add_(loss)
        self._window[1].add_(wrong)
        self._tally.images += len(y)
        self._tally.steps += 1
        return True

    def validate(self) -> float | None:
        """Top-1 error (%) on the validation images, measured by rank 0 and shared; None without a validation set."""
        val = self.data.val
        if val is None:
            return None
        if not self.is_main:  # rank 0 validates the model it saves (without --sync-bn, BN buffers differ by rank)
            return self.group.from_main(math.nan)
        assert self.data.mean is not None  # restored, brought by the initial weights or measured before training
        result = validation_error(
            self.model,
            val,
            self.data.mean,
            std=self.data.std,
            view=self.pipeline.validation_view,
            resize=self.config.test_resize,
            crop=self.config.crop_size,
            device=self.device,
            precision=self.precision,
            batch_size=self.config.eval_batch_size,
            workers=self.pipeline.validation_workers,
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
            self.log(
                f"warning: validation takes {val_seconds:.0f} s and would be {100 * share:.0f}% of the remaining "
                f"run ({validations} validations, every {eval_every} iterations); pass --eval-every N with a larger "
                "N to validate less often"
            )

    def save(self, val_error: float | None = None) -> None:
        """Rank 0 writes last.pt, and best.pt when validation on held-out training images improved (never when
        validating on the test split: no model selection on test data); every rank keeps the same bookkeeping."""
        improved = val_error is not None and (self.best_val_error is None or val_error < self.best_val_error)
        improved = improved and self.config.selects_on_validation
        if improved:
            self.best_val_error = val_error
        self.val_error = val_error
        self.write_checkpoint((LAST, BEST) if improved else (LAST,))

    def begin(self) -> None:
        """Empty running sums: the window between two log points (on the device: no sync per step), the span
        between two validations."""
        self._window = (torch.zeros((), device=self.device), torch.zeros((), device=self.device, dtype=torch.long))
        self._tally, self._span, self._validated = Tally(), Tally(), False
        self._eval_every = self.config.eval_interval(self.sampler.steps_per_epoch)
        self._tick = time.perf_counter()

    def log_point(self, bar: tqdm) -> bool:
        """At a log point, the window's figures; at a validation point, validation, metrics row and checkpoint."""
        at_eval = self.iteration % self._eval_every == 0 or self.iteration == self.config.iters
        if not (at_eval or self.iteration % self.config.log_every == 0):
            return False
        self._tally.seconds += time.perf_counter() - self._tick
        self._end_window(bar)
        if at_eval:
            self._end_span()
        self._tick = time.perf_counter()
        return True

    def _end_window(self, bar: tqdm) -> None:
        """At a log point: the window's loss and error over all ranks, the NaN check, the warm-up's end."""
        # Sums over all ranks, so that every rank takes the same NaN and warm-up decisions; each rank's loss is a
        # mean over its share, so the global batch's is the mean over ranks.
        images = torch.tensor(self._tally.images, dtype=torch.float64, device=self.device)
        totals = torch.stack([self._window[0].double(), self._window[1].double(), images])
        loss_sum, wrong, images = self.group.sum(totals).tolist()
        loss_sum /= self.group.world_size
        steps = self._tally.steps
        mean_loss, error = loss_sum / steps, wrong / images
        self.check_loss(mean_loss)
        if self.warming_up and warmup_finished(error, self.config.warmup_until_error):
            self.warming_up = False
            self.log(f"warm-up done at iteration {self.iteration} (training error {100 * error:.1f}%)")
        span = self._span
        span.loss, span.wrong, span.images = span.loss + loss_sum, span.wrong + wrong, span.images + images
        span.steps, span.seconds = span.steps + steps, span.seconds + self._tally.seconds
        self._window[0].zero_()
        self._window[1].zero_()
        self._tally = Tally()
        bar.set_postfix(
            loss=f"{mean_loss:.3f}",
            err=f"{100 * error:.1f}%",
            lr=f"{self._lr:g}",
            img_s=f"{span.images / max(span.seconds, 1e-9):.0f}",
            refresh=False,
        )

    def _end_span(self) -> None:
        """At a validation point: validate, step a plateau schedule, write the metrics row and the checkpoint."""
        config, span = self.config, self._span
        started = time.perf_counter()
        val_error = self.validate()
        if not self._validated and val_error is not None:
            self._validated = True
            self._warn_if_validation_dominates(time.perf_counter() - started, span.seconds, span.steps)
        if config.lr_schedule == "plateau":
            assert val_error is not None  # a plateau schedule needs a validation set: checked when the run starts
            if self.plateau.update(val_error, config.plateau_patience, config.plateau_min_delta):
                self.log(f"val error stalled at {self.plateau.best:.2f}%: lr divided by {1 / config.lr_decay:g}")
        row = {
            "iteration": self.iteration,
            "lr": self._lr,
            "train_loss": span.loss / span.steps,
            "train_error": 100 * span.wrong / span.images,
            "val_error": val_error,
            "images_per_sec": span.images / max(span.seconds, 1e-9),
        }
        if self.metrics:
            self.metrics.write(row)
        self.save(val_error)
        if val_error is not None:
            self.log(
                f"iteration {self.iteration}: train error {row['train_error']:.2f}%, "
                f"val error {val_error:.2f}%, {row['images_per_sec']:.0f} images/s"
                + (f", {self.skipped_steps} overflowing fp16 steps retried" if self.skipped_steps else "")
                + (f", {self.batches.skipped} unreadable images skipped" if self.batches.skipped else "")
            )
        self.last_row, self._span = row, Tally()


def scheduled_lr(config: TrainConfig, iteration: int, warming_up: bool, plateau: Plateau) -> float:
    """The classifier's lr at `iteration`: `warmup_lr` while warming up (Sec. 4.2), else the recipe's lr divided at
    its milestones (step) or at each plateau of the validation error (Sec. 3.4)."""
    if warming_up:
        assert config.warmup_lr is not None  # a run warms up only with a --warmup-lr
        return config.warmup_lr
    if config.lr_schedule == "plateau":
        return learning_rate(config.lr, config.lr_decay, plateau.divisions)
    return learning_rate(config.lr, config.lr_decay, milestones_passed(iteration, config.milestone_iters))


def train(
    config: TrainConfig,
    resume: bool = False,
    force: bool = False,
    group: Group | None = None,
    replace_hint: str = FORCE_HINT,
) -> dict:
    """Run (or resume) one training run, data-parallel over torchrun's processes; returns the last metrics row.

    The run folder is locked meanwhile: a second trainer on it is refused. It may not lie inside the data folder."""

    def make(group: Group) -> Trainer:
        return Trainer(config, resume=resume, group=group, force=force, replace_hint=replace_hint)

    return train_run(make, config.out, config.data, config.device, group)
