"""The two data pipelines of the paper, chosen once from `augmentation`: CIFAR's (Sec. 4.2) and ImageNet's (Sec. 3.4).

Each owns what differs between them: how a split is read, which split is held out and the validation view (its
reading, data/reading.py, which evaluation shares), and the mean, the batches and the validation's decoding workers.
The trainer asks its pipeline and never branches on `augmentation` itself.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import ImageFiles, ImageSet, TrainLoader, pixel_mean
from ..data.cifar import default_cifar10, download_cifar10, find_cifar10
from ..data.reading import InMemoryReading, OnDemandReading
from ..data.sampler import EpochSampler
from .batches import CifarBatches, ImageNetBatches, center_pixel_mean
from .config import TrainConfig


class CifarPipeline(InMemoryReading):
    """32x32 images held in memory; padded crops and flips on the device; the per-pixel mean; the image as it is."""

    def __init__(self, config: TrainConfig):
        self.config = config

    def load(self, split: str, labels_file: str | None = None, progress: bool = True) -> ImageSet:
        """One split in memory; a run without --data downloads CIFAR-10 first (into resolve_config's folder)."""
        if Path(self.config.data) == default_cifar10() and find_cifar10(default_cifar10()) is None:
            download_cifar10(default_cifar10().parent, progress=progress)
        images = self.read(self.config.data, split, skip_bad_images=self.config.skip_bad_images, progress=progress)
        assert isinstance(images, ImageSet)  # read without a labels file: load_split's set in memory
        return images

    def mean(self, train: ImageSet | ImageFiles, progress: bool = True) -> torch.Tensor:
        """The per-pixel mean of the training images (Sec. 4.2, "per-pixel mean subtracted")."""
        assert isinstance(train, ImageSet)  # as `load` gives it
        return pixel_mean(train.images)

    def batches(
        self, train: ImageSet | ImageFiles, sampler: EpochSampler, mean, std, device: torch.device
    ) -> CifarBatches:
        """The whole set on the device, each batch augmented there."""
        assert isinstance(train, ImageSet)  # as `load` gives it
        return CifarBatches(self.config, train, sampler, mean, std, device)

    @property
    def validation_workers(self) -> int:
        """In memory: nothing to decode."""
        return 0


class ImageNetPipeline(OnDemandReading):
    """Photos decoded on demand; scale augmentation in worker processes; the mean of the centre views; centre crop."""

    def __init__(self, config: TrainConfig):
        self.config = config

    def load(self, split: str, labels_file: str | None = None, progress: bool = True) -> ImageSet | ImageFiles:
        """One split's files, decoded when asked for (an official CIFAR-10 folder is read in memory)."""
        c = self.config
        return self.read(
            c.data,
            split,
            labels_file=labels_file,
            skip_bad_images=c.skip_bad_images,
            decode_cache=c.decode_cache,
            workers=c.workers,
            progress=progress,
        )

    def mean(self, train: ImageSet | ImageFiles, progress: bool = True) -> torch.Tensor:
        """The per-pixel mean of the training images' centre views (Sec. 3.4)."""
        c = self.config
        return center_pixel_mean(
            train, resize=c.test_resize, crop=c.crop_size, workers=c.decode_workers, progress=progress
        )

    def batches(
        self, train: ImageSet | ImageFiles, sampler: EpochSampler, mean, std, device: torch.device
    ) -> ImageNetBatches:
        """Decoding and scale augmentation in DataLoader workers, colour noise and the mean on the device."""
        c = self.config
        low, high = c.scale_range  # two sides: TrainConfig checks them
        loader = TrainLoader(
            train,
            sampler,
            c.seed,
            scale_range=(low, high),
            crop=c.crop_size,
            flip=c.flip,
            workers=c.decode_workers,
            skip_bad_images=c.skip_bad_images,
            pin_memory=device.type == "cuda",
        )
        return ImageNetBatches(c, loader, sampler, mean, std, device)

    @property
    def validation_workers(self) -> int:
        """The run's decoding processes."""
        return self.config.decode_workers


Pipeline = CifarPipeline | ImageNetPipeline
PIPELINES = {pipeline.augmentation: pipeline for pipeline in (CifarPipeline, ImageNetPipeline)}


def pipeline_for(config: TrainConfig) -> Pipeline:
    """The run's pipeline: the one place that reads `augmentation`."""
    return PIPELINES[config.augmentation](config)
