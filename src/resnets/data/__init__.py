"""Data: CIFAR-10 and image folders (in memory or image by image), the validation split, and augmentation."""

from .augment import normalize, pixel_mean, random_crop_flip
from .cifar import download_cifar10
from .dataset import ImageSet, load_split
from .files import ImageFiles, open_split
from .folder import has_split
from .loader import TrainLoader
from .scale_augment import lighting, scale_crop_flip
from .split import train_val_split

__all__ = [
    "ImageFiles",
    "ImageSet",
    "TrainLoader",
    "download_cifar10",
    "has_split",
    "lighting",
    "load_split",
    "normalize",
    "open_split",
    "pixel_mean",
    "random_crop_flip",
    "scale_crop_flip",
    "train_val_split",
]
