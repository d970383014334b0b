"""Published pretrained weights by tag: the release table, and each file downloaded once into the cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data.cache import default_cache_dir
from .download import download
from .errors import UserError

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


def is_tag(weights: str) -> bool:
    """Whether `weights` names a published release (rather than a file)."""
    return weights in RELEASES


def available(tag: str = TORCHVISION_V1) -> list[str]:
    """The models that release `tag` has weights for."""
    return list(_release(tag).files)


def release_options(tag: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with the release's architecture options added; a conflicting one is a ValueError saying why."""
    release = _release(tag)
    for key, value in release.options.items():
        if key in options and options[key] != value:
            raise ValueError(f"{tag} weights need {key}={value!r}, not {options[key]!r}: {release.about}")
    return {**options, **release.options}


def weights_file(
    model_name: str,
    tag: str = TORCHVISION_V1,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    base_url: str | None = None,
) -> Path:
    """The release's file for `model_name`, downloaded on first use into `cache_dir` ($RESNETS_CACHE/weights).

    `base_url` replaces the folder the file is published in (a mirror, or a local server in tests).
    """
    release = _release(tag)
    if model_name not in release.files:
        raise UserError(f"{tag} has no weights for {model_name!r}; it has weights for: {', '.join(release.files)}")
    url, digest = release.files[model_name]
    name = url.rsplit("/", 1)[1]
    if base_url is not None:
        url = f"{base_url.rstrip('/')}/{name}"
    dest = (cache_dir or default_cache_dir() / "weights") / name
    if not dest.is_file():  # only a verified download is ever renamed into place
        built = ", ".join(f"{k}={v!r}" for k, v in release.options.items())
        fix = f"download it manually into {dest.parent}, or pass it as --weights FILE with {built}"
        download(url, dest, digest=digest, what=f"the {tag} weights of {model_name}", fix=fix, progress=progress)
    return dest


def _release(tag: str) -> Release:
    if tag not in RELEASES:
        raise UserError(f"unknown weights tag {tag!r}; choose one of {', '.join(RELEASES)} or pass a weights file")
    return RELEASES[tag]
