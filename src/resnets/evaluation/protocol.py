"""The test protocol behind `resnets evaluate`: one model or an ensemble on a split, under the test views."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from ..core.errors import UserError
from ..core.runtime import default_workers, resolve_device, resolve_precision
from ..data import ImageSet
from ..data.classes import class_listing
from ..data.reading import reading_for
from ..weights.files import Normalization, TrainedModel, load_trained, pretrained_model
from .evaluate import Member, evaluate_views
from .splits import evaluation_split
from .views import CROP, RESIZE, SCALES, make_view


def load_models(
    checkpoints: list[str],
    weights: str | None = None,
    model: str | None = None,
    normalization: Normalization | None = None,
    **options: Any,
) -> list[TrainedModel]:
    """The checkpoints (run folders, .pt, .safetensors), then `model` built with `weights` (file or release tag),
    whose inputs get `normalization` if the file carries none (see pretrained_model)."""
    check_model_flags(weights, model, options)
    if not checkpoints and weights is None:
        raise UserError("evaluate needs --checkpoint RUN (repeat it for an ensemble) or --weights FILE --model NAME")
    trained = [load_trained(path) for path in checkpoints]
    if weights is not None:
        assert model is not None  # check_model_flags: --weights comes with --model
        try:
            trained.append(pretrained_model(model, weights, normalization, **options))
        except ValueError as e:
            raise UserError(str(e)) from None
    return trained


def check_model_flags(weights: str | None, model: str | None, options: dict[str, Any]) -> None:
    """A UserError unless --model and its `options` (--shortcut, --stride-on) come with --weights, which they build:
    a checkpoint or an ONNX file holds its own architecture, so they would be ignored."""
    if (weights is None) != (model is None):
        raise UserError(
            "--weights FILE|torchvision-v1 and --model NAME go together: --model says how to build the weights "
            "(a checkpoint or ONNX file holds its own architecture)"
        )
    if options and weights is None:
        flags = " ".join(f"--{name.replace('_', '-')}" for name in options)
        raise UserError(f"{flags} builds --model NAME for --weights; a checkpoint holds its own architecture: drop it")


def default_views(models: list[TrainedModel]) -> list[str]:
    """The view the first model's run validated on: `full` (the 32x32 image) for CIFAR runs and bare weights of CIFAR
    networks, `center` for photos and bare weights of other networks."""
    return [reading_for(models[0].train_config).validation_view]


def view_size(train_config: dict, resize: int | None = None, crop: int | None = None) -> tuple[int, int]:
    """The shorter side and crop of the center and 10crop views: as given, else the run's, else the paper's 256, 224."""
    resize = train_config.get("test_resize", RESIZE) if resize is None else resize
    crop = train_config.get("crop_size", CROP) if crop is None else crop
    return resize, crop


def evaluate_models(
    models: list[TrainedModel],
    names: list[str],
    data: str,
    split: str,
    views: list[str],
    *,
    resize: int | None = None,
    crop: int | None = None,
    scales: tuple[int, ...] = SCALES,
    limit: int | None = None,
    labels_file: Path | None = None,
    batch_size: int = 256,
    workers: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, Any]:
    """The ensemble of `models` (named by `names`) on `split` of `data` under each view, as the JSON object.

    resize and crop default to the first run's (its test_resize and crop_size), else to the paper's 256 and 224.
    """
    config = models[0].train_config
    resize, crop = view_size(config, resize, crop)
    made = {name: make_view(name, resize=resize, crop=crop, scales=scales) for name in dict.fromkeys(views)}  # once
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit} must be a positive number of images")
    classes = _ensemble_classes(models, names)
    if split != "test":
        _check_same_holdout(models, names)
    source = evaluation_split(
        data,
        split,
        config,
        classes,
        labels_file=labels_file,
        train_images=models[0].train_images,
        workers=workers,
        progress=progress,
    )
    if isinstance(source, ImageSet):  # images of one size, CIFAR's 32x32
        _warn_if_upsampled(list(made), min(source.images.shape[-2:]), resize, scales)
    _check_outputs(models, names, data, len(source.classes))
    target = resolve_device(device)
    members = [_member(m, target) for m in models]
    if workers is None:  # an in-memory set is cut here; image files are decoded by worker processes
        workers = 0 if isinstance(source, ImageSet) else default_workers()
    result = evaluate_views(
        members,
        source,
        made,
        device=target,
        precision=resolve_precision(precision, target),
        batch_size=batch_size,
        crop_pixels=crop * crop,
        workers=workers,
        limit=limit,
        progress=progress,
    )
    return _as_json(result, names, split, source)


def _member(trained: TrainedModel, device: torch.device) -> Member:
    """A model of the ensemble on `device`, channels-last, with its input normalisation."""
    # torch's stubs list no memory_format for Module.to, which takes it
    model = trained.model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return Member(model, trained.pixel_mean, trained.pixel_std)


def _check_outputs(models: list[TrainedModel], names: list[str], data: str, classes: int) -> None:
    """Every model has one output per class of the split."""
    for model, name in zip(models, names):
        if model.model.config.num_classes != classes:
            raise UserError(f"{name} has {model.model.config.num_classes} outputs but {data} has {classes} classes")


def _as_json(result: Any, names: list[str], split: str, source: Any) -> dict[str, Any]:
    """evaluate_models' JSON object: each view's figures, and the first view's at the top level."""
    per_view = {name: r.to_dict() for name, r in result.views.items()}
    first = next(iter(per_view.values()))
    present = set(source.labels.unique().tolist())
    return {
        "checkpoints": names,
        "split": split,
        "images": result.images,
        # A class of the model without images in the split (a subset such as Imagenette under 1000-class weights)
        # is left out of the split, not of the predictions: a prediction of it is an error.
        "classes": len(source.classes),
        "classes_absent": [c for i, c in enumerate(source.classes) if i not in present],
        "views": per_view,
        "data_seconds": result.data_seconds,
        "seconds": result.seconds,
        # The first view's figures at the top level too, as before several views (scripts read them there).
        "top1_error": first["top1_error"],
        "top5_error": first["top5_error"],
    }


def format_result(result: dict[str, Any], name: str) -> str:
    """One line per view: the errors in percent and the seconds its forward passes took; then the absent classes."""
    lines = [
        f"{name} on {result['split']}, {view} view ({r['images']} images): top-1 error {r['top1_error']:.2f}%, "
        f"top-5 error {r['top5_error']:.2f}% ({r['seconds']:.1f} s)"
        for view, r in result["views"].items()
    ]
    absent = result["classes_absent"]
    if absent:
        lines.append(
            f"{len(absent)} of the model's {result['classes']} classes have no images in the {result['split']} "
            f"split ({class_listing(absent)}): the errors are over the other {result['classes'] - len(absent)} "
            "classes' images, predictions of any class counted"
        )
    return "\n".join(lines)


def _warn_if_upsampled(views: list[str], side: int, resize: int, scales: tuple[int, ...]) -> None:
    """One line on stderr when a view enlarges images of shorter side `side`: center, 10crop and multiscale are the
    photo views of Sec. 3.4, and a 32-pixel CIFAR image under them is interpolated up to 256 pixels or more."""
    sides = {"center": resize, "10crop": resize, "multiscale": max(scales, default=0)}
    enlarged = [f"{view} ({sides[view]} px)" for view in views if sides.get(view, 0) > side]
    if enlarged:
        print(
            f"warning: the {side}-pixel images are upsampled for the {', '.join(enlarged)} view"
            f"{'s' * (len(enlarged) > 1)}; CIFAR models are tested on the image as it is (--views full, Sec. 4.2)",
            file=sys.stderr,
        )


def _ensemble_classes(models: list[TrainedModel], labels: list[str]) -> list[str]:
    """The class names every model was trained on (empty: unknown, take the data's); they must agree."""
    known = [(m.classes, label) for m, label in zip(models, labels) if m.classes]
    for classes, label in known[1:]:
        if classes != known[0][0]:
            raise UserError(
                f"{label} was trained on classes {classes[:3]}..., {known[0][1]} on {known[0][0][:3]}...; "
                "an ensemble needs the same classes in the same order"
            )
    return known[0][0] if known else []


def _check_same_holdout(models: list[TrainedModel], labels: list[str]) -> None:
    """Runs of an ensemble tested on val or train must have held out the same images."""
    holdouts = {
        (m.train_config.get("val_split", 0), m.train_config.get("split_seed", 0)): label
        for m, label in zip(models, labels)
        if m.train_config
    }
    if len(holdouts) > 1:
        raise UserError(
            f"{' and '.join(holdouts.values())} held out different validation images (val_split, split_seed); "
            "evaluate the ensemble on --split test"
        )
