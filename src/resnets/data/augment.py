"""The paper's CIFAR augmentation and input normalisation (Sec. 4.2), batched on the training device."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.errors import UserError


def random_crop_flip(
    images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None, flip: bool = True
) -> torch.Tensor:
    """Zero-pad each image by `padding`, crop it back to H x W at a random offset, flip it with probability 1/2.

    `images` is a uint8 batch [N, C, H, W]. All random numbers come from `generator` (the default generator if
    None), which must be on the same device as `images`; one seed thus gives one sequence of batches.
    flip=False turns the flips off; the flips are still drawn, so a seed gives the same crops either way.
    """
    if padding < 0:
        raise UserError(f"padding {padding} must be at least 0")
    n, _, h, w = images.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=images.device)
    flips = torch.randint(0, 2, (n,), generator=generator, device=images.device).bool()
    padded = F.pad(images, (padding, padding, padding, padding))
    # windows[i, :, y, x] is the H x W crop at offset (y, x) of image i: a strided view, nothing is copied.
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)
    crops = windows[torch.arange(n, device=images.device), :, offsets[0], offsets[1]]
    if not flip:
        return crops
    return torch.where(flips[:, None, None, None], crops.flip(3), crops)


def pixel_mean(images: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """The per-pixel mean of a uint8 set [N, 3, H, W] as float32 [3, H, W] in [0, 1], summed in float64."""
    if len(images) == 0:
        raise ValueError("pixel_mean needs at least one image")
    total = torch.zeros(images.shape[1:], dtype=torch.float64, device=images.device)
    for chunk in images.split(batch):  # chunks bound the float64 copy to `batch` images
        total += chunk.to(torch.float64).sum(0)
    return (total / (255 * len(images))).to(torch.float32)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images [N, 3, H, W] to float32 in [0, 1] minus the mean, divided by `std` if given (the paper does not)."""
    return standardize(images.to(torch.float32).div_(255), mean, std)


def standardize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | None = None) -> torch.Tensor:
    """Float images [N, 3, H, W] in [0, 1] minus the mean, divided by `std` if given; in place.

    `mean` is per-pixel [3, h, w] or per-channel [3, 1, 1]; a per-pixel mean of another size is resized bilinearly
    to the images' size, since the fully-convolutional test views (Sec. 3.4) feed whole images of any size.
    """
    size = tuple(images.shape[-2:])
    if mean.shape[-2:] != (1, 1) and tuple(mean.shape[-2:]) != size:
        mean = F.interpolate(mean[None], size=size, mode="bilinear", align_corners=False)[0]
    images.sub_(mean)
    return images if std is None else images.div_(std)
