"""Every setting of Faster R-CNN C4 (Sec. 4.3), defaulting to the paper's, else py-faster-rcnn's (Ren et al.), and
of a detection training run, resolved as a classifier's are (typed, and what may change on resume)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import UserError
from ..core.settings import (
    DEVICES,
    PRECISIONS,
    check_fields,
    check_milestones,
    check_unchanged,
    flag,
    refuse_change,
    setting,
    typed,
)
from ..engine.run import RUN_MECHANICS
from ..models.blocks import STRIDE_ON

POOLERS = ("roi_pool", "roi_align")
# Settings that count something (at least 1), and IoU thresholds (in [0, 1]).
COUNTS: tuple[str, ...]
COUNTS = ("num_classes", "min_size", "max_size", "rpn_batch_size", "roi_batch_size", "pooler_resolution")
COUNTS += ("rpn_pre_nms_train", "rpn_post_nms_train", "rpn_pre_nms_test", "rpn_post_nms_test", "detections_per_image")
IOUS = ("rpn_fg_iou", "rpn_bg_iou", "roi_fg_iou", "roi_bg_iou_low", "roi_bg_iou_high", "test_score_threshold")
# Defaults for a trunk without backbone weights. Random weights have no statistics to freeze: frozen BN is then the
# identity and activations grow with depth (a ResNet-50's conv4_x output has std ~9 and its first classification
# loss is ~9, not ln(K + 1)); nor are there learnt features worth fixing. So BN trains and no stage is fixed, unless
# frozen_bn / freeze_at are set explicitly.
FROM_SCRATCH = {"frozen_bn": False, "freeze_at": 0}


@dataclass
class FasterRCNNConfig:
    """Faster R-CNN on a ResNet C4 trunk: conv1..conv4_x shared at stride 16, conv5_x as the per-RoI head."""

    backbone: str = "resnet101"  # any ImageNet-family zoo name (resnet18 .. resnet152, ResNeXt, Wide ResNet)
    num_classes: int = 20  # object classes, background excluded (PASCAL VOC: 20)
    stride_on: str | None = None  # bottleneck conv that subsamples (None: the zoo's default for the backbone)
    # Input (py-faster-rcnn TRAIN.SCALES / MAX_SIZE): shorter side resized to min_size unless the longer side would
    # exceed max_size.
    min_size: int = 600
    max_size: int = 1000
    # Anchors (Faster R-CNN Sec. 3.1.1): 3 scales x 3 aspect ratios at every stride-16 position.
    anchor_sizes: tuple[float, ...] = (128.0, 256.0, 512.0)  # square side in input pixels (scales 8, 16, 32 x 16)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width
    # RPN training (Sec. 3.1.2-3.1.3): 256 anchors per image, up to half positive.
    rpn_batch_size: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_fg_iou: float = 0.7  # an anchor with IoU >= 0.7 with a ground-truth box is positive ...
    rpn_bg_iou: float = 0.3  # ... with IoU < 0.3 with every one negative; in between ignored
    rpn_straddle: float | None = 0.0  # anchors reaching more than this many pixels outside the image are ignored in
    # training (the paper's cross-boundary rule); None keeps every anchor
    rpn_channels: int | None = None  # the RPN's 3x3 conv width; None: the trunk's output width (Detectron2's C4)
    # Proposals: top-N by objectness before NMS, NMS at 0.7, top-N after it.
    rpn_nms: float = 0.7
    rpn_pre_nms_train: int = 12000
    rpn_post_nms_train: int = 2000
    rpn_pre_nms_test: int = 6000
    rpn_post_nms_test: int = 300
    rpn_min_size: float = 16.0  # proposals narrower or shorter than this (input pixels) are dropped (RPN_MIN_SIZE)
    # RoI sampling for the head (Fast R-CNN Sec. 2.3): 128 RoIs per image, 25% foreground.
    roi_batch_size: int = 128
    roi_positive_fraction: float = 0.25
    roi_fg_iou: float = 0.5  # foreground: IoU >= 0.5 with a ground-truth box
    roi_bg_iou_low: float = 0.1  # background: IoU in [0.1, 0.5)
    roi_bg_iou_high: float = 0.5
    # Box regression: the RPN's targets unscaled, the head's scaled by (10, 10, 5, 5) (BBOX_NORMALIZE_STDS 0.1, 0.2).
    rpn_box_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    box_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)
    rpn_smooth_l1_beta: float = 1.0 / 9  # py-faster-rcnn's sigma 3 (beta = 1 / sigma^2)
    smooth_l1_beta: float = 1.0  # sigma 1
    # Pooling (Sec. 4.3 and Detectron2's Res5ROIHeads): each RoI to 14 x 14 on the stride-16 map; conv5_1's stride 2
    # makes it 7 x 7 before conv5_x and global average pooling.
    pooler: str = "roi_pool"  # the paper's RoI pooling, or 'roi_align' (Mask R-CNN's, as modern implementations)
    pooler_resolution: int = 14
    sampling_ratio: int = 0  # roi_align: samples per bin side; 0: adaptive, ceil(bin size)
    aligned: bool = True  # roi_align: the half-pixel correction
    # BN is frozen (Sec. 4.3: "fixed", acting as an affine layer of the pre-training statistics); without backbone
    # weights, faster_rcnn() defaults to FROM_SCRATCH instead.
    frozen_bn: bool = True
    freeze_at: int = 2  # 0: train everything; 1: fix conv1; 2: fix conv1 and conv2_x (py-faster-rcnn, Detectron2)
    # Testing (py-faster-rcnn TEST): per-class score threshold, per-class NMS, detections kept per image.
    test_score_threshold: float = 0.05
    test_nms: float = 0.3
    detections_per_image: int = 100

    def __post_init__(self) -> None:
        for name in ("anchor_sizes", "anchor_ratios", "rpn_box_weights", "box_weights"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.pooler not in POOLERS:
            raise ValueError(f"pooler={self.pooler!r} is not valid; choose one of {', '.join(map(repr, POOLERS))}")
        self._check_ranges()
        if not self.rpn_bg_iou <= self.rpn_fg_iou or not self.roi_bg_iou_low <= self.roi_bg_iou_high:
            raise ValueError("background IoU thresholds must not exceed the foreground ones")
        if len(self.box_weights) != 4 or len(self.rpn_box_weights) != 4:
            raise ValueError("box weights are four numbers (x, y, w, h)")
        if not 0 <= self.freeze_at <= 5:
            raise ValueError(f"freeze_at={self.freeze_at!r} must be 0 .. 5 (stem, then conv2_x .. conv5_x)")
        if self.max_size < self.min_size:
            raise ValueError(f"max_size={self.max_size} must be at least min_size={self.min_size}")

    def _check_ranges(self) -> None:
        """Every count positive, every fraction a fraction, every size and weight finite and not negative (checks
        written so that NaN fails them too)."""
        for name in COUNTS + ("rpn_channels",) * (self.rpn_channels is not None):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be a positive integer")
        for name in ("rpn_positive_fraction", "roi_positive_fraction", "rpn_nms", "test_nms"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in (0, 1]")
        for name in IOUS:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, 1]")
        sizes = [(n, getattr(self, n)) for n in ("rpn_min_size", "rpn_smooth_l1_beta", "smooth_l1_beta")]
        sizes += [("rpn_straddle", self.rpn_straddle)] * (self.rpn_straddle is not None)
        sizes += [("sampling_ratio", self.sampling_ratio)]
        for name, value in sizes:
            if not 0 <= value < math.inf:
                raise ValueError(f"{name}={value!r} must be a finite number, at least 0")
        for name in ("anchor_sizes", "anchor_ratios", "rpn_box_weights", "box_weights"):
            values = getattr(self, name)
            if not values or not all(0 < v < math.inf for v in values):
                raise ValueError(f"{name}={list(values)!r} must be finite numbers above 0")

    @property
    def num_anchors(self) -> int:
        """Anchors per position: scales x ratios."""
        return len(self.anchor_sizes) * len(self.anchor_ratios)

    def to_dict(self) -> dict:
        """A JSON-friendly dict that `FasterRCNNConfig(**d)` rebuilds."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# What may differ between the sessions of one run: the engine's run mechanics, and how often last.pt is written.
DETECTION_MECHANICS = RUN_MECHANICS | {"checkpoint_every"}
# FasterRCNNConfig fields that DetectionTrainConfig sets from its own settings (or the data), not through `--set`.
OWN_FLAGS = ("backbone", "num_classes", "stride_on", "pooler", "min_size", "max_size")


@dataclass
class DetectionTrainConfig:
    """One detection training run; the defaults are a short fine-tuning, the recipe detection-voc-paper the paper's."""

    data: str = setting("", "data", "a PASCAL VOC folder, a labelImg folder (image + same-name .xml) or a COCO folder")
    split: str = setting("train", "data", "the training split (VOC: ImageSets/Main/SPLIT.txt)")
    out: str = setting("", "run", "the run folder for checkpoints, config.json and metrics.csv (required)")
    backbone: str = setting("resnet101", "model", "the zoo's network for the trunk (see `resnets list`)")
    backbone_weights: str | None = setting(
        None,
        "model",
        "a `resnets train` run folder, a weights file or torchvision-v1; unset: a random trunk, trained with its BN "
        "(frozen_bn=false, freeze_at=0) unless --set says otherwise",
    )
    stride_on: str | None = setting(None, "model", "bottleneck conv that subsamples; unset: the trunk's", STRIDE_ON)
    pooler: str = setting("roi_pool", "model", "RoI pooling (the paper's) or RoIAlign", POOLERS)
    min_size: int = setting(600, "data", "shorter side of the training images in pixels (py-faster-rcnn SCALES)")
    max_size: int = setting(1000, "data", "longer side at most (MAX_SIZE)")
    flip: bool = setting(True, "data", "random horizontal flips, each image with probability 1/2")
    # Any other FasterRCNNConfig field (e.g. rpn_post_nms_test), given as --set FIELD=VALUE.
    model: dict[str, Any] = field(default_factory=dict, metadata={"flag": False})
    # SGD as py-faster-rcnn: lr 0.001, momentum 0.9; the ResNet paper's weight decay 1e-4.
    images_per_batch: int = setting(1, "schedule", "images per SGD step, over all processes (as py-faster-rcnn)")
    iters: int = setting(20000, "schedule", "SGD iterations")
    lr: float = setting(0.001, "schedule", "base learning rate")
    momentum: float = setting(0.9, "schedule", "SGD momentum")
    weight_decay: float = setting(1e-4, "schedule", "L2 weight decay")
    milestones: tuple[float, ...] = setting(
        (0.75,), "schedule", "fractions of --iters at which the lr is multiplied by --lr-decay"
    )
    lr_decay: float = setting(0.1, "schedule", "factor the lr is multiplied by at a milestone, in (0, 1]")
    skip_bad_images: bool = setting(False, "data", "skip bad images and boxes, counted, instead of stopping")
    seed: int = setting(0, "run", "seed of the image order, flips and samples")
    device: str = setting("auto", "precision and speed", "where to train; auto: cuda if there is a GPU", DEVICES)
    precision: str = setting(
        "auto", "precision and speed", "autocast; auto: bf16 where the hardware has it, else fp32", PRECISIONS
    )
    channels_last: bool = setting(True, "precision and speed", "NHWC memory format")
    checkpoint_every: int = setting(500, "run", "iterations between two last.pt writes")
    checkpoint_minutes: float = setting(10.0, "run", "also write last.pt this often (pre-emptible machines)")
    log_every: int = setting(10, "run", "iterations per metrics.csv row")

    def __post_init__(self) -> None:
        check_fields(self)
        self.model = model_settings(self.model)  # checked setting by setting, against FasterRCNNConfig's fields
        for name in ("images_per_batch", "iters", "checkpoint_every", "log_every", "min_size", "max_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{flag(name)} {getattr(self, name)} must be a positive integer")
        if self.lr <= 0:
            raise UserError(f"--lr {self.lr} must be positive")
        if self.checkpoint_minutes <= 0:
            raise UserError(f"--checkpoint-minutes {self.checkpoint_minutes} must be positive")
        for name in ("weight_decay", "seed"):
            if getattr(self, name) < 0:
                raise UserError(f"{flag(name)} {getattr(self, name)} must be at least 0")
        if not 0 <= self.momentum < 1 or not 0 < self.lr_decay <= 1:
            raise UserError(f"momentum {self.momentum} must be in [0, 1) and lr_decay {self.lr_decay} in (0, 1]")
        check_milestones(self.milestones)
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
    `settings` on top, where only DETECTION_MECHANICS may differ from the run's (as a classifier's)."""
    try:
        before = DetectionTrainConfig.from_values(saved, source)
    except UserError as e:
        raise UserError(f"{source} is not the config of a `resnets detect train` run ({e})") from None
    values = {**before.to_dict(), **given, "model": {**before.model, **settings}}
    config = DetectionTrainConfig.from_values(values, source)
    check_same_run(config, before, source)
    return config


def check_same_run(config: DetectionTrainConfig, before: DetectionTrainConfig, source: str) -> None:
    """Refuse a `config` that differs from `before`, the run's (from `source`), in more than DETECTION_MECHANICS."""
    for key in sorted({*config.model, *before.model}):
        new, old = model_setting(config, key), model_setting(before, key)
        if new != old:
            refuse_change(f"--set {key}", new, old, source)
    check_unchanged(config, before, source, DETECTION_MECHANICS | {"model"})


@dataclass
class DetectorOptions:
    """Where and in which precision a trained detector runs (detect evaluate, detect predict)."""

    device: str = setting("auto", "detector", "where to run the detector; auto: cuda if there is a GPU", DEVICES)
    precision: str = setting(
        "fp32",
        "detector",
        "autocast of the convolutions (auto: bf16 where the hardware has it); boxes stay fp32",
        PRECISIONS,
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class DetectEvaluateOptions(DetectorOptions):
    """`detect evaluate`: the annotated split it scores."""

    data: str = setting("", "data", "the annotated data folder (required)")
    split: str = setting("val", "data", "the split to score")
    limit: int | None = setting(None, "data", "only the first N images of the split; unset: all", within=(1, None))
    skip_bad_images: bool = setting(False, "data", "skip bad images and boxes (counted) instead of stopping")
    save_detections: str | None = setting(
        None, "data", "with --checkpoint: also write the detections to this JSON file; unset: none"
    )


@dataclass
class DetectPredictOptions(DetectorOptions):
    """`detect predict`: which detections to report, and where to draw them."""

    threshold: float = setting(0.5, "output", "lowest score to report", within=(0, 1))
    strict: bool = setting(False, "output", "stop at the first image that cannot be decoded")
    draw: str | None = setting(
        None,
        "output",
        "write each image with its boxes drawn as DRAW/<name>.png (<name>-2.png, ... where that is taken: drawings "
        "never replace an input or a file of yours); unset: none",
    )
