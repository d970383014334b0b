"""Top-1 and top-5 error of a model or an ensemble under several test views, in one pass over the images.

Each image is decoded once and cut into the crops of every view (Sec. 3.4, "Testing"), in DataLoader worker
processes; crops of one size are batched together through every model. An image's score under a view is the
softmax averaged over its crops and over the models (an ensemble, Table 5); its label is the highest score.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..core.errors import UserError
from ..core.runtime import autocast
from ..data.augment import normalize
from ..data.loader import init_worker
from .views import CROP, RESIZE, View, make_view

# A view's crops of some images: view name, owners [n] (each crop's position in the evaluated list), crops [n,3,h,w].
Piece = tuple[str, torch.Tensor, torch.Tensor]
IMAGES_PER_ITEM = 8  # images a worker decodes per item (image-by-image sources): fewer, larger transfers
PENDING_BATCHES = 8  # crops waiting for a full batch of their size hold at most this many batches' pixels


class ImageSource(Protocol):
    """Test images one by one: ImageSet (in memory) and ImageFiles (decoded on demand) both are."""

    labels: torch.Tensor

    def __len__(self) -> int: ...

    def image(self, i: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class Member:
    """One network of an ensemble with its input normalisation: a per-pixel or per-channel mean, and a std or None."""

    model: nn.Module
    mean: torch.Tensor
    std: torch.Tensor | None = None


@dataclass(frozen=True)
class ViewResult:
    """One view's errors in percent, its image count and its forward seconds."""

    top1_error: float
    top5_error: float
    images: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        """The JSON fields of `resnets evaluate`: errors, images and seconds."""
        return asdict(self)


@dataclass(frozen=True)
class Evaluation:
    """Every view's result; `data_seconds`: the time the pass waited for decoding and cropping (shared by the views).

    `scores`: per view, each image's softmax averaged over its crops and the models [images, classes].
    """

    views: dict[str, ViewResult]
    images: int
    data_seconds: float
    seconds: float
    scores: dict[str, torch.Tensor]


def evaluation_positions(count: int, limit: int | None) -> torch.Tensor:
    """The images a `limit` evaluates: `limit` positions evenly spread over the split, always the same ones.

    Fixed, so every model, view and rerun sees the same images and results compare; spread out, since image-folder
    splits are sorted by class and their first N images would cover only the first classes.
    `limit` is None or at least 1: evaluate_protocol checks the user's --limit once, before any data is decoded.
    """
    n = count if limit is None else min(limit, count)
    return torch.arange(n) * count // max(n, 1)


@torch.no_grad()
def evaluate_views(
    members: Sequence[Member],
    source: ImageSource,
    views: Mapping[str, View],
    *,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 256,
    crop_pixels: int = 224 * 224,
    workers: int = 0,
    limit: int | None = None,
    channels_last: bool = True,
    progress: bool = False,
    warn_non_finite: bool = True,
) -> Evaluation:
    """Evaluate the ensemble `members` on `source` under every view of `views` (name -> view), decoding each image once.

    A forward batch holds at most `batch_size` crops and `batch_size * crop_pixels` pixels (the bound that counts
    for the large scales of multi-scale testing). `workers` DataLoader processes decode and crop (0: this process).
    `warn_non_finite`: warn once if a model's outputs are NaN or infinite (False: the caller says so itself).
    """
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size} must be a positive number of crops")
    if not members or not views:
        raise ValueError("evaluate_views needs at least one model and one view")
    start = time.perf_counter()
    positions = evaluation_positions(len(source), limit)
    labels = source.labels[positions].to(device)
    scores = _Scores(len(positions), views, device)
    scores.warned = not warn_non_finite
    models = [_Prepared(m, device) for m in members]
    batches = _Batcher(batch_size, batch_size * crop_pixels)
    items = _items(_ViewItems(source, views, positions, batch_size), workers)
    bar = tqdm(total=len(positions), unit="image", desc="evaluate", disable=not progress, leave=False)
    data_seconds = 0.0
    try:
        for m in models:
            m.model.eval()
        while True:
            waited = time.perf_counter()
            item = next(items, None)
            data_seconds += time.perf_counter() - waited
            if item is None:
                break
            if isinstance(item, UserError):  # raised in a worker; re-raised here as the one-line error it is
                raise item
            pieces, done = item
            for piece in pieces:
                for batch in batches.add(*piece):
                    scores.add(batch, models, precision, channels_last)
            bar.update(done)
        for batch in batches.drain():
            scores.add(batch, models, precision, channels_last)
    finally:
        bar.close()
        for m in models:
            m.model.train(m.was_training)
    results = {name: scores.result(name, labels) for name in views}
    averaged = {name: scores.averaged(name) for name in views}
    return Evaluation(results, len(positions), data_seconds, time.perf_counter() - start, averaged)


def validation_error(
    model: nn.Module,
    source: ImageSource,
    mean: torch.Tensor,
    *,
    std: torch.Tensor | None = None,
    view: str = "full",
    resize: int = RESIZE,
    crop: int = CROP,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 500,
    workers: int = 0,
    channels_last: bool = True,
    progress: bool = False,
) -> dict[str, float | int]:
    """The trainer's validation: one model under one view (`full` for CIFAR, `center` with `resize`, `crop` for photos).

    Returns top1_error and top5_error (percent) and images.
    """
    result = evaluate_views(
        [Member(model, mean, std)],
        source,
        {view: make_view(view, resize=resize, crop=crop)},
        device=device,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
        channels_last=channels_last,
        progress=progress,
    ).views[view]
    return {
        "top1_error": result.top1_error,
        "top5_error": result.top5_error,
        "images": result.images,
    }


class _ViewItems(Dataset):
    """Item j: the crops of every view of a run of consecutive evaluated images, and how many images that was.

    A source held in memory as one uniform tensor (ImageSet) is cut a batch at a time; any other source image by image.
    """

    def __init__(self, source: ImageSource, views: Mapping[str, View], positions: torch.Tensor, batch_size: int):
        self.source, self.views, self.positions = source, dict(views), positions
        images = getattr(source, "images", None)
        self.uniform = images if isinstance(images, torch.Tensor) and images.dim() == 4 else None
        if self.uniform is not None and len(positions):
            crops = sum(len(stack) for view in self.views.values() for stack in view(self.uniform[0]))
            self.per_item = max(1, batch_size // crops)
        else:
            self.per_item = IMAGES_PER_ITEM

    def __len__(self) -> int:
        return math.ceil(len(self.positions) / self.per_item)

    def __getitem__(self, j: int) -> tuple[list[Piece], int] | UserError:
        first = j * self.per_item
        owners = torch.arange(first, min(first + self.per_item, len(self.positions)))
        try:
            if self.uniform is not None:
                return self._pieces(owners, self.uniform[self.positions[owners]]), len(owners)
            pieces = [p for o in owners for p in self._pieces(o[None], self.source.image(int(self.positions[o]))[None])]
        except UserError as e:  # a bad image file; returned, since DataLoader would re-raise it with a traceback
            return e
        return pieces, len(owners)

    def _pieces(self, owners: torch.Tensor, images: torch.Tensor) -> list[Piece]:
        pieces = []
        for name, view in self.views.items():
            for stack in view(images):  # [B, K, 3, h, w]: K crops of each of the B images
                pieces.append((name, owners.repeat_interleave(stack.shape[1]), stack.flatten(0, 1)))
        return pieces


def _items(dataset: _ViewItems, workers: int) -> Iterator:
    """The dataset's items in order, made in `workers` processes (0: here)."""
    if workers == 0:
        return (dataset[j] for j in range(len(dataset)))
    loader = DataLoader(
        dataset, batch_size=None, num_workers=workers, collate_fn=_as_is, worker_init_fn=init_worker, prefetch_factor=4
    )
    return iter(loader)


def _as_is(item):
    return item


class _Batcher:
    """Collects crops by (view, size) and hands out batches of at most `batch_size` crops and `max_pixels` pixels.

    Crops of a size that is still short of a batch wait; when the waiting crops exceed PENDING_BATCHES batches'
    pixels (many sizes, as multi-scale testing of photos of many aspect ratios gives), the largest group goes anyway.
    """

    def __init__(self, batch_size: int, max_pixels: int):
        self.batch_size, self.max_pixels = batch_size, max_pixels
        self.pending: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.pixels: dict[tuple, int] = {}

    def add(self, name: str, owners: torch.Tensor, crops: torch.Tensor) -> list[Piece]:
        """Queue `crops`; return every batch now full (and the largest groups while too much waits)."""
        key = (name, *crops.shape[-2:])
        self.pending.setdefault(key, []).append((owners, crops))
        self.pixels[key] = self.pixels.get(key, 0) + crops[:, 0].numel()
        capacity = self._capacity(key)
        ready = []
        while sum(len(o) for o, _ in self.pending.get(key, ())) >= capacity:
            ready.append(self._take(key, capacity))
        while sum(self.pixels.values()) > PENDING_BATCHES * self.max_pixels:
            ready.append(self._take(max(self.pixels, key=self.pixels.__getitem__), None))
        return ready

    def drain(self) -> Iterator[Piece]:
        """Every crop still waiting, in batches."""
        while self.pending:
            key = next(iter(self.pending))
            yield self._take(key, self._capacity(key))

    def _capacity(self, key: tuple) -> int:
        return max(1, min(self.batch_size, self.max_pixels // (key[1] * key[2])))

    def _take(self, key: tuple, count: int | None) -> Piece:
        owners = _cat([o for o, _ in self.pending[key]])
        crops = _cat([c for _, c in self.pending[key]])
        count = len(owners) if count is None else count
        if count < len(owners):
            self.pending[key] = [(owners[count:], crops[count:])]
            self.pixels[key] = crops[count:, 0].numel()
        else:
            del self.pending[key], self.pixels[key]
        return key[0], owners[:count], crops[:count]


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class _Prepared:
    """A member on the device: its normalisation tensors moved once, its train/eval mode remembered to restore."""

    def __init__(self, member: Member, device: torch.device):
        self.model = member.model
        self.mean = member.mean.to(device)
        self.std = None if member.std is None else member.std.to(device)
        self.was_training = member.model.training


class _Scores:
    """Per view, the summed softmax scores [N, classes] of every image and how many (crop, model) pairs they sum."""

    def __init__(self, count: int, views: Mapping[str, View], device: torch.device):
        self.count, self.device = count, device
        self.sums: dict[str, torch.Tensor] = {}
        self.terms = {name: torch.zeros(count, device=device) for name in views}
        self.seconds = dict.fromkeys(views, 0.0)
        self.warned = False  # about non-finite outputs

    def add(self, batch: Piece, models: list[_Prepared], precision: str, channels_last: bool) -> None:
        """Run the crops through every model and add their softmax scores to their images' sums (timed per view)."""
        name, owners, crops = batch
        start = time.perf_counter()
        x = crops.to(self.device, non_blocking=True)
        owners = owners.to(self.device)
        probs: torch.Tensor | int = 0
        for m in models:
            inputs = normalize(x, m.mean, m.std)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, precision):
                logits = m.model(inputs)
            if not self.warned and not torch.isfinite(logits).all():
                self.warned = True  # once: a diverged model's every batch would repeat it
                print(
                    f"warning: a model's outputs are NaN or infinite on some {name} crops; its errors are not "
                    "meaningful (were its weights saved after a divergence?)",
                    file=sys.stderr,
                )
            probs = probs + logits.float().softmax(1)  # averaged as probabilities, not logits (Table 5)
        assert isinstance(probs, torch.Tensor)  # an ensemble has one model at least
        if name not in self.sums:
            self.sums[name] = torch.zeros(self.count, probs.shape[1], device=self.device)
        self.sums[name].index_add_(0, owners, probs)
        self.terms[name].index_add_(0, owners, torch.full_like(owners, len(models), dtype=torch.float32))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the time is this batch's, not the previous one's
        self.seconds[name] += time.perf_counter() - start

    def averaged(self, name: str) -> torch.Tensor:
        """Each image's softmax averaged over its crops and the models [N, classes] (no columns if N is 0)."""
        if name not in self.sums:
            return torch.zeros(self.count, 0, device=self.device)
        return self.sums[name] / self.terms[name][:, None]

    def result(self, name: str, labels: torch.Tensor) -> ViewResult:
        """Top-1 and top-5 error (percent) of the averaged softmax."""
        n = len(labels)
        if n == 0:
            return ViewResult(math.nan, math.nan, 0, self.seconds[name])
        scores = self.averaged(name)
        top = scores.topk(min(5, scores.shape[1]), dim=1).indices
        hits = top == labels[:, None]
        return ViewResult(
            top1_error=100.0 * (1 - int(hits[:, 0].sum()) / n),
            top5_error=100.0 * (1 - int(hits.any(1).sum()) / n),
            images=n,
            seconds=self.seconds[name],
        )
