"""The image sets a trained model is tested on: its own held-out validation split, the rest of train, or test."""

from __future__ import annotations

from ..data import ImageSet, load_split, train_val_split
from ..errors import UserError


def evaluation_split(data: str, split: str, train_config: dict, classes: list[str]) -> ImageSet:
    """`split` of `data` as the run saw it: 'val' and 'train' redo the run's seeded train/val split."""
    if split == "test":
        images = load_split(data, "test")
    else:
        full = load_split(data, "train")
        val_size = train_config.get("val_split", 0)
        if split == "val" and not val_size:
            raise UserError("this model was trained on every training image (val_split 0); use --split test")
        train_idx, val_idx = train_val_split(full.labels, val_size, train_config.get("split_seed", 0))
        idx = val_idx if split == "val" else train_idx
        images = ImageSet(full.images[idx], full.labels[idx], full.classes)
    if images.classes != classes:
        raise UserError(f"{data} has classes {images.classes[:3]}..., but the model was trained on {classes[:3]}...")
    return images
