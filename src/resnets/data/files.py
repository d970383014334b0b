"""A split of an image folder read image by image, of any sizes: decoded on demand or from the decode cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .cache import CachedPixels, cached_pixels
from .cifar import find_cifar10, read_cifar10
from .decode import decode_image
from .folder import scan_split
from .imageset import ImageSet


class ImageFiles:
    """The images of a split and their labels; image(i) decodes file i, or reads it from the decode cache.

    Cheap to pickle into DataLoader workers: file names are one numpy byte array (no per-file Python objects,
    whose reference counts would copy the forked workers' memory page by page) and the cache is memory-mapped
    lazily, once per process.
    """

    def __init__(
        self,
        files: list[Path] | np.ndarray,
        labels: torch.Tensor,
        classes: list[str],
        *,
        cache: CachedPixels | None = None,
        skipped: int = 0,
        ignored: int = 0,
    ):
        self.files = files if isinstance(files, np.ndarray) else np.array([os.fsencode(p) for p in files])
        self.labels = labels
        self.classes = classes
        self.cache = cache  # its rows line up with files and labels
        self.skipped = skipped  # bad images left out when the decode cache was built with skip_bad_images
        self.ignored = ignored  # non-image files found in the split folder
        self._pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        """The file of image i."""
        return Path(os.fsdecode(self.files[i]))

    def image(self, i: int) -> torch.Tensor:
        """Image i as uint8 RGB [3, H, W]; a file that cannot be decoded raises a UserError naming it."""
        if self.cache is None:
            return torch.from_numpy(decode_image(self.path(i)))
        if self._pixels is None:
            self._pixels = np.load(self.cache.path, mmap_mode="r")
        return torch.from_numpy(self.cache.read(self._pixels, i))

    def subset(self, indices: torch.Tensor | list[int]) -> ImageFiles:
        """The images at `indices`, in that order, with their labels."""
        idx = torch.as_tensor(indices, dtype=torch.long).numpy()
        cache = self.cache
        if cache is not None:
            cache = CachedPixels(cache.path, cache.kept[idx], cache.offsets[idx], cache.shapes[idx], cache.bad)
        return ImageFiles(
            self.files[idx],
            self.labels[torch.from_numpy(idx)],
            self.classes,
            cache=cache,
            skipped=self.skipped,
            ignored=self.ignored,
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # a memory map is not pickled: each process opens its own


def open_split(
    data: str | Path,
    split: str = "train",
    *,
    labels_file: str | Path | None = None,
    classes: list[str] | None = None,
    decode_cache: bool = False,
    cache_dir: Path | None = None,
    skip_bad_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImageFiles | ImageSet:
    """`split` of image folder `data` as ImageFiles, decoded on demand or, with decode_cache, once into the cache.

    A flat split folder needs `labels_file`; `classes`: the model's, else the data's (see scan_split). An official
    CIFAR-10 folder gives its ImageSet.
    """
    root = Path(data).expanduser()
    official = find_cifar10(root)
    if official is not None:
        return read_cifar10(official, split, classes)
    scan = scan_split(root, split, labels_file, classes)
    labels = torch.tensor(scan.labels, dtype=torch.long)
    if not decode_cache:
        return ImageFiles(scan.files, labels, scan.classes, ignored=len(scan.ignored))
    cached = cached_pixels(
        scan, cache_dir=cache_dir, skip_bad_images=skip_bad_images, workers=workers, progress=progress
    )
    files = [scan.files[i] for i in cached.kept]
    return ImageFiles(
        files,
        labels[torch.from_numpy(cached.kept)],
        scan.classes,
        cache=cached,
        skipped=len(cached.bad),
        ignored=len(scan.ignored),
    )
