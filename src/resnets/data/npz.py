"""A split of images in one compressed .npz file, which load_split reads as it reads a folder: uint8 images
[N, 3, H, W], int labels [N] indexing `classes`, the split's name, and the file each image came from.

The package's slice of the CIFAR-10 test split (weights/samples.py) is one; `pack_folder` makes one from the first
images of each class folder of a split.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_write
from ..core.errors import UserError
from .classes import model_labels
from .decode import decode_image
from .folder import scan_split
from .imageset import ImageSet

KEYS = ("images", "labels", "classes", "split")


def is_npz(path: Path) -> bool:
    """Whether `path` is a file named .npz (a split in one file), not a data folder."""
    return path.suffix == ".npz" and path.is_file()


def read_npz(file: Path, split: str, classes: list[str] | None = None) -> ImageSet:
    """The images of `file` in memory, if it holds `split`; `classes`: the model's class list, which the labels then
    index (a class of the file that the model lacks is an error), as read_cifar10 does."""
    arrays = _arrays(file)
    names = [str(name) for name in arrays["classes"]]
    held = str(arrays["split"])
    if held != split:
        raise UserError(f"{file} holds the {held} split only, not {split!r}; pass --split {held}")
    pixels, labels = torch.from_numpy(np.ascontiguousarray(arrays["images"])), torch.from_numpy(arrays["labels"])
    if classes is None:
        return ImageSet(pixels, labels, names)
    as_model = torch.tensor(model_labels(names, classes, file), dtype=torch.long)
    return ImageSet(pixels, as_model[labels], classes)


def _arrays(file: Path) -> dict[str, np.ndarray]:
    """The arrays of `file`, checked: uint8 images [N, 3, H, W], labels [N] within the N classes, a split name."""
    fix = "replace it with a file written by resnets.data.npz.write_npz"
    try:
        with np.load(file, allow_pickle=False) as npz:  # no pickles: a tampered file cannot run code
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read {file} ({e}); {fix}") from None
    missing = [key for key in KEYS if key not in arrays]
    if missing:
        raise UserError(f"{file} has no {', '.join(missing)}; {fix}")
    images, labels, classes = arrays["images"], arrays["labels"].astype(np.int64), arrays["classes"]
    if not (
        images.dtype == np.uint8
        and images.ndim == 4
        and images.shape[1] == 3
        and labels.shape == images.shape[:1]
        and classes.ndim == 1
        and classes.dtype.kind == "U"
        and arrays["split"].dtype.kind == "U"
        and np.all((labels >= 0) & (labels < len(classes)))
    ):
        raise UserError(f"{file} is not an image split (uint8 images [N, 3, H, W], N labels of its classes); {fix}")
    return {**arrays, "labels": labels}


def write_npz(file: Path, images: ImageSet, split: str, files: list[str] | None = None) -> None:
    """Write `images` as `split` of a compressed .npz; `files`: where each image came from (kept as provenance)."""
    with atomic_write(file) as f:
        np.savez_compressed(
            f,
            images=images.images.numpy().astype(np.uint8),
            labels=images.labels.numpy().astype(np.uint8 if len(images.classes) <= 256 else np.int64),
            classes=np.array(images.classes),
            split=np.array(split),
            files=np.array(files if files is not None else [], dtype=str),
        )


def pack_folder(root: Path, split: str, per_class: int, out: Path) -> ImageSet:
    """Write the first `per_class` images of each class folder of ROOT/<split> (sorted by path) to `out`, decoded
    losslessly as load_split decodes them, with their paths relative to ROOT; return them."""
    scan = scan_split(Path(root), split)
    labels = np.asarray(scan.labels)
    chosen = [i for label in range(len(scan.classes)) for i in np.flatnonzero(labels == label)[:per_class]]
    images = torch.from_numpy(np.stack([decode_image(scan.files[i]) for i in chosen]))
    packed = ImageSet(images, torch.as_tensor(labels[chosen], dtype=torch.long), scan.classes)
    write_npz(out, packed, split, [scan.files[i].relative_to(root).as_posix() for i in chosen])
    return packed
