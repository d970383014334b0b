"""Training Faster R-CNN C4: one SGD step per mini-batch of images, exactly resumable, as `resnets train` is.

Every random choice (image order, flips, the RPN's and the head's samples) is a function of (seed, iteration), so
`--resume` continues as if never stopped. Checkpoints are written atomically and loaded with weights_only=True.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_write, check_output_folder
from ..checkpoints import LAST, latest_checkpoint, load_checkpoint, save_checkpoint
from ..data.decode import decode_image
from ..data.rng import seeded_generator
from ..data.sampler import EpochSampler
from ..errors import UserError
from ..models.blocks import STRIDE_ON
from ..runtime import autocast, keep_freed_memory, resolve_device, resolve_precision
from ..training.config import (
    DEVICES,
    MECHANICS,
    PRECISIONS,
    check_unchanged,
    flag,
    read_saved_config,
    refuse_change,
    typed,
)
from ..training.distributed import Group, sync_batchnorm
from ..training.loop import TrainingDiverged, TrainingInterrupted, non_finite, signals_caught
from ..training.metrics import METRICS_FILE, MetricsLog
from .config import FROM_SCRATCH, FasterRCNNConfig
from .data import DetectionSet, load_detection_split
from .model import FasterRCNN, faster_rcnn, rebuild
from .transforms import flip_boxes, resize_image, resize_scale, resized_size

KIND = "faster-rcnn-c4"
LOSSES = ("rpn_cls", "rpn_box", "cls", "box")
COLUMNS = ("iteration", "lr", "loss", *LOSSES, "images_per_sec")
FLIP_STREAM, SAMPLE_STREAM = 11, 12  # random streams apart from the image order's
CONFIG_FILE = "config.json"
# What may differ between the sessions of one run: the classifier's run mechanics, and how often last.pt is written.
RUN_MECHANICS = MECHANICS | {"checkpoint_every"}
# FasterRCNNConfig fields that DetectionTrainConfig sets from its own settings (or the data), not through `--set`.
OWN_FLAGS = ("backbone", "num_classes", "stride_on", "pooler", "min_size", "max_size")
REPLACE_HINT = "pass --force to replace them"
RUN_FILES = (CONFIG_FILE, LAST, METRICS_FILE)  # what a detection run writes into its folder


@dataclass
class DetectionTrainConfig:
    """One detection training run; the defaults are a short fine-tuning, the recipe detection-voc-paper the paper's."""

    data: str = ""  # a VOC, labelImg or COCO folder
    split: str = "train"
    out: str = ""
    backbone: str = "resnet101"
    backbone_weights: str | None = None  # a run folder of `resnets train`, a weights file, or 'torchvision-v1'
    stride_on: str | None = None
    pooler: str = "roi_pool"  # the paper's RoI pooling, or 'roi_align'
    min_size: int = 600  # shorter side in pixels (py-faster-rcnn SCALES)
    max_size: int = 1000  # longer side at most (MAX_SIZE)
    flip: bool = True  # horizontal flips, each image with probability 1/2
    model: dict[str, Any] = field(default_factory=dict)  # any other FasterRCNNConfig field (e.g. rpn_post_nms_test)
    # SGD as py-faster-rcnn: lr 0.001, momentum 0.9; the ResNet paper's weight decay 1e-4.
    images_per_batch: int = 1  # the global batch: under torchrun split evenly over the processes
    iters: int = 20000
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.75,)  # fractions of iters where the lr is multiplied by lr_decay
    lr_decay: float = 0.1
    skip_bad_images: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # bf16 where the hardware has it (GPU, AVX512-BF16 / AMX CPUs), else fp32
    channels_last: bool = True
    checkpoint_every: int = 500
    log_every: int = 10

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(DetectionTrainConfig)
        for f in dataclasses.fields(self):
            if f.name != "model":  # checked setting by setting, against FasterRCNNConfig's fields
                setattr(self, f.name, typed(getattr(self, f.name), hints[f.name], flag(f.name)))
        self.model = model_settings(self.model)
        for name in ("images_per_batch", "iters", "checkpoint_every", "log_every", "min_size", "max_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{flag(name)} {getattr(self, name)} must be a positive integer")
        if self.lr <= 0:
            raise UserError(f"--lr {self.lr} must be positive")
        for name in ("weight_decay", "seed"):
            if getattr(self, name) < 0:
                raise UserError(f"{flag(name)} {getattr(self, name)} must be at least 0")
        if not 0 <= self.momentum < 1 or not 0 < self.lr_decay <= 1:
            raise UserError(f"momentum {self.momentum} must be in [0, 1) and lr_decay {self.lr_decay} in (0, 1]")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            shown = ",".join(map(str, self.milestones))
            raise UserError(f"--milestones {shown} must be increasing fractions of --iters in (0, 1)")
        for name, choices in (("device", DEVICES), ("precision", PRECISIONS), ("stride_on", (None, *STRIDE_ON))):
            if getattr(self, name) not in choices:
                shown = ", ".join(c for c in choices if c)
                raise UserError(f"{flag(name)} {getattr(self, name)!r} is not one of {shown}")
        self.detector(1)  # every model setting in its range, before any data is read

    def detector(self, num_classes: int) -> FasterRCNNConfig:
        """The model's configuration for `num_classes` classes; a bad field is a one-line error."""
        try:
            return FasterRCNNConfig(
                backbone=self.backbone,
                num_classes=num_classes,
                stride_on=self.stride_on,
                pooler=self.pooler,
                min_size=self.min_size,
                max_size=self.max_size,
                **self.model,
            )
        except (TypeError, ValueError) as e:
            raise UserError(f"model settings: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_values(cls, values: dict[str, Any], source: str) -> DetectionTrainConfig:
        """Build from a recipe's or a saved config's values, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")
        return cls(**values)


def model_settings(values: Any) -> dict[str, Any]:
    """`--set` settings checked by name and type against FasterRCNNConfig's fields: a wrong one is one line."""
    if not isinstance(values, dict):
        raise UserError(f"model settings {values!r} must be a table of FasterRCNNConfig fields")
    hints = typing.get_type_hints(FasterRCNNConfig)
    settable = sorted(set(hints) - set(OWN_FLAGS))
    checked = {}
    for key, value in values.items():
        if key in OWN_FLAGS:
            source = "the data's classes" if key == "num_classes" else flag(key)
            raise UserError(f"--set {key}: not one of the model settings; it comes from {source}")
        if key not in hints:
            raise UserError(f"--set {key}: not one of the model settings ({', '.join(settable)})")
        checked[key] = typed(value, hints[key], f"--set {key}")
    return checked


def model_setting(config: DetectionTrainConfig, key: str) -> Any:
    """The value of FasterRCNNConfig field `key` that a run of `config` trains with: set, from scratch, or default."""
    if key in config.model:
        return config.model[key]
    if config.backbone_weights is None and key in FROM_SCRATCH:
        return FROM_SCRATCH[key]
    return getattr(FasterRCNNConfig, key)


def resumed_config(given: dict[str, Any], settings: dict[str, Any], saved: Any, source: str) -> DetectionTrainConfig:
    """The configuration of the run whose config.json (`source`) holds `saved`, the flags `given` and the `--set`
    `settings` on top, where only RUN_MECHANICS may differ from what the run was trained with (as a classifier's)."""
    try:
        before = DetectionTrainConfig.from_values(saved, source)
    except UserError as e:
        raise UserError(f"{source} is not the config of a `resnets detect train` run ({e})") from None
    values = {**before.to_dict(), **given, "model": {**before.model, **settings}}
    config = DetectionTrainConfig.from_values(values, source)
    check_same_run(config, before, source)
    return config


def check_same_run(config: DetectionTrainConfig, before: DetectionTrainConfig, source: str) -> None:
    """Refuse a `config` that differs from `before`, the run's (from `source`), in more than RUN_MECHANICS."""
    for key in sorted({*config.model, *before.model}):
        new, old = model_setting(config, key), model_setting(before, key)
        if new != old:
            refuse_change(f"--set {key}", new, old, source)
    check_unchanged(config, before, source, RUN_MECHANICS | {"model"})


def _unloadable(run: Path) -> str | None:
    """Why the first checkpoint file in `run` does not load, or None if it holds none (once none of them loads)."""
    for path in sorted(run.glob("*.pt")) if run.is_dir() else ():
        try:
            load_checkpoint(path)
        except UserError as e:
            return str(e)
    return None


def _is_detection_run(run: Path) -> bool:
    """Whether `run` holds the config.json of a detection run; one that no detection run wrote is refused."""
    path = run / CONFIG_FILE
    if not path.is_file():
        return False
    fix = "choose another --out, or pass --force to replace it"
    try:
        DetectionTrainConfig.from_values(read_saved_config(path, fix), str(path))
    except UserError:
        raise UserError(f"{path} was not written by resnets detect train; {fix}") from None
    return True


def training_example(
    dataset: DetectionSet, index: int, scale_to: tuple[int, int], flip: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Image `index` resized (shorter side, longer at most) and maybe flipped, as float, with its target."""
    a = dataset.annotations[index]
    image = torch.from_numpy(decode_image(a.file))
    if image.shape[1:] != (a.height, a.width):
        raise UserError(f"{a.file} decodes to {tuple(image.shape[1:])} pixels, its header said {a.height}x{a.width}")
    scale = resize_scale(a.height, a.width, *scale_to)
    x = resize_image(image, scale)
    boxes = torch.from_numpy(dataset.continuous(a.boxes)) * scale
    if flip:
        x = x.flip(2)
        boxes = flip_boxes(boxes, x.shape[2])
    return x, {"boxes": boxes, "labels": torch.from_numpy(a.labels)}


def learning_rate(config: DetectionTrainConfig, iteration: int) -> float:
    """The step schedule: lr times lr_decay at each milestone passed."""
    passed = sum(iteration >= round(m * config.iters) for m in config.milestones)
    return config.lr * config.lr_decay**passed


class DetectionTrainer:
    """Owns the model, optimizer and position of one run; `fit()` trains to `config.iters`.

    Under torchrun (`group`) every process is a DistributedDataParallel replica that trains on its slice of each
    global batch of `images_per_batch` images; rank 0 alone prints, writes metrics.csv and checkpoints. Each image
    is padded to the global batch's size and samples with its own generator, keyed by its place in the global
    batch, and weighs the same in the loss: 1 and N processes compute the same steps (up to rounding).
    """

    def __init__(
        self, config: DetectionTrainConfig, resume: bool = False, group: Group | None = None, force: bool = False
    ):
        self.config = config
        self.run = Path(config.out)
        self.group = group or Group(resolve_device(config.device))
        self.device = self.group.device
        keep_freed_memory(self.device)  # no page faults per step on the CPU (runtime.py)
        self.is_main = self.group.is_main
        self.precision = resolve_precision(config.precision, self.device)
        found = self._find_checkpoint(resume, force)
        classes = found[1]["classes"] if found else None
        self.data = load_detection_split(
            config.data, config.split, classes=classes, skip_bad_images=config.skip_bad_images
        )
        if self.data.summary():
            self._log(f"data: {self.data.summary()}")
        self.sampler = EpochSampler(
            len(self.data.annotations), config.images_per_batch, config.seed, self.group.rank, self.group.world_size
        )
        self._build(found[1] if found else None)
        self.iteration = 0
        if found:
            self.optimizer.load_state_dict(found[1]["optimizer"])
            self.iteration = found[1]["iteration"]
            self._log(f"resuming {found[0]} at iteration {self.iteration}")
        # self.model stays the bare module, so checkpoints keep its key names (no DDP "module." prefix).
        self.forward = self.group.data_parallel(self.model)
        self.metrics = None
        if self.is_main:
            self.run.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.run / CONFIG_FILE) as f:
                f.write((json.dumps(config.to_dict(), indent=2) + "\n").encode())
            self.metrics = MetricsLog(self.run, self.iteration if found else None, columns=COLUMNS)

    def _find_checkpoint(self, resume: bool, force: bool) -> tuple[Path, dict] | None:
        """The checkpoint to continue from, this run's: required with `resume`, refused without it; a fresh run
        does not replace files that no detection run wrote, nor a checkpoint that does not load, unless `force`."""
        found = latest_checkpoint(self.run) if self.run.is_dir() else None
        lowest, highest = self.group.min_max(found[1]["iteration"] if found else -1)
        if lowest != highest:
            raise UserError(
                f"the processes found different checkpoints in {self.run}; put --out on a file system every node sees"
            )
        # Workers that torchrun restarts (--max-restarts) continue from the newest checkpoint, as with --resume.
        if found and not (resume or self.group.min_max(self.group.restarts)[1] > 0):
            raise UserError(f"{found[0]} already exists; pass --resume to continue that run or choose another --out")
        if found and found[1].get("kind") != KIND:
            raise UserError(f"{found[0]} is not a detection checkpoint; choose another --out")
        if found and "train_config" in found[1]:
            before = DetectionTrainConfig.from_values(found[1]["train_config"], str(found[0]))
            check_same_run(self.config, before, str(found[0]))
        unloadable = None if found else _unloadable(self.run)
        if resume and unloadable:
            raise UserError(f"--resume: {unloadable}; restore it, or start a new run in another --out")
        if resume and not found:
            raise UserError(f"--resume: {self.run} holds no checkpoint to continue; start without --resume")
        if not found and not force:
            if unloadable:
                raise UserError(f"{unloadable}; choose another --out, or pass --force to start afresh over it")
            check_output_folder(self.run, RUN_FILES, ours=_is_detection_run(self.run), fix=REPLACE_HINT)
        return found

    def _build(self, state: dict | None) -> None:
        """The detector (from the checkpoint's `state`, or new) and its optimizer."""
        config = self.config
        torch.manual_seed(config.seed)  # the new layers' initial weights
        if state:
            self.model = rebuild(state["detector_config"], state["backbone_config"])
            self.model.load_state_dict(state["model"])
        else:
            config.detector(len(self.data.classes))  # a bad setting is a one-line error before anything is built
            # Only what the user set, so that faster_rcnn() picks the defaults for a trunk without weights.
            settings = dict(stride_on=config.stride_on, min_size=config.min_size, max_size=config.max_size)
            self.model = faster_rcnn(
                config.backbone,
                len(self.data.classes),
                config.pooler,
                config.backbone_weights,
                **settings,
                **config.model,
            )
        self.model.to(self.device).train()
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.group.active and not self.model.config.frozen_bn:
            # BN that trains normalises over the global batch: 1 or 2 images per process are too few for its
            # statistics, and with them N processes compute what one does.
            self.model = sync_batchnorm(self.model, self.device)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            trained, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )

    def _log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def state(self) -> dict:
        """Everything needed to continue exactly and to rebuild the detector for testing."""
        return {
            "kind": KIND,
            "iteration": self.iteration,
            "detector_config": self.model.config.to_dict(),
            "backbone_config": self.model.backbone_config.to_dict(),
            "classes": self.data.classes,
            "convention": self.data.convention,
            "train_config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def batch(self, iteration: int) -> tuple[torch.Tensor, list[tuple[int, int]], list[dict], list[torch.Generator]]:
        """This rank's share of the global batch of `iteration`: normalised images, padded to the whole global
        batch's size, their targets and their samples' generators, from (seed, iteration) alone."""
        c = self.config
        indices = self.sampler.global_batch(iteration).tolist()
        flips = torch.rand(len(indices), generator=seeded_generator(c.seed, FLIP_STREAM, iteration)) < 0.5
        # Every rank pads to the size of the whole global batch, as one process would: the same features.
        batch = [self.data.annotations[i] for i in indices]
        shapes = [
            resized_size(a.height, a.width, resize_scale(a.height, a.width, c.min_size, c.max_size)) for a in batch
        ]
        pad_to = (max(h for h, _ in shapes), max(w for _, w in shapes))
        places = self.sampler.share(torch.arange(len(indices))).tolist()  # this rank's places in the global batch
        examples = [
            training_example(self.data, indices[p], (c.min_size, c.max_size), bool(flips[p]) and c.flip) for p in places
        ]
        images, sizes = self.model.normalize([x for x, _ in examples], pad_to)
        targets = [{k: v.to(self.device) for k, v in t.items()} for _, t in examples]
        generators = [seeded_generator(c.seed, SAMPLE_STREAM, iteration, p) for p in places]
        if c.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, sizes, targets, generators

    def step(self, iteration: int) -> dict[str, float]:
        """One SGD step; returns the losses, averaged over the ranks (each rank's are means over its images)."""
        lr = learning_rate(self.config, iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images, sizes, targets, generators = self.batch(iteration)
        with autocast(self.device, self.precision):
            losses = self.forward(images, sizes, targets, generators)
        total = sum(v.float() for v in losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # DDP averages the gradients over the ranks as it goes
        self.optimizer.step()
        values = torch.stack([total.detach(), *(losses[k].detach().float() for k in LOSSES)]).double()
        mean = (self.group.sum(values) / self.group.world_size).tolist()
        return {"lr": lr, **dict(zip(("loss", *LOSSES), mean))}

    def save(self) -> None:
        """Rank 0 writes last.pt; the others wait, so none runs ahead (or exits) while it is being written. Weights
        that are not all finite are never saved: the checkpoint kept is the last good one."""
        bad = non_finite(self.model, self.optimizer)  # the same on every rank: DDP keeps the replicas equal
        if bad:
            raise TrainingDiverged(
                f"{bad} weights or optimizer values became NaN or infinite by iteration {self.iteration}; "
                f"{self._kept()}; try a lower --lr or --precision fp32"
            )
        if self.is_main:
            save_checkpoint(self.run / LAST, self.state())
        self.group.barrier()
        self.saved_at = self.iteration

    def _kept(self) -> str:
        last = self.run / LAST
        return f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint was written"

    def fit(self) -> dict:
        """Train from the current iteration to `config.iters`, logging and checkpointing on the way; SIGINT and
        SIGTERM save the current iteration and stop, with the command that resumes."""
        c = self.config
        self.saved_at = self.iteration
        self._window: list[dict] = []
        self._row: dict = {}
        bar = tqdm(
            total=c.iters,
            initial=self.iteration,
            unit="it",
            desc=f"faster-rcnn {c.backbone}",
            mininterval=1.0,
            disable=not self.is_main,
        )
        self._tick = time.perf_counter()
        with signals_caught() as caught, bar:
            while self.iteration < c.iters:
                self._window.append(self.step(self.iteration))
                self.iteration += 1
                bar.update(1)
                loss = self._window[-1]["loss"]
                if not math.isfinite(loss):  # the same on every rank: the loss is summed over them
                    raise TrainingDiverged(
                        f"loss became {loss} at iteration {self.iteration}; {self._kept()}; "
                        "try a lower --lr or --precision fp32"
                    )
                done = self.iteration == c.iters
                if self.iteration % c.log_every == 0 or done:
                    self._log_row(bar)
                # Every rank stops at the same iteration: the one a signal reached first on any rank.
                signum = self.group.min_max(caught[-1] if caught else 0)[1]
                if (self.iteration % c.checkpoint_every == 0 or done or signum) and self.saved_at != self.iteration:
                    self.save()
                if signum:
                    self._stopped(signum)
        if self.metrics is not None:
            self.metrics.close()
        return self._row

    def _log_row(self, bar: tqdm) -> None:
        """The mean losses since the last row into metrics.csv and the progress bar."""
        window = self._window
        seconds = time.perf_counter() - self._tick
        row = {k: float(np.mean([w[k] for w in window])) for k in ("loss", *LOSSES)}
        row.update(iteration=self.iteration, lr=window[-1]["lr"])
        row["images_per_sec"] = len(window) * self.config.images_per_batch / max(seconds, 1e-9)
        if self.metrics is not None:
            self.metrics.write(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:g}", refresh=False)
        self._row, self._window, self._tick = row, [], time.perf_counter()

    def _stopped(self, signum: int) -> None:
        """After a signal's checkpoint: stop with the command that continues the run."""
        if self.metrics is not None:
            self.metrics.close()
        raise TrainingInterrupted(
            f"{signal.Signals(signum).name} at iteration {self.iteration}: saved {self.run / LAST}; continue with: "
            f"resnets detect train --out {self.run} --resume",
            signum,
        )


def detector_file(run: str | Path) -> Path:
    """The checkpoint that `--checkpoint run` names: a run folder's last.pt, or the file itself."""
    path = Path(run)
    return path / LAST if path.is_dir() else path


def load_detector(run: str | Path) -> tuple[FasterRCNN, dict]:
    """The trained detector of a run folder (its last.pt) or a checkpoint file, in eval mode, and its state."""
    file = detector_file(run)
    if not file.is_file():
        raise UserError(f"{run} holds no {LAST}; is it a `resnets detect train` run folder?")
    state = load_checkpoint(file)
    if state.get("kind") != KIND:
        raise UserError(f"{file} is not a detection checkpoint (it is a classification one?); train with detect train")
    model = rebuild(state["detector_config"], state["backbone_config"])
    model.load_state_dict(state["model"])
    return model.eval(), state
