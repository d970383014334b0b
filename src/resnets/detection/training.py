"""Training Faster R-CNN C4 on the engine: one SGD step per mini-batch of images, exactly resumable, with every
guarantee of `resnets train` (run lock, save on SIGINT/SIGTERM, non-finite guard, fp16 retry, sessions.jsonl).

Every random choice (image order, flips, the RPN's and the head's samples) is a function of (seed, iteration), so
`--resume` continues as if never stopped.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from ..core.errors import UserError
from ..core.rng import DETECTION_FLIP, DETECTION_SAMPLE, seeded_generator
from ..core.runtime import autocast
from ..data.decode import decode_image
from ..data.sampler import EpochSampler
from ..engine.distributed import Group, sync_batchnorm
from ..engine.schedule import learning_rate, milestones_passed
from ..engine.trainer import FORCE_HINT, Engine, train_run
from .config import DetectionTrainConfig, check_same_run
from .data import DetectionSet, load_detection_split
from .model import KIND, FasterRCNN, faster_rcnn, rebuild
from .transforms import flip_boxes, resize_image, resize_scale, resized_size

LOSSES = ("rpn_cls", "rpn_box", "cls", "box")
COLUMNS = ("iteration", "lr", "loss", *LOSSES, "images_per_sec")


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


class DetectionTrainer(Engine):
    """A detector's run on the engine: the model, its data and losses; `fit()` trains to `config.iters`.

    Under torchrun (`group`) every process is a DistributedDataParallel replica that trains on its slice of each
    global batch of `images_per_batch` images. Each image is padded to the global batch's size and samples with its
    own generator, keyed by its place in the global batch, and weighs the same in the loss: 1 and N processes compute
    the same steps (up to rounding).
    """

    command = "resnets detect train"
    kind = KIND
    model: FasterRCNN

    @staticmethod
    def parse_config(values: dict) -> DetectionTrainConfig:
        """The settings of a detection run's config.json."""
        return DetectionTrainConfig.from_values(values, "config.json")

    def __init__(
        self, config: DetectionTrainConfig, resume: bool = False, group: Group | None = None, force: bool = False
    ):
        super().__init__(config.out, config.device, config.precision, group, FORCE_HINT)
        self.config = config
        self.iters, self.checkpoint_minutes = config.iters, config.checkpoint_minutes
        self.description = f"faster-rcnn {config.backbone}"
        found = self.find_checkpoint(resume, force)
        if found and "train_config" in found[1]:
            before = DetectionTrainConfig.from_values(found[1]["train_config"], str(found[0]))
            check_same_run(config, before, str(found[0]))
        self.data = load_detection_split(
            config.data, config.split, classes=found[1]["classes"] if found else None,
            skip_bad_images=config.skip_bad_images,
        )  # fmt: skip
        if self.data.summary():
            self.log(f"data: {self.data.summary()}")
        self.sampler = EpochSampler(
            len(self.data.annotations), config.images_per_batch, config.seed, self.group.rank, self.group.world_size
        )
        self._build(found[1] if found else None)
        if found:
            self.restore_optimizer(found[1])
            self.log(f"resuming {found[0]} at iteration {self.iteration}")
        # self.model stays the bare module, so checkpoints keep its key names (no DDP "module." prefix).
        self.forward = self.group.data_parallel(self.model)
        self.start(config.to_dict(), resumed=found is not None, columns=COLUMNS)

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
            # torch's stubs list no memory_format for Module.to, which takes it (and returns the module)
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if self.group.active and not self.model.config.frozen_bn:
            # BN that trains normalises over the global batch: 1 or 2 images per process are too few for its
            # statistics, and with them N processes compute what one does.
            self.model = sync_batchnorm(self.model, self.device)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.use_optimizer(trained, config.momentum, config.weight_decay)

    def state(self) -> dict:
        """Everything needed to continue exactly and to rebuild the detector for testing."""
        return {
            **super().state(),
            "kind": KIND,
            "detector_config": self.model.config.to_dict(),
            "backbone_config": self.model.backbone_config.to_dict(),
            "classes": self.data.classes,
            "convention": self.data.convention,
            "train_config": self.config.to_dict(),
            "model": self.model.state_dict(),
        }

    def batch(self, iteration: int) -> tuple[torch.Tensor, list[tuple[int, int]], list[dict], list[torch.Generator]]:
        """This rank's share of the global batch of `iteration`: normalised images, padded to the whole global
        batch's size, their targets and their samples' generators, from (seed, iteration) alone."""
        c = self.config
        indices = self.sampler.global_batch(iteration).tolist()
        flips = torch.rand(len(indices), generator=seeded_generator(c.seed, DETECTION_FLIP, iteration)) < 0.5
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
        generators = [seeded_generator(c.seed, DETECTION_SAMPLE, iteration, p) for p in places]
        if c.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, sizes, targets, generators

    def lr(self, iteration: int) -> float:
        """The step schedule: lr times lr_decay at each milestone (a fraction of iters) passed."""
        c = self.config
        milestones = [round(m * c.iters) for m in c.milestones]
        return learning_rate(c.lr, c.lr_decay, milestones_passed(iteration, milestones))

    def step(self, iteration: int) -> dict[str, float] | None:
        """One SGD step; the losses, averaged over the ranks (each rank's are means over its images), or None when
        fp16's scaler skipped the step."""
        lr = self.lr(iteration)
        images, sizes, targets, generators = self.batch(iteration)
        with autocast(self.device, self.precision):
            losses = self.forward(images, sizes, targets, generators)
        total = sum(v.float() for v in losses.values())
        if not self.optimize(total, lr):  # DDP averages the gradients over the ranks as it goes
            return None
        values = torch.stack([total.detach(), *(losses[k].detach().float() for k in LOSSES)]).double()
        mean = (self.group.sum(values) / self.group.world_size).tolist()
        return {"lr": lr, **dict(zip(("loss", *LOSSES), mean))}

    def begin(self) -> None:
        """The losses of the steps since the last metrics row."""
        self._window: list[dict] = []
        self._tick = time.perf_counter()

    def train_step(self) -> bool:
        """One step into the window; the loss is the same on every rank (summed over them), so all stop together."""
        losses = self.step(self.iteration)
        if losses is None:
            return False
        self._window.append(losses)
        self.check_loss(losses["loss"])
        return True

    def log_point(self, bar: tqdm) -> bool:
        """Every `log_every` iterations and at the end: the mean losses since the last row into metrics.csv."""
        if self.iteration % self.config.log_every and self.iteration != self.config.iters:
            return False
        window, seconds = self._window, time.perf_counter() - self._tick
        row = {k: float(np.mean([w[k] for w in window])) for k in ("loss", *LOSSES)}
        row.update(iteration=self.iteration, lr=window[-1]["lr"])
        row["images_per_sec"] = len(window) * self.config.images_per_batch / max(seconds, 1e-9)
        if self.metrics is not None:
            self.metrics.write(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:g}", refresh=False)
        self.last_row, self._window, self._tick = row, [], time.perf_counter()
        return True

    def save_due(self) -> bool:
        """Every `checkpoint_every` iterations since the last save, and at the end."""
        return self.iteration - self._saved[0] >= self.config.checkpoint_every or self.iteration == self.config.iters


def train_detector(config: DetectionTrainConfig, resume: bool = False, force: bool = False) -> dict:
    """Run (or resume) a detection run on the engine: locked, data-parallel under torchrun; the last metrics row."""
    if not config.data:
        raise UserError("detect train needs --data DIR (a VOC, labelImg or COCO folder)")

    def make(group: Group) -> DetectionTrainer:
        return DetectionTrainer(config, resume=resume, group=group, force=force)

    return train_run(make, config.out, config.data, config.device)
