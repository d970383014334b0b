"""The ImageNet training loader: worker processes decode and scale-augment images, reproducibly (Sec. 3.4)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..core.errors import UserError
from ..core.rng import IMAGENET_AUGMENT, seeded_generator
from ..core.runtime import leave_ctrl_c_to_the_main_process
from .decode import BadImage
from .files import ImageFiles
from .imageset import ImageSet
from .sampler import EpochSampler
from .scale_augment import check_scale, scale_crop_flip

UNIFORMS = 4  # per image: shorter side, crop row, crop column, flip

Item = tuple[int, tuple[float, ...]]  # an image's index and its uniforms
Batch = tuple[int, torch.Tensor, torch.Tensor, int]  # iteration, images, labels, how many bad images were dropped


class TrainLoader:
    """Batches of scale-augmented uint8 crops for any iteration, the same whatever the number of workers.

    Every random number of iteration i is drawn in the main process from (seed, i) for the whole global batch,
    and each rank keeps its share of the images and of their random numbers: iteration i gives the same images
    on any number of workers and ranks, and resuming at iteration k needs nothing but k.
    """

    def __init__(
        self,
        source: ImageFiles | ImageSet,
        sampler: EpochSampler,
        seed: int,
        *,
        scale_range: tuple[int, int] = (256, 480),
        crop: int = 224,
        flip: bool = True,
        workers: int = 2,
        skip_bad_images: bool = False,
        pin_memory: bool = False,
    ):
        if workers < 0:
            raise UserError(f"workers {workers} must be at least 0 (0: decode in the main process)")
        check_scale(scale_range, crop)
        self.skip_bad_images = skip_bad_images
        self._plan = _Plan(sampler, seed)
        self._loader = DataLoader(
            _Augmented(source, scale_range, crop, flip),
            batch_sampler=self._plan,
            num_workers=workers,
            collate_fn=functools.partial(_collate, crop=crop),
            pin_memory=pin_memory,
            worker_init_fn=init_worker,
            persistent_workers=workers > 0,
        )

    def batches(self, start_iteration: int = 0) -> Iterator[Batch]:
        """(iteration, uint8 images [B, 3, crop, crop], int64 labels [B], dropped) for start_iteration, +1, ...

        B is this rank's share of the batch, less the bad images dropped with skip_bad_images; without it a bad
        image stops the run with a UserError naming its file. One stream at a time: a new call restarts the workers'
        queue.
        """
        self._plan.start = start_iteration
        for iteration, (images, labels, bad) in zip(itertools.count(start_iteration), self._loader):
            if bad and not self.skip_bad_images:
                raise BadImage(bad[0])
            yield iteration, images, labels, len(bad)


class _Plan:
    """The batch sampler: for each iteration from `start`, this rank's (index, uniforms) pairs."""

    def __init__(self, sampler: EpochSampler, seed: int):
        self.sampler, self.seed, self.start = sampler, seed, 0

    def __iter__(self) -> Iterator[list[Item]]:
        for iteration in itertools.count(self.start):
            indices = self.sampler.global_batch(iteration)
            generator = seeded_generator(self.seed, IMAGENET_AUGMENT, iteration)
            uniforms = torch.rand(len(indices), UNIFORMS, generator=generator)  # the whole global batch, every rank
            # Plain numbers, not tensors: a tensor would travel to a worker through its own shared-memory file.
            yield list(zip(self.sampler.share(indices).tolist(), map(tuple, self.sampler.share(uniforms).tolist())))


class _Augmented(Dataset):
    """Image `index` of `source`, decoded and scale-augmented with its uniforms; a bad image gives its message."""

    def __init__(self, source: ImageFiles | ImageSet, scale_range: tuple[int, int], crop: int, flip: bool):
        self.source, self.scale_range, self.crop, self.flip = source, scale_range, crop, flip

    def __getitem__(self, item: Item) -> tuple[torch.Tensor | None, int, str | None]:
        index, uniforms = item
        label = int(self.source.labels[index])
        try:
            image = self.source.image(index)
        except UserError as e:  # returned, not raised: DataLoader would wrap it in a multi-line worker traceback
            return None, label, str(e)
        return scale_crop_flip(image, torch.tensor(uniforms), self.scale_range, self.crop, self.flip), label, None


def _collate(items: list[tuple[torch.Tensor | None, int, str | None]], crop: int) -> tuple:
    """Stack the images that decoded; the messages of those that did not travel back as values."""
    good = [(image, label) for image, label, _ in items if image is not None]
    images = torch.stack([image for image, _ in good]) if good else torch.empty(0, 3, crop, crop, dtype=torch.uint8)
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    return images, labels, [error for _, _, error in items if error is not None]


def init_worker(worker_id: int) -> None:
    """A DataLoader worker computes on one thread (the workers would otherwise oversubscribe the cores) and leaves
    Ctrl-C to the main process."""
    torch.set_num_threads(1)
    leave_ctrl_c_to_the_main_process()
