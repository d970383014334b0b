"""Scanning an image-folder data set: ROOT/<split>/<class>/<image files>, or a flat split folder plus a labels file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from .classes import class_listing, model_labels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
KAGGLE_HEADER = "ImageId,PredictionString"  # the first line of Kaggle's LOC_val_solution.csv
LAYOUT = "ROOT/train/<class>/<image> (optional ROOT/val, ROOT/test) or a CIFAR-10 cifar-10-batches-py folder"


@dataclass(frozen=True)
class FolderScan:
    """The files of one split: image files with their labels, the class list, and the non-image files found."""

    split_dir: Path
    files: list[Path]
    labels: list[int]
    classes: list[str]
    ignored: list[Path]


def scan_split(
    root: Path, split: str, labels_file: str | Path | None = None, classes: list[str] | None = None
) -> FolderScan:
    """List the images of ROOT/<split>/<class>/, or of a flat ROOT/<split>/ labelled by `labels_file`.

    Labels index `classes`, the model's class list when a model is evaluated: only ROOT/<split> is read, a class
    folder the model lacks is an error and a class without a folder has no images. Without `classes` they index
    the sorted class folders of ROOT/train (of the split itself where ROOT has no train folder). A labels file
    names each image's class by name (e.g. a wnid) or index, one `<file name> <class>` per line, or is Kaggle's
    LOC_val_solution.csv.
    """
    split_dir = _split_dir(root, split)
    class_dirs: list[Path] = []
    loose: list[Path] = []
    for entry in _visible(split_dir):
        (class_dirs if entry.is_dir() else loose).append(Path(entry.path))
    if classes is not None:
        model_labels([d.name for d in class_dirs], classes, split_dir)
    else:
        # Every split takes its label order from train, so a label means the same class in train, val and test.
        train = root / "train" if has_split(root, "train") else split_dir
        classes = [e.name for e in _visible(train) if e.is_dir()]
    if labels_file is not None:
        if class_dirs:
            raise UserError(f"{split_dir} has class folders, so it needs no labels file; drop {labels_file}")
        return _flat_split(split_dir, loose, classes, Path(labels_file))
    if not class_dirs:
        flat = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in loose)
        hint = "; for a flat folder of images pass --val-labels FILE" if flat else ""
        raise UserError(f"{split_dir} has no class folders; expected {split_dir}/<class>/<image>{hint}")
    return _class_split(root, split_dir, class_dirs, loose, classes)


def has_split(root: Path, split: str) -> bool:
    """Whether the image-folder data set at `root` has a folder for `split` (e.g. val)."""
    return (Path(root).expanduser() / split).is_dir()


def _class_split(
    root: Path, split_dir: Path, class_dirs: list[Path], ignored: list[Path], classes: list[str]
) -> FolderScan:
    """The images of ROOT/<split>/<class>/..., labelled by their class folder."""
    label_of = {name: i for i, name in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
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


def _flat_split(split_dir: Path, entries: list[Path], classes: list[str], labels_file: Path) -> FolderScan:
    """The images directly in `split_dir`, labelled by `labels_file`; an image without a label is an error."""
    classes_of = _read_labels(labels_file, classes)
    images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
    ignored = [p for p in entries if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if not images:
        raise UserError(f"{split_dir} has no images ({' '.join(IMAGE_EXTENSIONS)}) for the labels in {labels_file}")
    labels = []
    for path in images:
        label = classes_of.get(path.name, classes_of.get(path.stem))  # a labels file may leave out the extension
        if label is None:
            raise UserError(f"image {path} has no label in {labels_file}; add a line '{path.name} <class>'")
        labels.append(label)
    return FolderScan(split_dir, images, labels, classes, ignored)


def _read_labels(labels_file: Path, classes: list[str]) -> dict[str, int]:
    """File name (or, for Kaggle's CSV, image id) -> class index, from `labels_file`."""
    try:
        lines = labels_file.read_text(encoding="utf-8-sig").splitlines()  # utf-8-sig: a BOM is dropped
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read labels file {labels_file} ({e}); pass an existing text file") from None
    kaggle = bool(lines) and lines[0].strip().replace(" ", "") == KAGGLE_HEADER
    label_of = {name: i for i, name in enumerate(classes)}
    out: dict[str, int] = {}
    for number, line in enumerate(lines[1:] if kaggle else lines, start=2 if kaggle else 1):
        # Kaggle: ImageId,PredictionString where the string is "<wnid> x0 y0 x1 y1 <wnid> ..." (one box per object).
        fields = line.replace(",", " ", 1).split() if kaggle else line.split()
        if not fields:
            continue
        if len(fields) < 2 or (not kaggle and len(fields) > 2):
            raise UserError(f"line {number} of {labels_file} is not '<file name> <class>': {line.strip()!r}")
        name, cls = fields[0], fields[1]
        label = label_of.get(cls, int(cls) if cls.isdigit() else None)  # a folder name first, else an index
        if label is None or not 0 <= label < len(classes):
            raise UserError(
                f"line {number} of {labels_file} names class {cls!r}, which is neither one of the {len(classes)} "
                f"classes ({class_listing(classes)}) nor an index below {len(classes)}"
            )
        out[name] = label
    return out


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
    """The image files and the other entries under `class_dir` (recursively, hidden ones left out), each sorted."""
    images: list[Path] = []
    others: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # prune hidden folders from the walk
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath, name)
                # A FIFO, socket or dangling link is no image: reading one would hang or fail, so it is ignored.
                image = path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
                (images if image else others).append(path)
    return sorted(images), sorted(others)
