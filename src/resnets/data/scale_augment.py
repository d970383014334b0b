"""The paper's ImageNet training augmentation (Sec. 3.4): scale augmentation, 224 crops, flips, PCA lighting."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.errors import UserError

# ImageNet's RGB pixel covariance, for pixel values in [0, 1] (AlexNet, Krizhevsky et al. 2012, Sec. 4.1):
# eigenvalues, and the eigenvectors as the columns of a 3x3 matrix.
IMAGENET_EIGENVALUES = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def scale_crop_flip(
    image: torch.Tensor,
    u: torch.Tensor,
    scale_range: tuple[int, int] = (256, 480),
    crop: int = 224,
    flip: bool = True,
) -> torch.Tensor:
    """Sec. 3.4's scale augmentation of one uint8 image [3, H, W] to a uint8 crop [3, crop, crop], driven by `u`.

    The shorter side is resized to a random length in `scale_range`, a `crop` x `crop` window is taken at a random
    place and flipped with probability 1/2.
    The four uniforms in [0, 1) of `u` pick the length, the crop's row and column, and the flip, so the randomness
    can be drawn elsewhere (the loader's main process) and replayed. flip=False leaves u[3] unused.
    The range must pass `check_scale`, which the loader checks once rather than per image.
    """
    low, high = scale_range
    u0, u1, u2, u3 = (float(v) for v in u)
    shorter = min(low + math.floor(u0 * (high - low + 1)), high)  # a uniform integer in [low, high]
    size = shorter_side_size(image.shape[1], image.shape[2], shorter)
    resized = resize(image, size)
    y = min(math.floor(u1 * (size[0] - crop + 1)), size[0] - crop)
    x = min(math.floor(u2 * (size[1] - crop + 1)), size[1] - crop)
    out = resized[:, y : y + crop, x : x + crop]
    return out.flip(2) if flip and u3 < 0.5 else out


def shorter_side_size(h: int, w: int, shorter: int) -> tuple[int, int]:
    """The (height, width) that makes the shorter side of an h x w image `shorter`, keeping the aspect ratio.

    The longer side is rounded to the nearest pixel, halves up (floor(x + 0.5)); Python's round() would send
    halves to the even side, so a 512 x 333 photo at 256 would become 256 x 166 rather than 256 x 167.
    Training's scale augmentation and the test views both size images here, so they agree.
    """
    if h <= w:
        return shorter, math.floor(w * shorter / h + 0.5)
    return math.floor(h * shorter / w + 0.5), shorter


def check_scale(scale_range: tuple[int, ...], crop: int, names: tuple[str, str] = ("scale_range", "crop")) -> None:
    """A UserError unless scale_range is (low, high) with crop <= low <= high: every scale must hold a crop.

    The one rule for the range; `names` are the caller's words for the two values (the CLI's flags).
    """
    low, high = (tuple(scale_range) + (0, 0))[:2]
    if len(scale_range) != 2 or not 0 < crop <= low <= high:
        shown = ",".join(map(str, scale_range))
        raise UserError(f"{names[0]} {shown} must be two shorter sides LOW,HIGH with {names[1]} {crop} <= LOW <= HIGH")


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 [3, H, W] to `size` (height, width), rounded back to uint8."""
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def lighting(
    images: torch.Tensor,
    noise: torch.Tensor,
    std: float = 0.1,
    eigenvalues: tuple[float, ...] = IMAGENET_EIGENVALUES,
    eigenvectors: tuple[tuple[float, ...], ...] = IMAGENET_EIGENVECTORS,
) -> torch.Tensor:
    """AlexNet's PCA colour augmentation of float images [N, 3, H, W] in [0, 1] scale (mean-subtracted or not).

    Each image gets one RGB shift, eigenvectors @ (alpha * eigenvalues) with alpha = std x `noise`, where `noise`
    [N, 3] holds standard normal draws, one row per image (the caller draws them, so that a rank can take its
    share of the global batch's draws).
    """
    alpha = noise.to(images.device) * std
    values = torch.tensor(eigenvalues, dtype=images.dtype, device=images.device)
    vectors = torch.tensor(eigenvectors, dtype=images.dtype, device=images.device)
    shift = (alpha.to(images.dtype) * values) @ vectors.T  # row n: vectors @ (alpha[n] * values)
    return images + shift[:, :, None, None]
