"""The images a trained model is tested on: its own held-out validation split, the rest of train, val or test."""

from __future__ import annotations

from pathlib import Path

from ..data import ImageFiles, ImageSet, has_split, load_split, open_split, train_val_split
from ..data.cifar import find_cifar10
from ..errors import UserError


def evaluation_split(
    data: str,
    split: str,
    train_config: dict,
    classes: list[str],
    *,
    labels_file: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet | ImageFiles:
    """`split` of `data` as the run saw it.

    'val' is the run's held-out part of train when it held one out (val_split > 0), else the data's own ROOT/val
    (a flat folder needs `labels_file`, by default the run's val_labels); 'train' is the rest of train; 'test' is
    ROOT/test. Runs trained with CIFAR augmentation get their images in memory (ImageSet) as in training; photos of
    any size (ImageNet-trained runs, and weights without a run) are decoded on demand (ImageFiles). `classes` empty:
    the model's class order is unknown and the data's is taken.
    """
    labels_file = labels_file or train_config.get("val_labels")  # the run's own, for its flat val folder
    cifar_run = bool(train_config) and train_config.get("augmentation", "cifar") == "cifar"
    options = dict(skip_bad_images=train_config.get("skip_bad_images", False), workers=workers, progress=progress)
    in_memory = cifar_run and labels_file is None

    def load(name: str, labels: Path | None = None) -> ImageSet | ImageFiles:
        if in_memory:
            return load_split(data, name, **options)
        return open_split(
            data, name, labels_file=labels, decode_cache=train_config.get("decode_cache", False), **options
        )

    val_size = train_config.get("val_split", 0)
    if split == "test" or (split == "val" and not val_size):
        root = Path(data).expanduser()
        if split == "val" and (find_cifar10(root) is not None or (root.is_dir() and not has_split(root, "val"))):
            raise UserError(
                f"this model was trained on every training image (val_split 0) and {data} has no val folder; "
                "use --split test"
            )
        images = load(split, labels_file if split == "val" else None)
    else:
        full = load("train")
        train_idx, val_idx = train_val_split(full.labels, val_size, train_config.get("split_seed", 0))
        images = full.subset(val_idx if split == "val" else train_idx)
    if classes and images.classes != classes:
        raise UserError(f"{data} has classes {images.classes[:3]}..., but the model was trained on {classes[:3]}...")
    return images
