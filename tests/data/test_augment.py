from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnets.core.errors import UserError
from resnets.data import normalize, pixel_mean, random_crop_flip


def noise(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def find_window(image: torch.Tensor, out: torch.Tensor, padding: int) -> list[tuple[int, int, bool]]:
    """Reference, one image at a time: every (y, x, flipped) whose window of the zero-padded image equals `out`."""
    padded = F.pad(image, (padding,) * 4)
    h, w = image.shape[1:]
    return [
        (y, x, flip)
        for y in range(2 * padding + 1)
        for x in range(2 * padding + 1)
        for flip in (False, True)
        if torch.equal(padded[:, y : y + h, x : x + w].flip(2) if flip else padded[:, y : y + h, x : x + w], out)
    ]


def test_every_output_is_a_shifted_possibly_flipped_window_of_the_padded_input() -> None:
    images = noise(256)
    out = random_crop_flip(images, 4, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    found = [find_window(images[i], out[i], 4) for i in range(len(images))]
    assert all(len(f) == 1 for f in found)  # noise images: exactly one window matches
    ys, xs, flips = zip(*(f[0] for f in found))
    assert set(ys) == set(xs) == set(range(9))  # the offsets cover [0, 2 * padding]
    assert len(set(zip(ys, xs))) > 60  # drawn independently: most of the 81 (y, x) pairs occur
    assert 0.35 < sum(flips) / len(flips) < 0.65  # both flips occur, about half each


def test_same_generator_seed_gives_the_same_batch() -> None:
    images = noise(64)
    a = random_crop_flip(images, generator=torch.Generator().manual_seed(7))
    b = random_crop_flip(images, generator=torch.Generator().manual_seed(7))
    c = random_crop_flip(images, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_input_is_left_unchanged() -> None:
    images = noise(8)
    copy = images.clone()
    random_crop_flip(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, copy)


def test_padding_zero_only_flips() -> None:
    images = noise(32)
    out = random_crop_flip(images, 0, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    assert all(f or torch.equal(o, i) for f, o, i in zip(flipped, out, images))
    assert 0 < sum(flipped) < len(images)


def test_flip_false_gives_the_same_crops_unflipped() -> None:
    images = noise(64)
    flipped = random_crop_flip(images, generator=torch.Generator().manual_seed(3))
    plain = random_crop_flip(images, generator=torch.Generator().manual_seed(3), flip=False)
    same = [torch.equal(p, f) for p, f in zip(plain, flipped)]
    assert all(s or torch.equal(p.flip(2), f) for s, p, f in zip(same, plain, flipped))
    assert 0 < sum(same) < len(images)


def test_negative_padding_is_an_error() -> None:
    with pytest.raises(UserError, match="padding -1"):
        random_crop_flip(noise(1), -1)


def test_pixel_mean_is_the_per_pixel_mean_in_unit_range_whatever_the_chunking() -> None:
    images = noise(10, size=4)
    expected = images.double().mean(0) / 255
    for batch in (3, 4096):
        mean = pixel_mean(images, batch=batch)
        assert mean.dtype == torch.float32 and mean.shape == (3, 4, 4)
        torch.testing.assert_close(mean, expected.float(), rtol=0, atol=1e-7)


def test_pixel_mean_of_white_images_is_one() -> None:
    assert torch.equal(pixel_mean(torch.full((5, 3, 2, 2), 255, dtype=torch.uint8), batch=2), torch.ones(3, 2, 2))


def test_normalize_scales_to_unit_range_and_subtracts_the_mean_only() -> None:
    images = noise(4, size=4)
    mean = pixel_mean(images)
    out = normalize(images, mean)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, images.float() / 255 - mean)
    torch.testing.assert_close(out.mean(0), torch.zeros(3, 4, 4), rtol=0, atol=1e-6)


def test_normalize_takes_a_per_channel_mean_and_divides_by_std() -> None:
    images = noise(2, size=5)
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)
    torch.testing.assert_close(normalize(images, mean), images.float() / 255 - mean)
    torch.testing.assert_close(normalize(images, mean, std), (images.float() / 255 - mean) / std)


def test_normalize_resizes_a_per_pixel_mean_to_the_image_size() -> None:
    images = noise(2, size=6)
    mean = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))
    resized = F.interpolate(mean[None], size=(6, 6), mode="bilinear", align_corners=False)[0]
    out = normalize(images, mean)
    assert out.shape == (2, 3, 6, 6)
    torch.testing.assert_close(out, images.float() / 255 - resized)
    flat = torch.full((3, 4, 4), 0.25)  # a constant map stays constant at any size
    torch.testing.assert_close(normalize(images, flat), images.float() / 255 - 0.25)
