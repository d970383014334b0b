"""How a trained model is run on images, as typed settings: the test view (Sec. 3.4), the batch, the device and the
precision that `evaluate`, `predict` and `serve` share, and what each adds; their flags are generated from these."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import DEVICES, PRECISIONS, check_fields, setting
from .views import SCALES

SPLITS = ("val", "test", "train")
BACKENDS = ("auto", "torch", "onnx")  # what runs a predictor's network (inference.loading)


@dataclass
class ViewOptions:
    """The view, batch, device and precision of a model's forward passes."""

    views: str | None = setting(
        None, "test view", "comma-separated: full, center, 10crop, multiscale; unset: full for CIFAR runs, else center"
    )
    resize: int | None = setting(
        None, "test view", "center/10crop: shorter side before cropping; unset: the run's, 256"
    )
    crop: int | None = setting(None, "test view", "center/10crop: crop side; unset: the run's, 224")
    scales: str = setting(",".join(map(str, SCALES)), "test view", "multiscale: shorter sides, comma-separated")
    batch_size: int = setting(256, "speed", "crops per forward pass")
    device: str = setting("auto", "speed", "where the network runs; auto: cuda if there is a GPU", DEVICES)
    precision: str = setting(
        "fp32", "speed", "autocast of the forward passes (bf16, fp16; auto: bf16 where fast)", PRECISIONS
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class EvaluateOptions(ViewOptions):
    """`resnets evaluate`: the data and split it scores, beside the view."""

    data: str | None = setting(
        None,
        "data",
        "data folder (CIFAR-10 python format or image folders); unset: CIFAR models are scored on the 1,000-image "
        "slice of the CIFAR-10 test split that ships with the package",
    )
    split: str | None = setting(
        None,
        "data",
        "val: the run's held-out split of train, else DATA/val; test; train: the rest of train; unset: val with "
        "--data, test without",
        SPLITS,
    )
    val_labels: str | None = setting(
        None, "data", "labels file of a flat DATA/val folder (`<file> <class>` lines or Kaggle csv); unset: none"
    )
    limit: int | None = setting(
        None, "data", "evaluate only N images, always the same ones, spread over the split; unset: all"
    )
    workers: int | None = setting(None, "speed", "decoding processes; unset: one per CPU core, at most 8")


@dataclass
class PredictOptions(ViewOptions):
    """`resnets predict` and `resnets serve`: one view, and the backend that runs it (int8 included)."""

    views: str | None = setting(
        None, "test view", "full, center, 10crop or multiscale; unset: the run's, as evaluate (full for CIFAR runs)"
    )
    batch_size: int = setting(32, "speed", "crops per forward pass")
    precision: str = setting(
        "fp32",
        "speed",
        "forward precision: autocast (bf16, fp16, auto), or int8 = ONNX Runtime's int8 graph (on the CPU; with "
        "--calibration, or --onnx FILE of `export --int8`)",
        (*PRECISIONS, "int8"),
    )
    backend: str = setting(
        "auto",
        "speed",
        "what runs the network: auto = ONNX Runtime where it is the measured fastest correct path (CPU, fp32, one "
        "input size; exported once and cached), else PyTorch; see docs/performance.md",
        BACKENDS,
    )
    calibration: str | None = setting(
        None, "speed", "with --precision int8: a folder of images to calibrate the int8 graph on (built once, cached)"
    )
    calibration_images: int | None = setting(
        None, "speed", "with --calibration: how many of its images to use; unset: 512"
    )
