"""The test views of Sec. 3.4: their shapes and geometry on images of known content."""

import pytest
import torch
import torch.nn.functional as F

from resnets.core.errors import UserError
from resnets.evaluation.views import VIEWS, make_view, multiscale, resize_shorter, ten_crop


def ramp(h: int, w: int) -> torch.Tensor:
    """A uint8 image [3, h, w] whose pixels differ, so any misplaced crop shows."""
    values = torch.arange(3 * h * w) % 251
    return values.reshape(3, h, w).to(torch.uint8)


@pytest.mark.parametrize("h, w, side, expected", [(30, 40, 24, (24, 32)), (40, 30, 24, (32, 24)), (7, 10, 5, (5, 7))])
def test_resize_keeps_the_aspect_ratio_with_the_longer_side_rounded(h, w, side, expected):
    image = ramp(h, w)
    resized = resize_shorter(image, side)
    assert tuple(resized.shape) == (3, *expected) and resized.dtype == torch.uint8
    reference = F.interpolate(image[None].float(), size=expected, mode="bilinear", antialias=True, align_corners=False)
    assert (resized.float() - reference[0]).abs().max() <= 1  # uint8 rounding only
    assert resize_shorter(image, min(h, w)) is image  # already that size: untouched


def test_a_half_pixel_rounds_up_as_in_training():
    # 5 * 2 / 4 = 2.5: round() would give 2 (to even), training's scale augmentation gives 3.
    assert tuple(resize_shorter(ramp(4, 5), 2).shape) == (3, 2, 3)
    assert tuple(resize_shorter(ramp(5, 4), 2).shape) == (3, 3, 2)


def test_full_is_the_image_itself():
    image = ramp(32, 32)
    (stack,) = make_view("full")(image)
    assert torch.equal(stack, image[None])


def test_ten_crop_is_the_corners_and_centre_of_the_resize_and_their_flips():
    image = ramp(40, 60)
    (stack,) = ten_crop(image, resize=20, crop=16)
    resized = resize_shorter(image, 20)  # 20 x 30
    assert tuple(resized.shape) == (3, 20, 30) and tuple(stack.shape) == (10, 3, 16, 16)
    expected = [resized[:, :16, :16], resized[:, :16, 14:], resized[:, 4:, :16], resized[:, 4:, 14:]]
    expected.append(resized[:, 2:18, 7:23])  # the centre
    for i, crop in enumerate(expected):
        assert torch.equal(stack[i], crop), f"crop {i}"
        assert torch.equal(stack[5 + i], crop.flip(-1)), f"flip of crop {i}"


def test_center_is_the_central_crop_of_ten_crop():
    image = ramp(50, 35)
    (center,) = make_view("center", resize=24, crop=20)(image)
    (ten,) = make_view("10crop", resize=24, crop=20)(image)
    assert tuple(center.shape) == (1, 3, 20, 20) and torch.equal(center[0], ten[4])


def test_paper_defaults_give_224_crops_of_the_256_resize():
    image = ramp(375, 500)
    (center,) = make_view("center")(image)
    (ten,) = make_view("10crop")(image)
    assert tuple(center.shape) == (1, 3, 224, 224) and tuple(ten.shape) == (10, 3, 224, 224)
    resized = resize_shorter(image, 256)  # 256 x 341
    assert torch.equal(center[0], resized[:, 16:240, 58:282])


def test_multiscale_is_the_whole_image_at_each_shorter_side_with_its_flip():
    image = ramp(30, 45)
    stacks = multiscale(image, scales=(10, 20, 30))
    assert [tuple(s.shape) for s in stacks] == [(2, 3, 10, 15), (2, 3, 20, 30), (2, 3, 30, 45)]
    for side, stack in zip((10, 20, 30), stacks):
        assert torch.equal(stack[0], resize_shorter(image, side)) and torch.equal(stack[1], stack[0].flip(-1))
    default = make_view("multiscale")(ramp(6, 8))
    assert [min(s.shape[-2:]) for s in default] == [224, 256, 384, 480, 640]
    assert [len(s) for s in multiscale(image, scales=(10,), flip=False)] == [1]


@pytest.mark.parametrize("name", list(VIEWS))
def test_a_batch_of_images_gives_each_image_its_own_views(name):
    view = make_view(name, resize=20, crop=16, scales=(12, 20))
    batch = torch.stack([ramp(24, 30), ramp(24, 30).flip(-2)])
    for got, first, second in zip(view(batch), view(batch[0]), view(batch[1])):
        assert torch.equal(got, torch.stack([first, second]))


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("5crop", {}, "unknown view '5crop'"),
        ("center", dict(resize=200, crop=224), "crop 224 must be"),
        ("10crop", dict(crop=0), "crop 0 must be"),
        ("multiscale", dict(scales=(224, 0)), "scales 224,0 must be"),
        ("multiscale", dict(scales=()), "--scales is empty"),
        ("multiscale", dict(scales=(1,)), "--scales 1 must be between 8 and 4096 pixels"),
        ("center", dict(resize=1, crop=1), "--crop 1 must be between 8 and 4096 pixels"),
        ("10crop", dict(resize=100000), "--resize 100000 must be between 8 and 4096 pixels"),
    ],
)
def test_bad_views_and_parameters_are_user_errors(name, options, message):
    with pytest.raises(UserError, match=message):
        make_view(name, **options)
