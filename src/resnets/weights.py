"""Trained models in and out: checkpoints or run folders to models, and safetensors export."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .atomic import atomic_write
from .errors import UserError
from .models import ResNet, ResNetConfig
from .training.checkpoint import BEST, LAST, load_checkpoint

WEIGHTS_FORMAT = "resnets-weights-v1"


@dataclass
class TrainedModel:
    """A network with what testing it needs: its input normalisation and class names."""

    name: str
    model: ResNet
    pixel_mean: torch.Tensor
    classes: list[str]
    train_config: dict


def checkpoint_file(path: str | Path) -> Path:
    """A run folder resolves to its best.pt (else last.pt); a file is itself."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path} holds no {BEST} or {LAST}; is it a training run folder?")
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    return path


def load_trained(path: str | Path) -> TrainedModel:
    """Rebuild a model from a run folder, a training checkpoint (.pt) or an exported .safetensors file."""
    file = checkpoint_file(path)
    if file.suffix == ".safetensors":
        return _load_safetensors(file)
    state = load_checkpoint(file)
    model = ResNet(ResNetConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return TrainedModel(state["model_name"], model, state["pixel_mean"], list(state["classes"]), state["train_config"])


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
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(save(tensors, metadata=metadata))


def _load_safetensors(file: Path) -> TrainedModel:
    try:
        tensors = load_file(str(file))
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise UserError(f"{file} has no resnets metadata; build the model with --model and load it with --weights")
    config = ResNetConfig(**json.loads(metadata["model_config"]))
    model = ResNet(config)
    model.load_state_dict(tensors)
    mean = torch.tensor(json.loads(metadata["pixel_mean"])).reshape(json.loads(metadata["pixel_mean_shape"]))
    return TrainedModel(
        metadata["model_name"], model, mean, json.loads(metadata["classes"]), json.loads(metadata["train_config"])
    )
