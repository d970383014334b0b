"""Loading one split of a data set, official CIFAR-10 or an image folder, as an in-memory ImageSet."""

from __future__ import annotations

from pathlib import Path

from .cache import load_cached
from .cifar import find_cifar10, read_cifar10
from .folder import scan_split
from .imageset import ImageSet
from .npz import is_npz, read_npz

__all__ = ["ImageSet", "load_split"]


def load_split(
    data: str | Path,
    split: str = "train",
    *,
    classes: list[str] | None = None,
    cache_dir: Path | None = None,
    skip_bad_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """Load `split` of `data`: an official CIFAR-10 folder, an image folder ROOT/<split>/<class>/<image>, or one
    split in a .npz file (data/npz.py: the package's CIFAR-10 test slice).

    `classes`: the model's class list, which the labels index (see scan_split); None: the data's own.
    """
    root = Path(data).expanduser()
    if is_npz(root):  # uint8 already, like the python batches
        return read_npz(root, split, classes)
    official = find_cifar10(root)
    if official is not None:  # already raw uint8: no decoding, no cache
        return read_cifar10(official, split, classes)
    scan = scan_split(root, split, classes=classes)
    return load_cached(scan, cache_dir=cache_dir, skip_bad_images=skip_bad_images, workers=workers, progress=progress)
