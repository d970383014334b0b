"""Trained models in and out: checkpoints, run folders and weight files to models, and safetensors export."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .atomic import atomic_write
from .checkpoints import BEST, FINAL, LAST, load_checkpoint, load_safely
from .data.imagenet_classes import IMAGENET_WNIDS
from .errors import UserError
from .models import ResNet, ResNetConfig, create_model

WEIGHTS_FORMAT = "resnets-weights-v1"
HEAD = ("fc.weight", "fc.bias")  # the classifier, which fine-tuning on other classes starts afresh
SHOWN = 5  # keys listed per kind in a mismatch error
MEASURED = ("iteration", "val_error", "train_images")  # what an export keeps of its run, besides the weights
# The per-channel normalisation torchvision's ImageNet weights were trained with (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TrainedModel:
    """A network with what testing it needs: its input normalisation and class names."""

    name: str
    model: ResNet
    pixel_mean: torch.Tensor
    classes: list[str]  # output i's class is classes[i] (see model_classes); empty when unknown: the data's order
    train_config: dict
    pixel_std: torch.Tensor | None = None  # per-channel divisor after the mean (torchvision weights); None: none
    iteration: int | None = None  # the training iteration of these weights, when they come from a resnets run
    val_error: float | None = None  # top-1 error (%) the run measured on its validation set at that iteration
    train_images: int | None = None  # how many images the run trained on (checkpoints since it was recorded)


def model_classes(named: list[str], num_classes: int) -> list[str]:
    """The class of each output: the names its file gives, else, for weights without names (torchvision's), the 1000
    ImageNet classes in sorted wnid order when there are 1000 outputs; else [] (unknown)."""
    if named:
        return list(named)
    return list(IMAGENET_WNIDS) if num_classes == len(IMAGENET_WNIDS) else []


def checkpoint_file(path: str | Path) -> Path:
    """A run folder resolves to its best.pt, else its last.pt, else its final.safetensors (the final weights: the
    only ones of a run that validated on the test split); a file is itself."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST, FINAL):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path} holds no {BEST}, {LAST} or {FINAL}; is it a training run folder?")
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    return path


def load_trained(path: str | Path) -> TrainedModel:
    """Rebuild a model from a run folder, a training checkpoint (.pt) or an exported .safetensors file."""
    file = checkpoint_file(path)
    if file.suffix == ".safetensors":
        return _exported(file, *_read_safetensors(file))
    state = load_checkpoint(file)
    model = ResNet(ResNetConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return TrainedModel(
        state["model_name"],
        model,
        state["pixel_mean"],
        model_classes(state["classes"], model.config.num_classes),
        state["train_config"],
        state.get("pixel_std"),
        state["iteration"],
        state.get("val_error"),
        state.get("train_images"),
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file or a .pth/.pt state dict (bare, or under 'state_dict' or 'model')."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)[0]
    state = load_safely(path)
    if isinstance(state, dict):  # a wrapper: a training checkpoint keeps the weights under 'model'
        state = next((state[key] for key in ("state_dict", "model") if isinstance(state.get(key), dict)), state)
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise UserError(
            f"{path} holds no state dict (parameter names -> tensors); pass a torchvision-format weights file"
        )
    return dict(state)


def load_weights(model: ResNet, state: dict[str, torch.Tensor], *, source: str, reset_head: bool = False) -> list[str]:
    """Load `state` key for key; with `reset_head`, an fc of another shape stays fresh and its keys are returned."""
    own = model.state_dict()
    # Files saved before PyTorch 0.4.1 lack BN's num_batches_tracked: a step counter, not a weight, so a missing
    # one is no error (the model keeps its own).
    missing = [k for k in own if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    fresh = [k for k in reshaped if k in HEAD] if reset_head else []
    reshaped = [k for k in reshaped if k not in fresh]
    if missing or unexpected or reshaped:
        parts = [f"{len(missing)} missing keys ({_first(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected keys ({_first(unexpected)})"] if unexpected else []
        shapes = [f"{k} {list(state[k].shape)} in the file, {list(own[k].shape)} in the model" for k in reshaped]
        parts += [f"{len(reshaped)} shape mismatches ({_first(shapes)})"] if reshaped else []
        raise UserError(f"{source} does not fit the model: {'; '.join(parts)}; check --model and its options")
    model.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)  # checked above
    return fresh


def pretrained_model(model_name: str, weights: str, **options: Any) -> TrainedModel:
    """`model_name` with `weights`: a release tag ('torchvision-v1', downloaded once) or a .pth/.safetensors file."""
    from . import pretrained  # the download code, only when weights are asked for

    if pretrained.is_tag(weights):
        options = pretrained.release_options(weights, options)
        file = pretrained.weights_file(model_name, weights)
    else:
        file = Path(weights)
        if not file.is_file():
            tags = ", ".join(pretrained.RELEASES)
            raise UserError(f"weights {weights} is neither a file nor a weights tag ({tags})")
    if file.suffix == ".safetensors":
        state, metadata = _read_safetensors(file)
        if metadata.get("format") == WEIGHTS_FORMAT:
            return _exported_as(file, model_name, options, _exported(file, state, metadata))
    else:
        state = read_state_dict(file)
    if "fc.weight" in state:  # the file decides the class count unless options say otherwise (then: mismatch)
        options = {"num_classes": state["fc.weight"].shape[0], **options}
    model = create_model(model_name, **options)
    load_weights(model, state, source=str(file))
    # torchvision's normalisation; the file names no classes.
    mean, std = (torch.tensor(values).view(3, 1, 1) for values in (IMAGENET_MEAN, IMAGENET_STD))
    return TrainedModel(model_name, model, mean, model_classes([], model.config.num_classes), {}, std)


def export_safetensors(trained: TrainedModel, out: Path) -> None:
    """Write the weights (torchvision key names) with the architecture and normalisation as metadata."""
    tensors = {k: v.contiguous() for k, v in trained.model.state_dict().items()}
    metadata = {
        "format": WEIGHTS_FORMAT,
        "model_name": trained.name,
        "model_config": json.dumps(trained.model.config.to_dict()),
        "classes": json.dumps(trained.classes),
        "pixel_mean_shape": json.dumps(list(trained.pixel_mean.shape)),
        "pixel_mean": json.dumps(trained.pixel_mean.flatten().tolist()),
        "train_config": json.dumps(trained.train_config),
    }
    if trained.pixel_std is not None:
        metadata["pixel_std"] = json.dumps(trained.pixel_std.flatten().tolist())
    for key in MEASURED:
        if getattr(trained, key) is not None:
            metadata[key] = json.dumps(getattr(trained, key))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(save(tensors, metadata=metadata))


def read_metadata(file: Path) -> dict[str, Any]:
    """The metadata of a resnets .safetensors export, JSON values decoded, without reading its tensors."""
    try:
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    return {k: v if k in ("format", "model_name") else json.loads(v) for k, v in metadata.items()}


def _read_safetensors(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file."""
    try:
        tensors = load_file(str(file))
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    return tensors, metadata


def _exported(file: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> TrainedModel:
    """The model that export_safetensors wrote to `file`, rebuilt from its metadata."""
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise UserError(f"{file} has no resnets metadata; build the model with --model and load it with --weights")
    config = ResNetConfig(**json.loads(metadata["model_config"]))
    model = ResNet(config)
    load_weights(model, tensors, source=str(file))  # missing keys or wrong shapes: one line, not a traceback
    mean = torch.tensor(json.loads(metadata["pixel_mean"])).reshape(json.loads(metadata["pixel_mean_shape"]))
    std = torch.tensor(json.loads(metadata["pixel_std"])).view(3, 1, 1) if "pixel_std" in metadata else None
    classes = model_classes(json.loads(metadata["classes"]), config.num_classes)
    measured = {key: json.loads(metadata[key]) for key in MEASURED if key in metadata}
    return TrainedModel(
        metadata["model_name"], model, mean, classes, json.loads(metadata["train_config"]), std, **measured
    )


def _exported_as(file: Path, model_name: str, options: dict[str, Any], trained: TrainedModel) -> TrainedModel:
    """`trained` (an export, which says its own architecture) if `model_name` and `options` agree with it."""
    stored = trained.model.config.to_dict()
    conflicts = [f"{k}={v!r}" for k, v in options.items() if stored.get(k, v) != v]
    if trained.name != model_name or conflicts:
        asked = ", ".join([model_name, *conflicts])
        raise UserError(f"{file} is a resnets export of {trained.name}, not {asked}; pass --model {trained.name} only")
    return trained


def _first(items: list[str]) -> str:
    more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
