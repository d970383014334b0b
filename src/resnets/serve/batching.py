"""Dynamic batching: images of requests that arrive together go through the network as one batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class BatchStats:
    """How the images were batched: forward batches run, images in them, and the largest batch."""

    batches: int = 0
    images: int = 0
    largest: int = 0


class Batcher:
    """Queues images from concurrent requests; one task takes what waits (up to `max_batch`, waiting `wait_s` after
    the first for more) and runs `predict` on it in a worker thread, so the event loop keeps accepting requests."""

    def __init__(self, predict: Callable[[list[torch.Tensor]], Iterable[Any]], max_batch: int, wait_s: float):
        self.predict, self.max_batch, self.wait_s = predict, max_batch, wait_s
        self.stats = BatchStats()
        self.queue: asyncio.Queue[tuple[torch.Tensor, asyncio.Future]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="predict")  # torch parallelises each batch itself
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the batching task and let the running batch finish."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, images: list[torch.Tensor]) -> list[Any]:
        """The predictions of `images`, in order, computed in batches with other requests' images; in the place of an
        image whose prediction failed, its exception."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in images]
        for image, future in zip(images, futures):
            self.queue.put_nowait((image, future))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _run(self) -> None:
        while True:
            await self._answer(await self._take())

    async def _take(self) -> list[tuple[torch.Tensor, asyncio.Future]]:
        """The next batch: the first waiting image, then up to `max_batch` in all that arrive within `wait_s`."""
        loop = asyncio.get_running_loop()
        items = [await self.queue.get()]
        deadline = loop.time() + self.wait_s
        while len(items) < self.max_batch:
            if not self.queue.empty():
                items.append(self.queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return items

    async def _answer(self, items: list[tuple[torch.Tensor, asyncio.Future]]) -> None:
        """Predict `items` as one batch; if that fails, each alone, so that only an image at fault fails its request."""
        items = [(image, future) for image, future in items if not future.done()]  # a client that went away
        if not items:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.predict, [image for image, _ in items])
        except Exception as e:
            if len(items) > 1:
                for item in items:
                    await self._answer([item])
            elif not items[0][1].done():
                items[0][1].set_exception(e)
            return
        self.stats.batches += 1
        self.stats.images += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        for (_, future), result in zip(items, results):
            if not future.done():  # a request whose client went away is cancelled
                future.set_result(result)
