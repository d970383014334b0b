"""The test views of the paper (Sec. 3.4, "Testing"): what the network sees of one test image.

A view maps uint8 images [..., 3, H, W] (one image, or a batch of equal-sized ones) to a list of uint8 crop stacks
[..., K, 3, h, w]; the network's softmax scores are averaged over every crop of every stack. Stacks differ only in
size (the scales of `multiscale`); the crops within a stack are batched together.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ..core.errors import UserError
from ..data.scale_augment import shorter_side_size

View = Callable[[torch.Tensor], list[torch.Tensor]]

RESIZE = 256  # shorter side before cropping: the low end of the training scales [256, 480] (Sec. 3.4)
CROP = 224  # the network's training input size
SCALES = (224, 256, 384, 480, 640)  # shorter sides of the fully-convolutional test (Sec. 3.4)
# Sides a view may have: below 8 pixels a network's stages pool nothing left; above 4096 one image's crops take
# gigabytes (a shorter side of 100000 would ask for 10^10 pixels).
MIN_SIDE, MAX_SIDE = 8, 4096
# Images a view takes: at most MAX_ASPECT times as long as wide (a 100000x1 strip resized to a 256-pixel shorter side
# would be 25600000x256), and at most MAX_VIEW_PIXELS once resized (a 640-pixel shorter side at 10:1 fits), so one
# image's crops and activations stay within a few GB whatever the file.
MAX_ASPECT = 20
MAX_VIEW_PIXELS = 2**22
FLAGS_OF = {"--crop": ("center", "10crop"), "--resize": ("center", "10crop"), "--scales": ("multiscale",)}


def resize_shorter(images: torch.Tensor, side: int) -> torch.Tensor:
    """Resize so the shorter side is `side` pixels, keeping the aspect ratio (data.scale_augment.shorter_side_size).

    Bilinear with antialiasing, so downscaling averages over the source pixels as a photo resize does.
    """
    h, w = images.shape[-2:]
    size = shorter_side_size(h, w, side)
    if size == (h, w):
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    out = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*images.shape[:-2], *size)


def _crop(images: torch.Tensor, top: int, left: int, crop: int) -> torch.Tensor:
    return images[..., top : top + crop, left : left + crop]


def full(images: torch.Tensor, size: tuple[int, int] | None = None) -> list[torch.Tensor]:
    """The image as it is: CIFAR's single 32x32 view (Sec. 4.2). With `size` (a network that takes one input size),
    an image of another size is resized to it: its shorter side to the larger of `size`, then the central crop."""
    if size is None or tuple(images.shape[-2:]) == tuple(size):
        return [images.unsqueeze(-4)]
    resized = resize_shorter(images, max(size))
    h, w = resized.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return [resized[..., top : top + size[0], left : left + size[1]].unsqueeze(-4)]


def center(images: torch.Tensor, resize: int = RESIZE, crop: int = CROP) -> list[torch.Tensor]:
    """Shorter side resized to `resize`, then the central `crop` x `crop` square (the common single-crop test)."""
    resized = resize_shorter(images, resize)
    h, w = resized.shape[-2:]
    return [_crop(resized, (h - crop) // 2, (w - crop) // 2, crop).unsqueeze(-4)]


def ten_crop(images: torch.Tensor, resize: int = RESIZE, crop: int = CROP) -> list[torch.Tensor]:
    """The four corner and the central crops of the `resize` image, and their horizontal flips (AlexNet's 10-crop)."""
    resized = resize_shorter(images, resize)
    h, w = resized.shape[-2:]
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), ((h - crop) // 2, (w - crop) // 2)]
    crops = torch.stack([_crop(resized, top, left, crop) for top, left in corners], dim=-4)
    return [torch.cat([crops, crops.flip(-1)], dim=-4)]


def multiscale(images: torch.Tensor, scales: tuple[int, ...] = SCALES, flip: bool = True) -> list[torch.Tensor]:
    """The whole image at every shorter side in `scales`, and its horizontal flip: one stack per scale.

    The network ends in a global average pool, so an image of any size gives one score vector: this is the
    paper's fully-convolutional test, its scores averaged over scales (and flips).
    """
    stacks = []
    for side in scales:
        resized = resize_shorter(images, side).unsqueeze(-4)
        stacks.append(torch.cat([resized, resized.flip(-1)], dim=-4) if flip else resized)
    return stacks


VIEWS: dict[str, Callable[..., list[torch.Tensor]]] = {
    "full": full,
    "center": center,
    "10crop": ten_crop,
    "multiscale": multiscale,
}


def make_view(
    name: str,
    *,
    resize: int = RESIZE,
    crop: int = CROP,
    scales: tuple[int, ...] = SCALES,
    size: tuple[int, int] | None = None,
) -> View:
    """The view `name` with the parameters it takes bound (`size`: the full view's fixed input size, see `full`); a
    bad name or parameter is a UserError."""
    if name not in VIEWS:
        raise UserError(f"unknown view {name!r}; choose from {', '.join(VIEWS)}")
    if not 0 < crop <= resize:
        raise UserError(f"--crop {crop} must be a positive number of pixels no larger than --resize {resize}")
    sides = {"--crop": [crop], "--resize": [resize], "--scales": list(scales)}
    for flag, values in sides.items():
        if flag == "--scales" and not values:
            raise UserError("--scales is empty; pass shorter sides such as 224,256,384")
        if name in FLAGS_OF.get(flag, (name,)) and not all(MIN_SIDE <= v <= MAX_SIDE for v in values):
            shown = ",".join(map(str, values))
            raise UserError(f"{flag} {shown} must be between {MIN_SIDE} and {MAX_SIDE} pixels, e.g. 224,256,384")
    function = VIEWS[name]
    options = {"resize": resize, "crop": crop, "scales": tuple(scales), "size": size}
    return partial(function, **{k: v for k, v in options.items() if k in inspect.signature(function).parameters})


def resized_sizes(view: View, h: int, w: int) -> list[tuple[int, int]]:
    """The (height, width) each resize of `view` gives an h x w image (the image's own size if it resizes none)."""
    options = getattr(view, "keywords", {})  # a view of make_view: a partial with its parameters
    size = options.get("size")
    sides = options.get("scales") or [options.get("resize") or (max(size) if size and size != (h, w) else None)]
    return [shorter_side_size(h, w, side) if side else (h, w) for side in sides]


def view_refusal(view: View, h: int, w: int) -> str | None:
    """Why `view` does not take an h x w image, in one line (its shape or size past the bounds above), or None."""
    if max(h, w) > MAX_ASPECT * min(h, w):
        return f"{w}x{h} pixels is more than {MAX_ASPECT} times as long as it is wide"
    rh, rw = max(resized_sizes(view, h, w), key=lambda hw: hw[0] * hw[1])
    if rh * rw > MAX_VIEW_PIXELS:
        resized = f", resized for the view to {rw}x{rh}," if (rh, rw) != (h, w) else ""
        return f"{w}x{h} pixels{resized} is more than the {MAX_VIEW_PIXELS} pixels a view takes; use a smaller image"
    return None
