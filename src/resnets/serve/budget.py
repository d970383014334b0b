"""A count of decoded pixels that requests take before decoding and give back once answered, so that the images in
memory at once never exceed it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PixelBudget:
    """`capacity` pixels shared by all requests; a request waits until its pixels are free, in arrival order."""

    def __init__(self, capacity: int):
        self.capacity, self.free = capacity, capacity
        self.changed = asyncio.Condition()
        self.turn = asyncio.Lock()  # FIFO: a large request is not starved by a stream of small ones behind it

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Take `pixels` (at most `capacity`) for the block, waiting for them first."""
        if pixels > self.capacity:
            raise ValueError(f"{pixels} pixels can never fit a budget of {self.capacity}")
        async with self.turn, self.changed:
            await self.changed.wait_for(lambda: self.free >= pixels)
            self.free -= pixels
        try:
            yield
        finally:
            async with self.changed:
                self.free += pixels
                self.changed.notify_all()
