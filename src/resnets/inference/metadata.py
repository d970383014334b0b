"""What an exported graph says about itself: the format tag, the input size, the preprocessing and the class names
(ONNX metadata_props), shared by export, the ONNX Runtime backend, the cache and the predictor."""

from __future__ import annotations

import json

from ..data.imagenet_classes import IMAGENET_WNIDS, imagenet_name
from ..evaluation.protocol import view_size
from ..weights.files import TrainedModel

FORMAT = "resnets-onnx-v1"
PREPROCESSING = "RGB scaled to [0, 1], minus mean (per channel [3,1,1] or per pixel [3,H,W]), divided by std if given"
_WNIDS = frozenset(IMAGENET_WNIDS)


def input_size(trained: TrainedModel) -> tuple[int, int]:
    """The network's input height and width: a per-pixel mean's size (CIFAR runs, ImageNet runs), else the crop."""
    mean = trained.pixel_mean
    if mean.dim() == 3 and tuple(mean.shape[-2:]) != (1, 1):
        return int(mean.shape[-2]), int(mean.shape[-1])
    crop = view_size(trained.train_config)[1]
    return crop, crop


def class_names(trained: TrainedModel) -> list[str]:
    """The class of each output (weights.model_classes: the run's, or ImageNet's wnids); unknown ones numbered."""
    return list(trained.classes) or [f"class {i}" for i in range(trained.model.config.num_classes)]


def display_name(name: str) -> str:
    """An ImageNet wnid as its human-readable name ('n01440764' -> 'tench'); any other class name as it is."""
    return imagenet_name(name) if name in _WNIDS else name


def metadata(trained: TrainedModel) -> dict[str, str]:
    """The preprocessing constants, input size and class names, as ONNX metadata_props (JSON values)."""
    h, w = input_size(trained)
    features_only = trained.model.config.features_only
    props = {
        "format": FORMAT,
        "model_name": trained.name,
        "classes": json.dumps([] if features_only else class_names(trained)),
        "input_size": json.dumps([3, h, w]),
        "preprocessing": PREPROCESSING,
        "mean": json.dumps(trained.pixel_mean.flatten().tolist()),
        "mean_shape": json.dumps(list(trained.pixel_mean.shape)),
        "train_config": json.dumps(trained.train_config),
    }
    if trained.pixel_std is not None:
        props["std"] = json.dumps(trained.pixel_std.flatten().tolist())
    return props
