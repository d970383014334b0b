"""Published pretrained weights as data: each release's architecture options and files (URL, digest) per model.

A table of its own, so that a training config can check `--weights TAG` without importing the download code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TORCHVISION_V1 = "torchvision-v1"
TORCHVISION_URL = "https://download.pytorch.org/models"
RESNETS_CIFAR10 = "resnets-cifar10"
PACKAGED = Path(__file__).resolve().parents[1] / "released"  # weights that ship inside the package: nothing downloads


@dataclass(frozen=True)
class Release:
    """One set of published weights: the architecture options they were trained with, and a file per model."""

    options: dict[str, Any]
    about: str  # why the options, for the error when a caller asks for others
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # model -> (URL, SHA-256 hex digest or prefix)
    packaged: str | None = None  # or: the folder of PACKAGED holding <model>.safetensors, one per finished run

    def models(self) -> list[str]:
        """The models this release has weights for."""
        if self.packaged is None:
            return list(self.files)
        return sorted((p.stem for p in self.packaged_file("*").parent.glob("*.safetensors")), key=_depth_order)

    def packaged_file(self, model: str) -> Path:
        """Where a packaged release keeps the weights of `model`."""
        return PACKAGED / str(self.packaged) / f"{model}.safetensors"


def _torchvision(*files: str) -> dict[str, tuple[str, str]]:
    # torchvision names each file <model>-<first 8 hex digits of its SHA-256>.pth and checks only that prefix
    # (torch.hub's check_hash): the full digests are not published, so the prefix is what we check too.
    return {file.rsplit("-", 1)[0]: (f"{TORCHVISION_URL}/{file}", file.rsplit("-", 1)[1][:-4]) for file in files}


RELEASES: dict[str, Release] = {
    # torchvision's IMAGENET1K_V1 weights: "ResNet v1.5" (stride on the bottleneck's 3x3, not the paper's 1x1),
    # projection shortcuts only where the shape changes (Sec. 3.3 option B).
    TORCHVISION_V1: Release(
        options={"stride_on": "3x3", "shortcut": "B"},
        about="torchvision's networks subsample in the bottleneck's 3x3 conv and use option B shortcuts",
        files=_torchvision(
            "resnet18-f37072fd.pth",
            "resnet34-b627a593.pth",
            "resnet50-0676ba61.pth",
            "resnet101-63fe2227.pth",
            "resnet152-394f9c45.pth",
            "resnext50_32x4d-7cdf4587.pth",
            "resnext101_32x8d-8ba56ff5.pth",
            "wide_resnet50_2-95faca4d.pth",
            "wide_resnet101_2-32ee1156.pth",
        ),
    ),
    # This project's CIFAR-10 runs (docs/reproductions/cifar10/): the paper's final protocol of Sec. 4.2, all 50k
    # training images, 64k iterations, seed 0, exported with their per-pixel mean, classes and test error.
    RESNETS_CIFAR10: Release(
        options={},
        about="the CIFAR-10 ResNets of Sec. 4.2 (option A shortcuts), as trained in docs/reproductions/cifar10",
        packaged="cifar10",
    ),
}


def _depth_order(name: str) -> tuple[str, int]:
    """resnet20 before resnet110: names sort by their letters, then by their depth."""
    letters = name.rstrip("0123456789")
    return letters, int(name[len(letters) :] or 0)
