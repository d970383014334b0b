"""The images a trained model is tested on: its own held-out validation split, the rest of train, val or test."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from ..data import ImageFiles, ImageSet, has_split, train_val_split
from ..data.cifar import find_cifar10
from ..data.reading import reading_for


def evaluation_split(
    data: str,
    split: str,
    train_config: dict,
    classes: list[str],
    *,
    labels_file: Path | None = None,
    train_images: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet | ImageFiles:
    """`split` of `data` as the run saw it.

    'val' is the run's held-out part of train when it held one out (val_split > 0), else the data's own ROOT/val
    (a flat folder needs `labels_file`, by default the run's val_labels); 'train' is the rest of train; 'test' is
    ROOT/test. The split is read as the run's training read it (data/reading.py): in memory for CIFAR runs, decoded on
    demand for photos of any size (ImageNet-trained runs, and weights without a run).

    `classes` is the model's class list (TrainedModel.classes): labels index it and only the folders read are needed
    (ROOT/test alone for 'test'). Empty: the model's classes are unknown and the data's order is taken.
    `train_images`, the run's count (its checkpoints record it), checks that a rebuilt split is the run's.
    """
    labels_file = labels_file or train_config.get("val_labels")  # the run's own, for its flat val folder
    reading = reading_for(train_config)
    options = dict(
        classes=classes or None,  # None: the data's class folders
        skip_bad_images=train_config.get("skip_bad_images", False),
        decode_cache=train_config.get("decode_cache", False),
        workers=workers,
        progress=progress,
    )

    val_size = train_config.get("val_split", 0)
    if split == "test" or (split == "val" and not val_size):
        root = Path(data).expanduser()
        if split == "val" and (find_cifar10(root) is not None or (root.is_dir() and not has_split(root, "val"))):
            raise UserError(
                f"this model was trained on every training image (val_split 0) and {data} has no val folder; "
                "use --split test"
            )
        return reading.read(data, split, labels_file=labels_file if split == "val" else None, **options)
    full = reading.read(data, "train", **options)
    if train_images is not None and len(full) - val_size != train_images:  # else other images would be held out
        raise UserError(
            f"--data {data} is not the data this model was trained on: its train split has {len(full)} images, the "
            f"run's had {train_images + val_size} ({train_config.get('data')}); pass the run's --data, or --split test"
        )
    train_idx, val_idx = train_val_split(full.labels, val_size, train_config.get("split_seed", 0))
    return full.subset(val_idx if split == "val" else train_idx)
