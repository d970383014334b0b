"""The paper's tables as data, and the name -> network registry built from them."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from .resnet import ResNet, ResNetConfig

# Table 1: block type and blocks per stage (conv2_x .. conv5_x) of the ImageNet family.
IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)

# Sec. 4.2: 6n+2 layers, n basic blocks on each of three stages of 16, 32, 64 filters (maps of 32, 16, 8).
CIFAR_WIDTHS = (16, 32, 64)
CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110, 1202)  # Table 6
CIFAR_PLAIN_DEPTHS = (20, 32, 44, 56, 110)  # Fig. 6

# Variants from torchvision (ResNeXt: groups x width_per_group; Wide ResNet: twice the bottleneck width).
# Their own papers subsample in the 3x3 conv, so that is their default.
VARIANTS: dict[str, dict[str, Any]] = {
    "resnext50_32x4d": dict(depth=50, groups=32, width_per_group=4),
    "resnext101_32x8d": dict(depth=101, groups=32, width_per_group=8),
    "wide_resnet50_2": dict(depth=50, width_per_group=128),
    "wide_resnet101_2": dict(depth=101, width_per_group=128),
}


def imagenet_config(depth: int, residual: bool = True, **options: Any) -> ResNetConfig:
    """A Table 1 network; option B shortcuts and a 1x1 subsampling stride unless overridden."""
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(f"depth={depth!r} is not in Table 1; choose one of {', '.join(map(str, IMAGENET_DEPTHS))}")
    block, depths = IMAGENET_DEPTHS[depth]
    return ResNetConfig(
        **{"block": block, "depths": depths, "widths": IMAGENET_WIDTHS, "residual": residual, **options}
    )


def cifar_config(depth: int, residual: bool = True, **options: Any) -> ResNetConfig:
    """A Sec. 4.2 network of any depth 6n+2; option A shortcuts and 10 classes unless overridden."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth={depth!r} is not 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202, ...)")
    n = (depth - 2) // 6
    defaults = dict(block="basic", depths=(n, n, n), widths=CIFAR_WIDTHS, stem="cifar", shortcut="A", num_classes=10)
    return ResNetConfig(**{**defaults, "residual": residual, **options})


def _builders() -> dict[str, Callable[..., ResNetConfig]]:
    builders: dict[str, Callable[..., ResNetConfig]] = {}
    for depth in IMAGENET_DEPTHS:
        builders[f"resnet{depth}"] = partial(imagenet_config, depth, True)
        builders[f"plain{depth}"] = partial(imagenet_config, depth, False)
    for depth in CIFAR_RESNET_DEPTHS:
        builders[f"resnet{depth}"] = partial(cifar_config, depth, True)
    for depth in CIFAR_PLAIN_DEPTHS:
        builders[f"plain{depth}"] = partial(cifar_config, depth, False)
    builders["cifar_resnet"] = partial(cifar_config, residual=True)
    builders["cifar_plain"] = partial(cifar_config, residual=False)
    for name, spec in VARIANTS.items():
        builders[name] = partial(imagenet_config, **{"stride_on": "3x3", **spec})
    return builders


_BUILDERS = _builders()


def list_models() -> list[str]:
    """Every registered model name, in natural order (resnet18 before resnet101)."""
    return sorted(_BUILDERS, key=lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])


def model_config(name: str, **options: Any) -> ResNetConfig:
    """The validated config of a registered model with `options` applied."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _BUILDERS[name](**options)


def create_model(name: str, **options: Any) -> ResNet:
    """Build a registered model with fresh weights, e.g. `create_model('resnet50', stride_on='3x3')`.

    Pretrained weights (`weights=`) are offered by `resnets.create_model`, one layer up (resnets.weights.pretrained).
    """
    return ResNet(model_config(name, **options))
