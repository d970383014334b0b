"""The in-memory image set that every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """A whole split held in memory: uint8 images [N, 3, H, W] (contiguous) and int64 labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    skipped: int = 0  # bad images left out because skip_bad_images was set
    ignored: int = 0  # non-image files found in the split folder

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> torch.Tensor:
        """Image i, uint8 [3, H, W]."""
        return self.images[i]

    def subset(self, indices: torch.Tensor | list[int]) -> ImageSet:
        """The images at `indices`, in that order (copied), with their labels."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(self.images[indices], self.labels[indices], self.classes, self.skipped, self.ignored)
