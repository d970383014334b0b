"""How a run's images are read, chosen once from its `augmentation`: CIFAR's 32x32 sets held in memory (Sec. 4.2),
or photos decoded on demand (Sec. 3.4).

Training's pipelines (training/pipeline.py) are these readings plus what only training needs; evaluation reads a
run's splits and picks its default test view through the same objects, so no other module branches on
`augmentation`.
"""

from __future__ import annotations

from pathlib import Path

from .cifar import find_cifar10
from .dataset import load_split
from .files import ImageFiles, open_split
from .folder import has_split
from .imageset import ImageSet


class InMemoryReading:
    """CIFAR's: every image of a split decoded once into uint8 memory, tested as the whole 32x32 image."""

    augmentation = "cifar"
    held_out = "test"  # official CIFAR-10's held-out split
    validation_view = "full"

    def read(
        self,
        data: str | Path,
        split: str,
        *,
        labels_file: str | Path | None = None,
        decode_cache: bool = False,
        **options,
    ) -> ImageSet | ImageFiles:
        """`split` in memory; a flat folder named by a labels file is read image by image, as it has no classes.

        `options`: `classes`, `skip_bad_images`, `workers` and `progress`, as load_split and open_split take them.
        """
        if labels_file is not None:
            return open_split(data, split, labels_file=labels_file, decode_cache=decode_cache, **options)
        return load_split(data, split, **options)

    def has_held_out(self, root: Path) -> bool:
        """Whether the data has its own test split (the python batches always do)."""
        return has_split(root, self.held_out) or find_cifar10(root) is not None


class OnDemandReading:
    """ImageNet's: photos of any size decoded when asked for, tested on the centre crop."""

    augmentation = "imagenet"
    held_out = "val"
    validation_view = "center"  # the 224 centre crop of the 256 resize

    def read(
        self,
        data: str | Path,
        split: str,
        *,
        labels_file: str | Path | None = None,
        decode_cache: bool = False,
        **options,
    ) -> ImageSet | ImageFiles:
        """`split`'s files, decoded on demand (or once into the decode cache); `options` as InMemoryReading.read's."""
        return open_split(data, split, labels_file=labels_file, decode_cache=decode_cache, **options)

    def has_held_out(self, root: Path) -> bool:
        """Whether the data has a ROOT/val folder."""
        return has_split(root, self.held_out)


Reading = InMemoryReading | OnDemandReading
READINGS = {reading.augmentation: reading for reading in (InMemoryReading, OnDemandReading)}


def reading_for(train_config: dict) -> Reading:
    """The reading of a run with this saved config (runs older than `augmentation` were CIFAR's)."""
    if not train_config:  # weights without a run: photos of any size
        return OnDemandReading()
    return READINGS[train_config.get("augmentation", InMemoryReading.augmentation)]()
