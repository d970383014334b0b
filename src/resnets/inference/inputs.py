"""The image files that `predict` paths name: files, folders walked recursively in sorted order, and globs."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..data.folder import IMAGE_EXTENSIONS
from ..errors import UserError


@dataclass(frozen=True)
class Inputs:
    """The files to predict, in order (each once), and how many non-image files the folders and globs held."""

    files: list[Path]
    ignored: int


def collect_images(paths: list[str]) -> Inputs:
    """Files as named (whatever their extension: the format comes from the content), then images under folders and
    matched by globs; hidden files and folders are left out of walks, and a path that names nothing is an error."""
    files: list[Path] = []
    ignored = 0
    for text in paths:
        path = Path(text).expanduser()
        if path.is_file():
            files.append(path)
            continue
        if path.is_dir():
            found = _walk(path)
        elif glob.has_magic(text):
            found = [Path(p) for p in sorted(glob.glob(os.path.expanduser(text), recursive=True)) if Path(p).is_file()]
        else:
            raise UserError(f"{text} does not exist; pass image files, folders or globs such as 'photos/*.jpg'")
        images = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
        ignored += len(found) - len(images)
        if not images:
            raise UserError(f"{text} holds no images ({' '.join(IMAGE_EXTENSIONS)})")
        files += images
    return Inputs(list(dict.fromkeys(files)), ignored)


def _walk(folder: Path) -> list[Path]:
    """Every file under `folder`, hidden ones left out, sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, name) for name in filenames if not name.startswith(".")]
    return sorted(found)
