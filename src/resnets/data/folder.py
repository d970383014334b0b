"""Scanning an image-folder data set laid out as ROOT/<split>/<class>/<image files>."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
LAYOUT = "ROOT/train/<class>/<image> (optional ROOT/val, ROOT/test) or a CIFAR-10 cifar-10-batches-py folder"


@dataclass(frozen=True)
class FolderScan:
    """The files of one split: image files with their labels, the class list, and the non-image files found."""

    split_dir: Path
    files: list[Path]
    labels: list[int]
    classes: list[str]
    ignored: list[Path]


def scan_split(root: Path, split: str) -> FolderScan:
    """List the images of ROOT/<split>/<class>/; classes are the sorted class folders of ROOT/train."""
    split_dir = _split_dir(root, split)
    # Every split takes its label order from train, so a label means the same class in train, val and test.
    classes = [e.name for e in _visible(_split_dir(root, "train")) if e.is_dir()]
    label_of = {name: i for i, name in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    ignored: list[Path] = []
    class_dirs = []
    for entry in _visible(split_dir):
        if entry.is_dir():
            class_dirs.append(Path(entry.path))
        else:
            ignored.append(Path(entry.path))
    if not class_dirs:
        raise UserError(f"{split_dir} has no class folders; expected {split_dir}/<class>/<image>")
    for class_dir in class_dirs:
        if class_dir.name not in label_of:
            raise UserError(f"class folder {class_dir} has no match in {root / 'train'}; each class needs train images")
        images, others = _class_files(class_dir)
        if not images:
            kinds = " ".join(IMAGE_EXTENSIONS)
            raise UserError(f"class folder {class_dir} has no images ({kinds}); add some or remove the folder")
        files += images
        labels += [label_of[class_dir.name]] * len(images)
        ignored += others
    return FolderScan(split_dir, files, labels, classes, ignored)


def _split_dir(root: Path, split: str) -> Path:
    """ROOT/<split>, or a UserError that says what ROOT holds instead."""
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise UserError(f"data folder {root} {state}; pass --data DIR with {LAYOUT}")
    folder = root / split
    if folder.is_dir():
        return folder
    entries = _visible(root)
    if not entries:
        raise UserError(f"data folder {root} is empty; put {LAYOUT} there")
    splits = ", ".join(e.name for e in entries if e.is_dir()) or "none"
    raise UserError(f"split folder {folder} does not exist (splits in {root}: {splits}); expected {LAYOUT}")


def _visible(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of `folder` not hidden by a leading dot, sorted by name."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def _class_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
    """The image files and the other files under `class_dir` (recursively, hidden ones left out), each sorted."""
    images: list[Path] = []
    others: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # prune hidden folders from the walk
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath, name)
                (images if path.suffix.lower() in IMAGE_EXTENSIONS else others).append(path)
    return sorted(images), sorted(others)
