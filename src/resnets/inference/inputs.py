"""The image files that `predict` paths name: files, folders walked recursively in sorted order, and globs."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..data.folder import IMAGE_EXTENSIONS
from ..data.paths import glob_files, unique_files, walk_files, what_is


@dataclass(frozen=True)
class Inputs:
    """The files to predict, in order (each real file once), and how many other entries the folders and globs held
    (non-image files, and FIFOs, sockets or devices, which are skipped: reading one could hang)."""

    files: list[Path]
    ignored: int


def collect_images(paths: list[str]) -> Inputs:
    """Files as named (whatever their extension: the format comes from the content), then images under folders and
    matched by globs (data.paths: link loops end, hidden entries are left out); a path that names nothing is an
    error."""
    files: list[Path] = []
    ignored = 0
    for text in paths:
        path = Path(text).expanduser()
        if path.is_file():
            files.append(path)
            continue
        if path.is_dir():
            found = walk_files(path)
        elif glob.has_magic(text):
            found = glob_files(text)
            if not found.files:
                raise UserError(f"{text} matches no files; check the pattern (quote it, as in 'photos/**/*.jpg')")
        else:
            raise UserError(
                f"{text} {what_is(path)}, not an image file or folder; pass image files, folders or globs such as "
                "'photos/*.jpg'"
            )
        images = [p for p in found.files if p.suffix.lower() in IMAGE_EXTENSIONS]
        ignored += len(found.files) + len(found.others) - len(images)
        if not images:
            raise UserError(f"{text} holds no images ({' '.join(IMAGE_EXTENSIONS)})")
        files += images
    return Inputs(unique_files(files), ignored)
