"""Published pretrained weights as data: each release's architecture options and files (URL, digest) per model.

A table of its own, so that a training config can check `--weights TAG` without importing the download code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TORCHVISION_V1 = "torchvision-v1"
TORCHVISION_URL = "https://download.pytorch.org/models"


@dataclass(frozen=True)
class Release:
    """One set of published weights: the architecture options they were trained with, and a file per model."""

    options: dict[str, Any]
    files: dict[str, tuple[str, str]]  # model name -> (URL, SHA-256 hex digest or its first digits)
    about: str  # why the options, for the error when a caller asks for others


def _torchvision(*files: str) -> dict[str, tuple[str, str]]:
    # torchvision names each file <model>-<first 8 hex digits of its SHA-256>.pth and checks only that prefix
    # (torch.hub's check_hash): the full digests are not published, so the prefix is what we check too.
    return {file.rsplit("-", 1)[0]: (f"{TORCHVISION_URL}/{file}", file.rsplit("-", 1)[1][:-4]) for file in files}


RELEASES: dict[str, Release] = {
    # torchvision's IMAGENET1K_V1 weights: "ResNet v1.5" (stride on the bottleneck's 3x3, not the paper's 1x1),
    # projection shortcuts only where the shape changes (Sec. 3.3 option B).
    TORCHVISION_V1: Release(
        options={"stride_on": "3x3", "shortcut": "B"},
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
        about="torchvision's networks subsample in the bottleneck's 3x3 conv and use option B shortcuts",
    ),
}
