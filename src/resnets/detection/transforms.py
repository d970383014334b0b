"""Image resizing as Faster R-CNN sizes its inputs: the shorter side to min_size, the longer at most max_size."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """The factor that brings the shorter side to `min_size` unless the longer would exceed `max_size`
    (py-faster-rcnn's prep_im_for_blob)."""
    short, long = min(height, width), max(height, width)
    return min(min_size / short, max_size / long)


def resized_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The (height, width) in pixels of an image resized by `scale`."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: torch.Tensor, scale: float) -> torch.Tensor:
    """A uint8 or float (3, H, W) image resized by `scale` (bilinear, antialiased when shrinking), as float."""
    h, w = image.shape[-2:]
    size = resized_size(h, w, scale)
    x = image.float()[None]
    if size == (h, w):
        return x[0]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)[0]


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Boxes of an image of `width` pixels after a horizontal flip."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
