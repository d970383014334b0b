"""The order in which training images are visited: a seeded permutation per epoch, cut into batches."""

from __future__ import annotations

import torch

from ..core.errors import UserError
from ..core.rng import EPOCH_ORDER, seeded_generator


class EpochSampler:
    """Global batches of `batch_size` indices for any iteration; rank r of w keeps the r-th of w slices.

    Every epoch is a fresh permutation of the dataset drawn from (seed, epoch), and the last
    incomplete batch is dropped, so iteration i always sees the same images, on any number of ranks:
    resuming needs nothing but the iteration number.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size > size:
            raise UserError(f"batch_size={batch_size} is larger than the {size} training images; lower --batch-size")
        if batch_size % world_size:
            raise UserError(
                f"batch_size={batch_size} does not split evenly over {world_size} processes; "
                f"choose a multiple of {world_size}"
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = size // batch_size
        self._epoch, self._permutation = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The visiting order of `epoch` (cached for the current epoch)."""
        if epoch != self._epoch:
            generator = seeded_generator(self.seed, EPOCH_ORDER, epoch)
            self._epoch, self._permutation = epoch, torch.randperm(self.size, generator=generator)
        return self._permutation

    def global_batch(self, iteration: int) -> torch.Tensor:
        """The indices of the whole global batch at `iteration`, the same on every rank."""
        epoch, step = divmod(iteration, self.steps_per_epoch)
        return self.permutation(epoch)[step * self.batch_size : (step + 1) * self.batch_size]

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (of indices, images or labels)."""
        size = self.batch_size // self.world_size
        return batch[self.rank * size : (self.rank + 1) * size]
