from __future__ import annotations

import re

import pytest
import torch

from resnets.core.errors import UserError
from resnets.data import lighting, scale_crop_flip
from resnets.data.scale_augment import (
    IMAGENET_EIGENVALUES,
    IMAGENET_EIGENVECTORS,
    check_scale,
    resize,
    shorter_side_size,
)

ALMOST_ONE = 1 - 2**-24  # the largest float32 below 1, the top of torch.rand's range


def noise(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def uniforms(*u: float) -> torch.Tensor:
    return torch.tensor(u, dtype=torch.float32)


def test_output_is_a_uint8_crop_of_the_paper_size() -> None:
    out = scale_crop_flip(noise(100, 150), torch.rand(4, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8


def test_smallest_scale_resizes_the_shorter_side_to_256_keeping_the_aspect_ratio() -> None:
    image = noise(200, 300)  # H x W: the shorter side is the height
    resized = resize(image, (256, 384))
    top_left = scale_crop_flip(image, uniforms(0, 0, 0, 0.5))
    bottom_right = scale_crop_flip(image, uniforms(0, ALMOST_ONE, ALMOST_ONE, 0.5))
    assert torch.equal(top_left, resized[:, :224, :224])
    assert torch.equal(bottom_right, resized[:, 256 - 224 :, 384 - 224 :])


def test_largest_scale_is_480_and_a_tall_image_keeps_its_width_shorter() -> None:
    image = noise(90, 60)
    out = scale_crop_flip(image, uniforms(ALMOST_ONE, ALMOST_ONE, 0, 0.5))
    assert torch.equal(out, resize(image, (720, 480))[:, 720 - 224 :, :224])
    assert not torch.equal(out, resize(image, (718, 479))[:, 718 - 224 :, :224])


@pytest.mark.parametrize(("u0", "side"), [(0.1, 278), (0.5, 368), (0.999, 480)])
def test_scale_is_256_plus_the_integer_part_of_u0_times_225(u0: float, side: int) -> None:
    image = noise(16, 16)
    out = scale_crop_flip(image, uniforms(u0, 0, 0, 0.5))
    assert torch.equal(out, resize(image, (side, side))[:, :224, :224])
    assert not torch.equal(out, resize(image, (side - 1, side - 1))[:, :224, :224])


@pytest.mark.parametrize(
    ("h", "w", "shorter", "size"), [(4, 5, 2, (2, 3)), (512, 513, 256, (256, 257)), (7, 4, 4, (7, 4))]
)
def test_the_longer_side_rounds_halves_up(h: int, w: int, shorter: int, size: tuple[int, int]) -> None:
    assert shorter_side_size(h, w, shorter) == size
    image = noise(h, w)
    out = scale_crop_flip(image, uniforms(0, 0, 0, 0.5), scale_range=(shorter, shorter), crop=min(size))
    assert torch.equal(out, resize(image, size)[:, : min(size), : min(size)])


def test_flip_is_taken_below_one_half_and_can_be_turned_off() -> None:
    image = noise(64, 80)
    plain = scale_crop_flip(image, uniforms(0.3, 0.6, 0.2, 0.5))
    flipped = scale_crop_flip(image, uniforms(0.3, 0.6, 0.2, 0.49))
    assert torch.equal(flipped, plain.flip(2)) and not torch.equal(flipped, plain)
    assert torch.equal(scale_crop_flip(image, uniforms(0.3, 0.6, 0.2, 0.1), flip=False), plain)


def test_same_uniforms_give_the_same_crop_and_others_differ() -> None:
    image = noise(120, 100)
    u = torch.rand(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(scale_crop_flip(image, u), scale_crop_flip(image, u.clone()))
    assert not torch.equal(scale_crop_flip(image, u), scale_crop_flip(image, (u + 0.25) % 1))


@pytest.mark.parametrize("scale_range", [(200, 480), (300, 256), (256,), (256, 300, 480)])
def test_scale_range_must_hold_the_crop_and_be_ordered(scale_range: tuple[int, ...]) -> None:
    shown = ",".join(map(str, scale_range))
    with pytest.raises(UserError, match=re.escape(f"scale_range {shown} must be two shorter sides")):
        check_scale(scale_range, 224)
    with pytest.raises(UserError, match=re.escape(f"--scale-range {shown} must be") + ".*--crop-size 224 <="):
        check_scale(scale_range, 224, names=("--scale-range", "--crop-size"))
    check_scale((224, 480), 224)


def test_lighting_adds_one_rgb_shift_per_image_along_the_eigenvectors_scaled_by_the_eigenvalues() -> None:
    x = torch.rand(2000, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = lighting(x, torch.randn(len(x), 3, generator=torch.Generator().manual_seed(1)))
    shift = out - x
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))  # the same at every pixel of an image
    vectors, values = torch.tensor(IMAGENET_EIGENVECTORS), torch.tensor(IMAGENET_EIGENVALUES)
    alpha = torch.linalg.solve(vectors, shift[:, :, 0, 0].T).T / values  # shift = vectors @ (alpha * values)
    assert torch.allclose(alpha.std(0), torch.full((3,), 0.1), rtol=0.1)  # alpha ~ N(0, 0.1), each component
    assert alpha.mean(0).abs().max() < 0.01
    assert alpha.T.corrcoef().sub(torch.eye(3)).abs().max() < 0.1  # drawn independently


def test_lighting_with_std_zero_is_the_identity_and_the_noise_fixes_the_shift() -> None:
    x = torch.rand(4, 3, 5, 5)
    noise = torch.randn(len(x), 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lighting(x, noise, std=0), x)
    assert torch.equal(lighting(x, noise), lighting(x, noise.clone()))
    assert not torch.equal(lighting(x, noise), lighting(x, noise.flip(0)))
