"""The training loop of both recipes: CIFAR (Sec. 4.2) and ImageNet (Sec. 3.4), one SGD step per iteration.

Under torchrun every process trains on its share of each global batch (DistributedDataParallel); rank 0 alone
logs, writes metrics and saves checkpoints.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic import check_output_folder, check_outside
from ..checkpoints import BEST, FINAL, LAST, latest_checkpoint, save_checkpoint
from ..data import ImageFiles, ImageSet, train_val_split
from ..data.classes import class_listing
from ..data.sampler import EpochSampler
from ..errors import UserError, parse_json
from ..evaluation.evaluate import validation_error
from ..models import ResNet, model_config
from ..runtime import autocast, keep_freed_memory, resolve_device, resolve_precision
from ..weights import TrainedModel, load_weights, pretrained_model
from .config import TrainConfig, epoch_iters
from .distributed import Group, process_group, sync_batchnorm
from .lock import run_lock
from .metrics import METRICS_FILE, MetricsLog
from .pipeline import Pipeline, pipeline_for
from .schedule import Plateau, learning_rate, warmup_finished
from .sessions import SESSIONS_FILE, record_session

LONG_VALIDATION = 2000  # images: a validation pass this long shows its own progress bar
MAX_VALIDATION_SHARE = 0.25  # of the run's time: above it, warn once that validation dominates
CONFIG_FILE = "config.json"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # save the current iteration, then stop
FORCE_HINT = "pass --force to replace it"  # how `resnets train` goes on over a user's files; experiments say otherwise
RUN_FILES = (LAST, BEST, FINAL, METRICS_FILE, SESSIONS_FILE)  # what a run writes beside its config.json


def run_inputs(source: str | Path | None) -> list[Path]:
    """What an output made from `source` must never replace, even when forced: the file itself and, where `source` is
    a run folder or a file in one, that run's own files (its config.json, metrics and checkpoints)."""
    if source is None:
        return []
    path = Path(source).expanduser()
    folder = path if path.is_dir() else path.parent
    own = [folder / name for name in (CONFIG_FILE, *RUN_FILES)] if (folder / CONFIG_FILE).is_file() else []
    return [p for p in (path, *own) if p.is_file()]


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(UserError):
    """SIGINT or SIGTERM: a checkpoint of the current iteration was saved; `--resume` continues from it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for a process ended by a signal


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


class Trainer:
    """Owns the model, optimizer and position of one run; `fit()` trains to `config.iters`.

    `group` is this process's place among torchrun's processes; without it the run is a single process. Nothing
    is written into the run folder until the data is read and a checkpoint (when resuming) restored.
    """

    def __init__(
        self,
        config: TrainConfig,
        resume: bool = False,
        group: Group | None = None,
        force: bool = False,
        replace_hint: str = FORCE_HINT,
    ):
        self.config = config
        self.run = Path(config.out)
        self.group = group or Group(resolve_device(config.device))
        self.device = self.group.device
        keep_freed_memory(self.device)  # no page faults per step on the CPU (runtime.py)
        self.precision = resolve_precision(config.precision, self.device)
        self.is_main = self.group.is_main
        torch.backends.cudnn.benchmark = not config.deterministic
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        found = self._find_checkpoint(resume, force, replace_hint)
        self.pipeline = pipeline_for(config)  # CIFAR's or ImageNet's: chosen once, from `augmentation`
        with self.group.main_first():  # one process per node decodes, caches and downloads; the others read them
            self.data = prepare_data(config, self.pipeline, progress=self.is_main)
            fine_tune = config.weights and not found
            initial = pretrained_model(config.model, config.weights, **config.model_options()) if fine_tune else None
        self.sampler = EpochSampler(
            len(self.data.train), config.batch_size, config.seed, self.group.rank, self.group.world_size
        )
        self.config = config = epoch_iters(config, self.sampler.steps_per_epoch)
        if config.lr_schedule == "plateau" and self.data.val is None:
            raise UserError(
                "--lr-schedule plateau divides the lr when the validation error stalls, but there is no validation "
                "set; add ROOT/val, pass --val-split N, or use a step schedule"
            )
        self._build(initial)
        if found:
            self._restore(*found)
        self._start(resumed=found is not None)

    def _find_checkpoint(self, resume: bool, force: bool, replace_hint: str) -> tuple[Path, dict] | None:
        """The checkpoint to continue from: required with `resume`, refused without it; a folder whose files no run
        of ours wrote is refused unless `force` (`replace_hint` says how to go on)."""
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
        if resume and not found:
            raise UserError(f"--resume: {self.run} holds no valid checkpoint to continue; start without --resume")
        if not found and not force:
            _refuse_foreign_config(self.run / CONFIG_FILE, replace_hint)
            check_output_folder(self.run, RUN_FILES, ours=(self.run / CONFIG_FILE).is_file(), fix=replace_hint)
        return found

    def _build(self, initial: TrainedModel | None) -> None:
        """The network (fresh, or with the initial weights), its optimizer, grad scaler and bookkeeping."""
        config = self.config
        torch.manual_seed(config.seed)  # the initial weights
        self.model_config = model_config(
            config.model, num_classes=len(self.data.train.classes), **config.model_options()
        )
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
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]
        self.warming_up = state["warming_up"]
        self.best_val_error = state["best_val_error"]
        self.val_error = state.get("val_error")  # absent from checkpoints written before it was kept
        self.plateau = Plateau(**state["plateau"])
        self.data.mean, self.data.std = state["pixel_mean"], state["pixel_std"]
        self._log(f"resuming {path} at iteration {self.iteration}")

    def _start(self, resumed: bool) -> None:
        """Write the run's config and session, then ready the forward pass, the batches and the metrics log."""
        if self.is_main:
            self.run.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run / CONFIG_FILE)
            record_session(self.run, self.iteration, self.device, self.precision)
        # self.model stays the bare module, so checkpoints keep torchvision's key names.
        parallel = self.group.data_parallel(self.model)
        self.forward = torch.compile(parallel, mode=self.config.compile_mode) if self.config.compile else parallel
        if self.data.mean is None:  # neither restored nor brought by the initial weights: measure it (once)
            self.data.mean = self.pipeline.mean(self.data.train, progress=self.is_main)
        self.batches = self.pipeline.batches(self.data.train, self.sampler, self.data.mean, self.data.std, self.device)
        resume_from = self.iteration if resumed else None
        self.metrics = MetricsLog(self.run, resume_from, self.config.tensorboard) if self.is_main else None

    def state(self) -> dict:
        """Everything needed to continue exactly, and to rebuild and normalise the model for testing."""
        return {
            "iteration": self.iteration,
            "model_name": self.config.model,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "classes": self.data.train.classes,
            "train_images": len(self.data.train),  # with the classes: which data the run learns from
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
            self._log(
                f"warning: validation takes {val_seconds:.0f} s and would be {100 * share:.0f}% of the remaining "
                f"run ({validations} validations, every {eval_every} iterations); pass --eval-every N with a larger "
                "N to validate less often"
            )

    def save(self, val_error: float | None) -> None:
        """Rank 0 writes last.pt, and best.pt when validation on held-out training images improved (never when
        validating on the test split: no model selection on test data); every rank keeps the same bookkeeping.

        Weights that are not all finite are never saved: the checkpoint kept is the last good one."""
        bad = non_finite(self.model, self.optimizer)
        if bad:
            raise TrainingDiverged(
                f"{bad} weights or optimizer values became NaN or infinite by iteration {self.iteration}; "
                f"{self._kept()}; try a lower --lr or --precision fp32"
            )
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
        self._saved = (self.iteration, time.monotonic())

    def _kept(self) -> str:
        last = self.run / LAST
        return f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint was written"

    def _log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def fit(self) -> dict:
        """Train from the current iteration to `config.iters`, validating and checkpointing on the way; SIGINT and
        SIGTERM save the current iteration and stop, with the command that resumes."""
        config = self.config
        eval_every = config.eval_interval(self.sampler.steps_per_epoch)
        self._window = (torch.zeros((), device=self.device), torch.zeros((), device=self.device, dtype=torch.long))
        self._tally, self._span, self._last_row, self._validated = Tally(), Tally(), {}, False
        self._saved = (self.iteration, time.monotonic())
        progress = self._progress_bar()
        tick = time.perf_counter()
        with signals_caught() as caught:
            while self.iteration < config.iters:
                lr = learning_rate(config, self.iteration, self.warming_up, self.plateau)
                if not self._train_step(lr):
                    continue
                progress.update(1)
                at_eval = self.iteration % eval_every == 0 or self.iteration == config.iters
                at_log = at_eval or self.iteration % config.log_every == 0
                if at_log:
                    self._tally.seconds += time.perf_counter() - tick
                    self._end_window(progress, lr)
                    if at_eval:
                        self._end_span(lr)
                    tick = time.perf_counter()
                self._checkpoint_if_due(at_log, caught, progress)
        progress.close()
        if self.metrics:
            self.metrics.close()
        return self._last_row

    def _progress_bar(self) -> tqdm:
        return tqdm(
            total=self.config.iters,
            initial=self.iteration,
            unit="it",
            disable=not self.is_main,
            dynamic_ncols=True,
            mininterval=1.0,
            desc=self.config.model,
        )

    def _train_step(self, lr: float) -> bool:
        """One iteration into the running window; False when fp16's scaler skipped it (then it is repeated)."""
        x, y = self.batch(self.iteration)
        loss, wrong, taken = self.step(x, y, lr)
        if not taken:
            self.skipped_steps += 1
            return False
        self._window[0].add_(loss)
        self._window[1].add_(wrong)
        self._tally.images += len(y)
        self._tally.steps += 1
        self.iteration += 1
        return True

    def _end_window(self, progress: tqdm, lr: float) -> None:
        """At a log point: the window's loss and error over all ranks, the NaN check, the warm-up's end."""
        # Sums over all ranks, so that every rank takes the same NaN and warm-up decisions; each rank's loss is a
        # mean over its share, so the global batch's is the mean over ranks.
        images = torch.tensor(self._tally.images, dtype=torch.float64, device=self.device)
        totals = torch.stack([self._window[0].double(), self._window[1].double(), images])
        loss_sum, wrong, images = self.group.sum(totals).tolist()
        loss_sum /= self.group.world_size
        steps = self._tally.steps
        mean_loss, error = loss_sum / steps, wrong / images
        if not math.isfinite(mean_loss):
            progress.close()
            raise TrainingDiverged(
                f"loss became {mean_loss} by iteration {self.iteration}; {self._kept()}; "
                "try a lower --lr or --precision fp32"
            )
        if self.warming_up and warmup_finished(self.config, error):
            self.warming_up = False
            self._log(f"warm-up done at iteration {self.iteration} (training error {100 * error:.1f}%)")
        span = self._span
        span.loss, span.wrong, span.images = span.loss + loss_sum, span.wrong + wrong, span.images + images
        span.steps, span.seconds = span.steps + steps, span.seconds + self._tally.seconds
        self._window[0].zero_()
        self._window[1].zero_()
        self._tally = Tally()
        progress.set_postfix(
            loss=f"{mean_loss:.3f}",
            err=f"{100 * error:.1f}%",
            lr=f"{lr:g}",
            img_s=f"{span.images / max(span.seconds, 1e-9):.0f}",
            refresh=False,
        )

    def _end_span(self, lr: float) -> None:
        """At a validation point: validate, step a plateau schedule, write the metrics row and the checkpoint."""
        config, span = self.config, self._span
        started = time.perf_counter()
        val_error = self.validate()
        if not self._validated and val_error is not None:
            self._validated = True
            self._warn_if_validation_dominates(time.perf_counter() - started, span.seconds, span.steps)
        if config.lr_schedule == "plateau" and self.plateau.update(config, val_error):
            self._log(f"val error stalled at {self.plateau.best:.2f}%: lr divided by {1 / config.lr_decay:g}")
        row = {
            "iteration": self.iteration,
            "lr": lr,
            "train_loss": span.loss / span.steps,
            "train_error": 100 * span.wrong / span.images,
            "val_error": val_error,
            "images_per_sec": span.images / max(span.seconds, 1e-9),
        }
        if self.metrics:
            self.metrics.write(row)
        self.save(val_error)
        if val_error is not None:
            self._log(
                f"iteration {self.iteration}: train error {row['train_error']:.2f}%, "
                f"val error {val_error:.2f}%, {row['images_per_sec']:.0f} images/s"
                + (f", {self.skipped_steps} overflowing fp16 steps retried" if self.skipped_steps else "")
                + (f", {self.batches.skipped} unreadable images skipped" if self.batches.skipped else "")
            )
        self._last_row, self._span = row, Tally()

    def _checkpoint_if_due(self, at_log: bool, caught: list[int], progress: tqdm) -> None:
        """Save last.pt when `checkpoint_minutes` passed since the last save, or a signal asks to stop (then stop).

        Under torchrun the ranks agree at log points only, so that every rank saves (and stops) at one iteration.
        """
        if self.group.active and not at_log:
            return
        due = time.monotonic() - self._saved[1] >= 60 * self.config.checkpoint_minutes
        signum = caught[-1] if caught else 0
        if self.group.active:
            due, signum = self.group.from_main(float(due)) > 0, self.group.min_max(signum)[1]
        if (due or signum) and self._saved[0] != self.iteration:
            self.save(None)
        if signum:
            progress.close()
            if self.metrics:
                self.metrics.close()
            name = signal.Signals(signum).name
            raise TrainingInterrupted(
                f"{name} at iteration {self.iteration}: saved {self.run / LAST}; continue with: "
                f"resnets train --out {self.run} --resume",
                signum,
            )


def non_finite(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """How many values of the model's parameters and buffers and of the optimizer's state are NaN or infinite."""
    tensors = [*model.state_dict().values()]
    tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point())


@contextmanager
def signals_caught() -> Iterator[list[int]]:
    """SIGINT and SIGTERM, while the block runs, only append their number to the yielded list."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield caught
        return
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOP_SIGNALS}
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _refuse_foreign_config(path: Path, replace_hint: str) -> None:
    """A config.json that no resnets run wrote is the user's: refuse to replace it."""
    if not path.is_file():
        return
    try:
        TrainConfig.from_dict(parse_json(path.read_text()), source=str(path))
    except (OSError, ValueError, TypeError, AttributeError, UserError):
        raise UserError(f"{path} was not written by resnets train; choose another --out, or {replace_hint}") from None


def train(
    config: TrainConfig,
    resume: bool = False,
    force: bool = False,
    group: Group | None = None,
    replace_hint: str = FORCE_HINT,
) -> dict:
    """Run (or resume) one training run, data-parallel over torchrun's processes; returns the last metrics row.

    The run folder is locked meanwhile: a second trainer on it is refused. It may not lie inside the data folder."""
    if config.data:
        check_outside(Path(config.out), [Path(config.data)])
    with ExitStack() as stack:
        group = group or stack.enter_context(process_group(config.device))
        stack.enter_context(run_lock(Path(config.out), take=group.is_main))
        return Trainer(config, resume=resume, group=group, force=force, replace_hint=replace_hint).fit()
