"""resnets: the networks, recipes, test protocols and analyses of He et al., "Deep Residual Learning" (CVPR 2016)."""

from typing import Any

from . import models
from .analysis.complexity import measure, model_complexity
from .errors import UserError
from .models import ResNet, ResNetConfig, list_models, model_config

__version__ = "0.1.0"
__all__ = [
    "ResNet",
    "ResNetConfig",
    "UserError",
    "create_model",
    "list_models",
    "load_predictor",
    "measure",
    "model_complexity",
    "model_config",
]


def create_model(name: str, weights: str | None = None, **options: Any) -> ResNet:
    """Build a registered model, e.g. `create_model('resnet50', stride_on='3x3')`; `weights`: a tag or a file.

    `create_model('resnet50', weights='torchvision-v1')` downloads torchvision's ImageNet weights once and builds
    the network they need (stride_on='3x3'); a .pth or .safetensors file is loaded key for key.
    """
    if weights is None:
        return models.create_model(name, **options)
    from .weights import pretrained_model  # only when weights are asked for: a fresh model loads no download code

    return pretrained_model(name, weights, **options).model


def load_predictor(checkpoint: str | None = None, **settings: Any):
    """A Predictor (`.predict(images)`) for a run folder or checkpoint, an ONNX file (`onnx=`), or `model=` with
    `weights=`; preprocessing is evaluate's for the same model and view; `backend=` "auto" (ONNX Runtime where exact
    on the CPU, else PyTorch), "torch" or "onnx" (see resnets.inference.load_predictor)."""
    from .inference import load_predictor  # the inference stack only when asked for

    return load_predictor(checkpoint, **settings)
