"""Every network of the paper, plus the torchvision variants, behind one registry."""

from .blocks import BasicBlock, Block, Bottleneck, ZeroPadShortcut
from .registry import create_model, list_models, model_config
from .resnet import ResNet, ResNetConfig

__all__ = [
    "BasicBlock",
    "Block",
    "Bottleneck",
    "ResNet",
    "ResNetConfig",
    "ZeroPadShortcut",
    "create_model",
    "list_models",
    "model_config",
]
