"""resnets: the networks, recipes, test protocols and analyses of He et al., "Deep Residual Learning" (CVPR 2016)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core.errors import UserError

if TYPE_CHECKING:
    from .models import ResNet

# Loaded on first use (PEP 562), so that `import resnets` and the CLI's start import no torch: a Ctrl-C during
# that second is the CLI's to catch, and `resnets --help` answers at once.
_LAZY = {
    "models": "",  # the zoo itself: resnets.models
    "ResNet": "models",
    "ResNetConfig": "models",
    "list_models": "models",
    "model_config": "models",
    "measure": "models.complexity",
    "model_complexity": "models.complexity",
}

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
        from .models import create_model as build

        return build(name, **options)
    from .weights.files import pretrained_model  # only when weights are asked for: a fresh model loads no download code

    return pretrained_model(name, weights, **options).model


def load_predictor(checkpoint: str | None = None, **settings: Any):
    """A Predictor (`.predict(images)`) for a run folder or checkpoint, an ONNX file (`onnx=`), or `model=` with
    `weights=`; preprocessing is evaluate's for the same model and view; `backend=` "auto" (ONNX Runtime where exact
    on the CPU, else PyTorch), "torch" or "onnx" (see resnets.inference.load_predictor)."""
    from .inference import load_predictor  # the inference stack only when asked for

    return load_predictor(checkpoint, **settings)


def __getattr__(name: str) -> Any:
    """The public names that need torch, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'resnets' has no attribute {name!r}")
    if not _LAZY[name]:
        return import_module(f".{name}", __name__)
    return getattr(import_module(f".{_LAZY[name]}", __name__), name)
