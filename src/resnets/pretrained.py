"""Published pretrained weights by tag (the table is in releases.py), each file downloaded once into the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data.cache import default_cache_dir
from .download import download
from .errors import UserError
from .releases import RELEASES, TORCHVISION_V1, Release


def is_tag(weights: str) -> bool:
    """Whether `weights` names a published release (rather than a file)."""
    return weights in RELEASES


def available(tag: str = TORCHVISION_V1) -> list[str]:
    """The models that release `tag` has weights for."""
    return _release(tag).models()


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
    if model_name not in release.models():
        has = ", ".join(release.models()) or "none yet"
        raise UserError(f"{tag} has no weights for {model_name!r}; it has weights for: {has}")
    if release.packaged is not None:
        return release.packaged_file(model_name)
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
