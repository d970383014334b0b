"""CIFAR-10 data: loading splits into memory, the fixed validation split, and batched augmentation."""

from .augment import normalize, pixel_mean, random_crop_flip
from .cifar import download_cifar10
from .dataset import ImageSet, load_split
from .split import train_val_split

__all__ = [
    "ImageSet",
    "download_cifar10",
    "load_split",
    "normalize",
    "pixel_mean",
    "random_crop_flip",
    "train_val_split",
]
