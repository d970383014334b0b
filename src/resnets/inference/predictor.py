"""Class predictions for images: a trained model under one of evaluate's test views.

Scores come from evaluate's own pass (`evaluate_views`): the same view, normalisation, memory format, precision and
crop batching as `resnets evaluate` gives the same checkpoint, so predict's top-1 over a labelled folder has exactly
evaluate's error on it. Two things differ, so that every image gets a prediction or a one-line refusal whatever runs
the network: the full view resizes an image of another size to a network's one input size (a CIFAR model given a
photo), and an image too large or too long for the view is refused (evaluation.views.view_refusal).
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..core.errors import UserError
from ..core.runtime import default_workers, resolve_device, resolve_precision
from ..data.decode import TOO_LARGE, ImageError, read_rgb, rgb_array
from ..evaluation.evaluate import Member, evaluate_views
from ..evaluation.protocol import default_views, view_size
from ..evaluation.views import SCALES, make_view, resize_shorter, resized_sizes, view_refusal
from ..models import ResNet
from ..weights.files import TrainedModel
from .metadata import class_names, display_name
from .onnx_runtime import OnnxModel

# What predict() takes: uint8 RGB [3, H, W] tensors or arrays ([H, W, 3] arrays too), Pillow images, encoded bytes,
# or file paths.
ImageLike = torch.Tensor | np.ndarray | Image.Image | bytes | str | Path
TOP_K = 5


@dataclass(frozen=True)
class Outcome:
    """One file's prediction (`top`), or the one-line reason it could not be read or taken (`error`); `resized`:
    whether the full view resized it to the network's input size."""

    file: Path
    top: list[dict[str, Any]] | None
    error: str | None = None
    resized: bool = False


class Predictor:
    """A trained model that predicts classes of images, preprocessed as `resnets evaluate` preprocesses them.

    `view` is one of evaluate's test views (default: the run's, `full` for CIFAR runs, else `center`); `resize`,
    `crop` and `scales` default to the run's as in evaluate. `channels_last` False: NCHW inputs (ONNX Runtime);
    `backend` names what runs the network ("torch" or "onnxruntime"), as /info reports it.
    """

    def __init__(
        self,
        trained: TrainedModel,
        *,
        view: str | None = None,
        resize: int | None = None,
        crop: int | None = None,
        scales: tuple[int, ...] = SCALES,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 64,
        channels_last: bool = True,
        source: str = "",
        backend: str = "torch",
    ):
        if isinstance(trained.model, ResNet) and trained.model.config.features_only:
            raise UserError(f"{source or trained.name} is a features_only backbone; predict needs a classifier")
        if batch_size < 1:
            raise UserError(f"--batch-size {batch_size} must be a positive number of crops")
        self.trained, self.source = trained, source or trained.name
        self.view_name = view or default_views([trained])[0]
        self.resize, self.crop = view_size(trained.train_config, resize, crop)
        # The full view fits images to a network that takes one input size, as ONNX graphs and per-pixel means do.
        self.input_size = fixed_input_size(trained) if self.view_name == "full" else None
        self.view = make_view(self.view_name, resize=self.resize, crop=self.crop, scales=scales, size=self.input_size)
        self.forward_batch = min(batch_size, _graph_batch(trained, self.source) or batch_size)
        _check_graph_size(self)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size, self.channels_last, self.backend = batch_size, channels_last, backend
        self.classes = class_names(trained)
        self.labels = [display_name(c) for c in self.classes]
        model = trained.model.to(self.device).eval()
        if channels_last:
            # torch's stubs list no memory_format for Module.to, which takes it (and returns the module)
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.member = Member(model, trained.pixel_mean, trained.pixel_std)
        self.warned = False  # about non-finite outputs, once

    def crop_size(self) -> tuple[int, int] | None:
        """The one size of the view's crops, or None where each image's own size sets theirs."""
        if self.view_name == "full":
            return self.input_size
        return (self.crop, self.crop) if self.view_name in ("center", "10crop") else None

    def check(self, image: torch.Tensor) -> None:
        """Raise ImageError (`too_big`, a one-line reason) if the view does not take `image`, uint8 [3, H, W]."""
        reason = view_refusal(self.view, *image.shape[-2:])
        if reason is not None:
            raise ImageError(TOO_LARGE, reason)

    def resizes(self, image: torch.Tensor) -> bool:
        """Whether the full view resizes `image` to the network's one input size (a photo given to a CIFAR model)."""
        return self.input_size is not None and tuple(image.shape[-2:]) != tuple(self.input_size)

    def info(self) -> dict[str, Any]:
        """What serve's /info reports: the model, its classes, input size, view, device and precision."""
        mean = self.trained.pixel_mean
        return {
            "model": self.trained.name,
            "source": self.source,
            "classes": self.classes,
            "labels": self.labels,
            "view": self.view_name,
            "input_size": list(self.input_size or mean.shape[-2:]) if self.view_name == "full" else [self.crop] * 2,
            "device": str(self.device),
            "precision": _graph(self.trained).precision if _graph(self.trained) else self.precision,
            "backend": self.backend,
        }

    def scores(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Each image's softmax averaged over its view's crops [N, classes], on the CPU; an image the view does not take
        (see `check`) is a UserError."""
        if not images:
            return torch.zeros(0, len(self.classes))
        tensors = [to_tensor(image) for image in images]
        for i, tensor in enumerate(tensors):
            _checked(self.check, tensor, f"image {i}")
        source = _Images(tensors)
        result = evaluate_views(
            [self.member],
            source,
            {self.view_name: self.view},
            device=self.device,
            precision=self.precision,
            batch_size=self.forward_batch,
            crop_pixels=self.crop * self.crop,
            workers=0,
            channels_last=self.channels_last,
            warn_non_finite=False,  # `top` says so once for the predictor, not once per call
        )
        return result.scores[self.view_name].cpu()

    def predict(self, images: Sequence[ImageLike], top_k: int = TOP_K) -> list[list[dict[str, Any]]]:
        """For each image, its `top_k` classes as {"label", "index", "probability"}, most probable first."""
        return self.top(self.scores(images), top_k)

    def top(self, scores: torch.Tensor, top_k: int = TOP_K) -> list[list[dict[str, Any]]]:
        """The `top_k` classes of each row of `scores`; a probability that is not finite (a diverged model's) is None,
        with one warning on stderr per predictor."""
        if top_k < 1:
            raise UserError(f"--top-k {top_k} must be at least 1")
        values, indices = scores.topk(min(top_k, scores.shape[1]), dim=1)
        if not self.warned and not torch.isfinite(values).all():
            self.warned = True
            tqdm.write(  # above predict's progress bar, if there is one
                f"warning: {self.source} gives NaN or infinite outputs; their probabilities are null (were its "
                "weights saved after a divergence?)",
                file=sys.stderr,
            )
        return [
            [
                {"label": self.labels[i], "index": i, "probability": p if math.isfinite(p) else None}
                for p, i in zip(row_p.tolist(), row_i.tolist())
            ]
            for row_p, row_i in zip(values, indices)
        ]

    def predict_files(
        self, files: Sequence[Path], top_k: int = TOP_K, *, chunk: int | None = None, workers: int | None = None
    ) -> Iterator[Outcome]:
        """Outcomes of `files` in order, a chunk of images at a time (decoded in `workers` threads meanwhile)."""
        size = chunk or self.batch_size
        chunks = [files[i : i + size] for i in range(0, len(files), size)]
        with ThreadPoolExecutor(workers or default_workers()) as pool:
            # The next chunk decodes while this one runs through the network; no more is held in memory.
            ahead = [pool.submit(self._load, f) for f in chunks[0]] if chunks else []
            for n in range(len(chunks)):
                decoded, ahead = [f.result() for f in ahead], []
                if n + 1 < len(chunks):
                    ahead = [pool.submit(self._load, f) for f in chunks[n + 1]]
                tops = iter(self.predict([image for image, _ in decoded if image is not None], top_k))
                for image, outcome in decoded:
                    yield outcome if image is None else replace(outcome, top=next(tops))

    def _load(self, path: Path) -> tuple[torch.Tensor | None, Outcome]:
        """The decoded image that the view takes, shrunk as the view would (see `_shrunk`), with its outcome so far;
        or None and the outcome with the one-line reason naming the file."""
        try:
            image = torch.from_numpy(read_rgb(path))
            self.check(image)
        except ImageError as e:
            return None, Outcome(path, None, f"{path}: {e}")
        return self._shrunk(image), Outcome(path, None, resized=self.resizes(image))

    def _shrunk(self, image: torch.Tensor) -> torch.Tensor:
        """`image` resized now where the view resizes it once (all but multiscale): the view then finds it at that size
        and cuts the very same crops, and a chunk of large photos waits at that size, not at full size."""
        sizes = resized_sizes(self.view, *image.shape[-2:])
        if len(sizes) != 1 or sizes[0] == tuple(image.shape[-2:]):
            return image
        return resize_shorter(image, min(sizes[0]))


class _Images:
    """Decoded images as evaluate's ImageSource (their labels unknown: 0)."""

    def __init__(self, images: list[torch.Tensor]):
        self.images, self.labels = images, torch.zeros(len(images), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> torch.Tensor:
        return self.images[i]


def to_tensor(image: ImageLike) -> torch.Tensor:
    """An image as uint8 RGB [3, H, W], decoded with the data pipeline's own decoder."""
    if isinstance(image, (str, Path)):
        return torch.from_numpy(_checked(read_rgb, Path(image), str(image)))
    if isinstance(image, bytes):
        return torch.from_numpy(_checked(read_rgb, io.BytesIO(image), "image bytes"))
    if isinstance(image, Image.Image):
        return torch.from_numpy(rgb_array(image))
    tensor = torch.from_numpy(np.array(image)) if isinstance(image, np.ndarray) else torch.as_tensor(image)
    if tensor.dim() == 3 and tensor.shape[0] != 3 and tensor.shape[-1] == 3:  # [H, W, 3], as numpy and Pillow give
        tensor = tensor.permute(2, 0, 1)
    if tensor.dtype != torch.uint8 or tensor.dim() != 3 or tensor.shape[0] != 3:
        raise UserError(f"an image tensor must be uint8 RGB [3, H, W], not {tensor.dtype} {list(tensor.shape)}")
    return tensor.contiguous()


def _checked(read, file, name: str) -> np.ndarray:
    try:
        return read(file)
    except ImageError as e:
        raise UserError(f"{name}: {e}") from None


def fixed_input_size(trained: TrainedModel) -> tuple[int, int] | None:
    """The one input size the network takes, or None if it takes any: an ONNX graph's (traced at one size), else a
    per-pixel mean's (CIFAR and ImageNet runs; other sizes would get the mean resized, not the training input)."""
    graph = _graph(trained)
    if graph is not None:
        return graph.size
    mean = trained.pixel_mean
    return (int(mean.shape[-2]), int(mean.shape[-1])) if mean.dim() == 3 and mean.shape[-2:] != (1, 1) else None


def _graph(trained: TrainedModel):
    """The OnnxModel running the network, or None for a PyTorch network."""
    return trained.model if isinstance(trained.model, OnnxModel) else None


def _graph_batch(trained: TrainedModel, source: str) -> int | None:
    """The batch size an ONNX graph is fixed at (1 for `export --no-dynamic-batch`), or None if it takes any."""
    graph = _graph(trained)
    batch = graph.input.shape[0] if graph is not None else None
    if not isinstance(batch, int):
        return None
    if batch != 1:  # the last batch of a run is usually shorter, which such a graph refuses
        raise UserError(
            f"{source} takes batches of exactly {batch}; export it again with a dynamic batch (the default)"
        )
    return batch


def _check_graph_size(predictor: Predictor) -> None:
    """A UserError if the predictor runs an ONNX graph at one input size and its view's crops are of another."""
    graph = _graph(predictor.trained)
    if graph is None or predictor.crop_size() == graph.size:
        return
    h, w = graph.size
    raise UserError(
        f"{predictor.source} takes {h}x{w} inputs, but the {predictor.view_name} view's crops are not all {h}x{w}; "
        f"choose --views full, or --views center with --crop {h}"
    )
