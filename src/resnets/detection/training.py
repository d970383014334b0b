"""Training Faster R-CNN C4: one SGD step per mini-batch of images, exactly resumable, as `resnets train` is.

Every random choice (image order, flips, the RPN's and the head's samples) is a function of (seed, iteration), so
`--resume` continues as if never stopped. Checkpoints are written atomically and loaded with weights_only=True.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_write
from ..checkpoints import LAST, latest_checkpoint, load_checkpoint, save_checkpoint
from ..data.decode import decode_image
from ..data.rng import seeded_generator
from ..data.sampler import EpochSampler
from ..errors import UserError
from ..runtime import autocast, keep_freed_memory, resolve_device, resolve_precision
from ..training.distributed import Group, sync_batchnorm
from ..training.metrics import MetricsLog
from .config import FasterRCNNConfig
from .data import DetectionSet, load_detection_split
from .model import FasterRCNN, faster_rcnn, rebuild
from .transforms import flip_boxes, resize_image, resize_scale, resized_size

KIND = "faster-rcnn-c4"
LOSSES = ("rpn_cls", "rpn_box", "cls", "box")
COLUMNS = ("iteration", "lr", "loss", *LOSSES, "images_per_sec")
FLIP_STREAM, SAMPLE_STREAM = 11, 12  # random streams apart from the image order's


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
        self.milestones = tuple(float(m) for m in self.milestones)
        for name in ("images_per_batch", "iters", "checkpoint_every", "log_every", "min_size", "max_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"{name}={getattr(self, name)!r} must be a positive integer")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise UserError(f"lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay} out of range")
        if any(not 0 < m < 1 for m in self.milestones):
            raise UserError(f"milestones={list(self.milestones)} must be fractions of iters in (0, 1)")

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

    def __init__(self, config: DetectionTrainConfig, resume: bool = False, group: Group | None = None):
        self.config = config
        self.run = Path(config.out)
        self.group = group or Group(resolve_device(config.device))
        self.device = self.group.device
        keep_freed_memory(self.device)  # no page faults per step on the CPU (runtime.py)
        self.is_main = self.group.is_main
        self.precision = resolve_precision(config.precision, self.device)
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
        classes = found[1]["classes"] if found else None
        self.data = load_detection_split(
            config.data, config.split, classes=classes, skip_bad_images=config.skip_bad_images
        )
        if self.data.summary():
            self._log(f"data: {self.data.summary()}")
        self.sampler = EpochSampler(
            len(self.data.annotations), config.images_per_batch, config.seed, self.group.rank, self.group.world_size
        )
        torch.manual_seed(config.seed)  # the new layers' initial weights
        if found:
            state = found[1]
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
            with atomic_write(self.run / "config.json") as f:
                f.write((json.dumps(config.to_dict(), indent=2) + "\n").encode())
            self.metrics = MetricsLog(self.run, self.iteration if found else None, columns=COLUMNS)

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
        """Rank 0 writes last.pt; the others wait, so none runs ahead (or exits) while it is being written."""
        if self.is_main:
            save_checkpoint(self.run / LAST, self.state())
        self.group.barrier()

    def fit(self) -> dict:
        """Train from the current iteration to `config.iters`, logging and checkpointing on the way."""
        c = self.config
        window: list[dict] = []
        row: dict = {}
        bar = tqdm(
            total=c.iters,
            initial=self.iteration,
            unit="it",
            desc=f"faster-rcnn {c.backbone}",
            mininterval=1.0,
            disable=not self.is_main,
        )
        tick = time.perf_counter()
        while self.iteration < c.iters:
            window.append(self.step(self.iteration))
            self.iteration += 1
            bar.update(1)
            if not math.isfinite(window[-1]["loss"]):  # the same on every rank: the loss is summed over them
                bar.close()
                raise UserError(
                    f"loss became {window[-1]['loss']} at iteration {self.iteration}; the last good checkpoint "
                    f"{self.run / LAST} is kept; try a lower --lr or --precision fp32"
                )
            done = self.iteration == c.iters
            if self.iteration % c.log_every == 0 or done:
                seconds = time.perf_counter() - tick
                row = {k: float(np.mean([w[k] for w in window])) for k in ("loss", *LOSSES)}
                row.update(iteration=self.iteration, lr=window[-1]["lr"])
                row["images_per_sec"] = len(window) * c.images_per_batch / max(seconds, 1e-9)
                if self.metrics is not None:
                    self.metrics.write(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:g}", refresh=False)
                window, tick = [], time.perf_counter()
            if self.iteration % c.checkpoint_every == 0 or done:
                self.save()
        bar.close()
        if self.metrics is not None:
            self.metrics.close()
        return row


def load_detector(run: str | Path) -> tuple[FasterRCNN, dict]:
    """The trained detector of a run folder (its last.pt) or a checkpoint file, in eval mode, and its state."""
    path = Path(run)
    file = path / LAST if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{run} holds no {LAST}; is it a `resnets detect train` run folder?")
    state = load_checkpoint(file)
    if state.get("kind") != KIND:
        raise UserError(f"{file} is not a detection checkpoint (it is a classification one?); train with detect train")
    model = rebuild(state["detector_config"], state["backbone_config"])
    model.load_state_dict(state["model"])
    return model.eval(), state
