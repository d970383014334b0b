"""Every view's tensors are bounded by the image's shape after the resize, not only by its decoded pixels; the full
view fits an image of another size to a network that takes one input size."""

from __future__ import annotations

import pytest
import torch

from resnets.evaluation.views import MAX_ASPECT, MAX_VIEW_PIXELS, make_view, resized_sizes, view_refusal


@pytest.mark.parametrize("view", ["full", "center", "10crop", "multiscale"])
@pytest.mark.parametrize("h, w", [(1, 100_000), (100_000, 1), (10, 10 * MAX_ASPECT + 1)])
def test_a_strip_is_refused_before_any_resize(view, h, w):
    assert "times as long as it is wide" in view_refusal(make_view(view), h, w)


@pytest.mark.parametrize(
    "view, h, w, resized",
    [
        ("center", 300, 6000, None),  # 256x5120 before its 224 crop: within the bound
        ("multiscale", 300, 4000, (640, 8533)),
        ("full", 2100, 2100, (2100, 2100)),  # no resize: the image itself
    ],
)
def test_the_bound_is_on_the_size_after_the_resize(view, h, w, resized):
    reason = view_refusal(make_view(view), h, w)
    if resized is None:
        assert reason is None
    else:
        assert f"{resized[1]}x{resized[0]}" in reason and str(MAX_VIEW_PIXELS) in reason
        assert max(s[0] * s[1] for s in resized_sizes(make_view(view), h, w)) > MAX_VIEW_PIXELS


def test_photos_of_ordinary_shapes_pass_every_view():
    for view in ("full", "center", "10crop", "multiscale"):
        for h, w in ((32, 32), (375, 500), (1080, 1920), (500, 2000)):
            assert view_refusal(make_view(view), h, w) is None


def test_the_full_view_fits_other_sizes_to_a_fixed_input():
    view = make_view("full", size=(32, 32))
    photo = torch.randint(0, 256, (2, 3, 224, 300), dtype=torch.uint8)
    (stack,) = view(photo)
    assert stack.shape == (2, 1, 3, 32, 32)
    torch.testing.assert_close(stack, make_view("center", resize=32, crop=32)(photo)[0])
    assert view_refusal(view, 4000, 4000) is None  # resized to 32x32 first, so a large photo is fine
    same = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert view(same)[0].squeeze(0).data_ptr() == same.data_ptr()  # the model's own size: as it is
