"""Training batches for an iteration number: the CIFAR pipeline (Sec. 4.2) and the ImageNet one (Sec. 3.4).

Both are pure functions of (seed, iteration), so a run resumes exactly, on any number of ranks and workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tqdm import tqdm

from ..core.rng import CIFAR_AUGMENT, LIGHTING, seeded_generator
from ..data import ImageFiles, ImageSet, TrainLoader, lighting, normalize, random_crop_flip
from ..data.augment import standardize
from ..data.loader import init_worker
from ..data.sampler import EpochSampler
from ..evaluation.evaluate import evaluation_positions
from ..evaluation.views import center
from .config import TrainConfig

Batch = tuple[torch.Tensor, torch.Tensor]  # normalised float images on the device, int64 labels
ImageSource = ImageSet | ImageFiles


class CifarBatches:
    """The whole uint8 set on the training device; each batch padded, cropped and flipped there, in one go."""

    def __init__(
        self,
        config: TrainConfig,
        train: ImageSet,
        sampler: EpochSampler,
        mean: torch.Tensor,
        std: torch.Tensor | None,
        device: torch.device,
    ):
        self.config, self.sampler, self.device = config, sampler, device
        self.images = train.images.to(device)
        self.labels = train.labels.to(device)
        self.mean = mean.to(device)
        self.std = None if std is None else std.to(device)
        self.skipped = 0

    def batch(self, iteration: int) -> Batch:
        """This rank's share of the augmented, normalised global batch of `iteration`."""
        idx = self.sampler.global_batch(iteration).to(self.device)
        generator = seeded_generator(self.config.seed, CIFAR_AUGMENT, iteration, device=self.device)
        # Every rank draws the crops and flips of the whole global batch and keeps its share, so each image is
        # augmented the same way on any number of ranks.
        x = random_crop_flip(self.images[idx], self.config.crop_padding, generator, flip=self.config.flip)
        return normalize(self.sampler.share(x), self.mean, self.std), self.labels[self.sampler.share(idx)]


class ImageNetBatches:
    """Images decoded, rescaled and cropped in worker processes; colour noise and the mean applied on the device."""

    def __init__(
        self,
        config: TrainConfig,
        loader: TrainLoader,
        sampler: EpochSampler,
        mean: torch.Tensor,
        std: torch.Tensor | None,
        device: torch.device,
    ):
        self.config, self.loader, self.sampler, self.device = config, loader, sampler, device
        self.mean = mean.to(device)
        self.std = None if std is None else std.to(device)
        self.skipped = 0  # unreadable images dropped from their batch (--skip-bad-images)
        self._stream: Iterator | None = None
        self._current: tuple[int, Batch] | None = None

    def batch(self, iteration: int) -> Batch:
        """This rank's share of the batch of `iteration`: asking twice (a retried fp16 step) gives the same one."""
        if self._current is not None and self._current[0] == iteration:
            return self._current[1]
        if self._stream is None or self._current is None or self._current[0] + 1 != iteration:
            self._stream = self.loader.batches(iteration)  # a fresh start (or resume) at `iteration`
        at, images, labels, skipped = next(self._stream)
        self.skipped += skipped
        non_blocking = self.device.type == "cuda"
        x = images.to(self.device, non_blocking=non_blocking).float().div_(255)
        # The colour noise of the whole global batch, of which this rank takes its share (less any dropped images).
        generator = seeded_generator(self.config.seed, LIGHTING, at, device=self.device)
        noise = self.sampler.share(torch.randn(self.config.batch_size, 3, generator=generator, device=self.device))
        x = standardize(lighting(x, noise[: len(x)], std=self.config.lighting_std), self.mean, self.std)
        self._current = (at, (x, labels.to(self.device, non_blocking=non_blocking)))
        return self._current[1]


class _CenterViews(torch.utils.data.Dataset):
    """The centre view of every `stride`-th image of a source, decoded in worker processes."""

    def __init__(self, source: ImageSource, indices: list[int], resize: int, crop: int):
        self.source, self.indices, self.resize, self.crop = source, indices, resize, crop

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return center(self.source.image(self.indices[i]), self.resize, self.crop)[0][0]


def center_pixel_mean(
    source: ImageSource,
    *,
    resize: int = 256,
    crop: int = 224,
    workers: int = 0,
    limit: int = 10_000,
    progress: bool = True,
) -> torch.Tensor:
    """The per-pixel mean [3, crop, crop] in [0, 1] of the training images' centre views (Sec. 3.4's "per-pixel
    mean subtracted"), over at most `limit` images spread evenly over the set: a fixed sample, so it is reproducible."""
    indices = evaluation_positions(len(source), limit).tolist()
    views = torch.utils.data.DataLoader(
        _CenterViews(source, indices, resize, crop), batch_size=64, num_workers=workers, worker_init_fn=init_worker
    )
    total = torch.zeros(3, crop, crop, dtype=torch.float64)
    for batch in tqdm(views, desc="per-pixel mean", unit="batch", disable=not progress):
        total += batch.to(torch.float64).sum(0)
    return (total / (255 * len(indices))).to(torch.float32)
