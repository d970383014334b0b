"""The Batcher on its own (no server): concurrent requests share batches, and a failure stays in its request."""

from __future__ import annotations

import asyncio

import pytest
import torch

from resnets.core.errors import UserError
from resnets.serve.batching import Batcher
from resnets.serve.budget import PixelBudget

BAD = 7  # the image value the fake network refuses


def fake_predict(calls: list[int]):
    """Each image's first pixel as its 'prediction'; a batch holding a BAD image fails as a whole, as a real one
    does when one of its images breaks the forward pass."""

    def predict(images: list[torch.Tensor]) -> list[int]:
        calls.append(len(images))
        values = [int(image.flatten()[0]) for image in images]
        if BAD in values:
            raise UserError(f"image {BAD} is bad")
        return values

    return predict


async def serve_all(batcher: Batcher, requests: list[list[int]]) -> list:
    """Submit every request at once (each a list of image values); each one's results (an exception for a failure)."""
    batcher.start()
    try:
        images = [[torch.full((3, 2, 2), v) for v in values] for values in requests]
        return await asyncio.gather(*(batcher.submit(r) for r in images))
    finally:
        await batcher.stop()


def test_one_bad_image_fails_only_its_own_request():
    calls: list[int] = []
    requests = [[1], [2, 3], [BAD], [4], [5, BAD], [6]]
    answers = asyncio.run(serve_all(Batcher(fake_predict(calls), 32, 0.05), requests))
    assert answers[0] == [1] and answers[1] == [2, 3] and answers[3] == [4] and answers[5] == [6]
    assert isinstance(answers[2][0], UserError) and answers[4][0] == 5 and isinstance(answers[4][1], UserError)
    assert calls[0] == 8  # all arrived within the wait: one batch, which failed, then each image alone


def test_good_batches_are_shared():
    calls: list[int] = []
    answers = asyncio.run(serve_all(Batcher(fake_predict(calls), 4, 0.05), [[1], [2], [3, 4, 5], [6]]))
    assert answers == [[1], [2], [3, 4, 5], [6]]
    assert calls == [4, 2]


@pytest.mark.parametrize("max_batch", [1, 2])
def test_small_batches_keep_the_order(max_batch):
    answers = asyncio.run(serve_all(Batcher(fake_predict([]), max_batch, 0.0), [[1, 2, 3], [4]]))
    assert answers == [[1, 2, 3], [4]]


def test_the_pixel_budget_holds_requests_until_their_pixels_are_free():
    async def run() -> list[str]:
        budget, events = PixelBudget(100), []

        async def request(name: str, pixels: int, seconds: float) -> None:
            async with budget.hold(pixels):
                events.append(f"+{name}")
                assert budget.free >= 0
                await asyncio.sleep(seconds)
                events.append(f"-{name}")

        await asyncio.gather(request("a", 60, 0.05), request("big", 100, 0), request("c", 10, 0))
        with pytest.raises(ValueError):
            async with budget.hold(101):
                pass
        assert budget.free == 100
        return events

    # "big" waits until "a" has given its pixels back; "c", behind it, waits its turn although it would fit
    assert asyncio.run(run()) == ["+a", "-a", "+big", "-big", "+c", "-c"]
