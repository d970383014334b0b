"""The CIFAR-10 test images that ship with the package beside its weights, so that the first commands need no data:
a 1,000-image slice of the test split (`resnets evaluate` without --data) and one image per class (`resnets predict`
without paths). Where they come from: released/cifar10/README.md.

Only CIFAR models take them: networks that read their images as CIFAR's, whole 32x32 images (data/reading.py).
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from ..data.cifar import default_cifar10
from ..data.reading import InMemoryReading, reading_for
from ..models import model_config
from .files import TrainedModel
from .releases import PACKAGED

CIFAR10 = PACKAGED / "cifar10"
TEST_SLICE = CIFAR10 / "test-slice.npz"  # data/npz.py's format: the first 100 test images of each class
SLICE_SPLIT = "test"
SAMPLES = CIFAR10 / "samples"  # <class>.png: the slice's first image of each class, the original PNG file


def takes_cifar_images(trained: TrainedModel) -> bool:
    """Whether `trained` reads its images as CIFAR's (a CIFAR run, its export, bare weights of a CIFAR network)."""
    return isinstance(reading_for(trained.train_config), InMemoryReading)


def check_cifar_network(model_name: str | None, what: str) -> None:
    """A one-line UserError if `--model NAME` is a network for photos, before its weights are fetched; an unknown
    name is left to the loading, which names the models."""
    if model_name is None:
        return
    try:
        stem = model_config(model_name).stem
    except (KeyError, ValueError, TypeError):
        return
    if stem != "cifar":
        raise UserError(f"{model_name} is not a CIFAR network: {_refusal(what)}")


def check_cifar_models(models: list[TrainedModel], what: str) -> None:
    """A one-line UserError unless every model takes CIFAR's 32x32 images."""
    other = next((m for m in models if not takes_cifar_images(m)), None)
    if other is not None:
        raise UserError(f"{other.name} does not read CIFAR's 32x32 images: {_refusal(what)}")


def _refusal(what: str) -> str:
    """Why the package's images are refused: `what` they are, and what to pass instead."""
    images, fix = {
        "slice": ("test slice is", "pass --data DIR (its test split: --split test)"),
        "samples": ("sample images are", "pass image files, folders or globs"),
    }[what]
    return f"the package's CIFAR-10 {images} for CIFAR models only; {fix}"


def slice_notice(split: str | None) -> str:
    """The line that says the package's slice is evaluated, not the full test split, and how to evaluate that one;
    a UserError for any split but the test split, the slice's."""
    if split not in (None, SLICE_SPLIT):
        raise UserError(f"the package's CIFAR-10 slice is of the test split, not {split}; pass --data DIR for {split}")
    return (
        "no --data: evaluating the 1,000-image slice of the CIFAR-10 test split shipped with the package (100 images "
        "per class), not the full 10,000-image test split; for the full split add --data DIR --split test (DIR: a "
        f"CIFAR-10 folder; `resnets train` without --data downloads one to {default_cifar10()})"
    )


def sample_images() -> list[Path]:
    """The package's sample images, one per CIFAR-10 class, named <class>.png, in class order."""
    return sorted(SAMPLES.glob("*.png"))
