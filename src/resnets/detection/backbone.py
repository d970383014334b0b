"""The ResNet trunk of a detector: built from the zoo, optionally with trained weights, split at conv4_x / conv5_x."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core.errors import UserError
from ..models import ResNet, ResNetConfig, create_model
from ..weights.files import IMAGENET_MEAN, IMAGENET_STD, TrainedModel, load_trained, pretrained_model


class C4Trunk(nn.Module):
    """conv1 .. conv4_x of a ResNet (Sec. 4.3: the layers shared by the RPN and the detector), stride 16."""

    def __init__(self, resnet: ResNet):
        super().__init__()
        if len(resnet.stages) != 4 or resnet.config.stem != "imagenet":
            raise UserError(
                f"a C4 detector needs an ImageNet-family backbone (4 stages, 7x7 stem), not {resnet.config.stem} "
                f"with {len(resnet.stages)} stages; choose e.g. resnet18 .. resnet152"
            )
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.stages[:3]
        self.out_channels = resnet.feature_channels[2]
        self.stride = resnet.feature_strides[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


def backbone_network(name: str, weights: str | None = None, **options) -> tuple[ResNet, torch.Tensor, torch.Tensor]:
    """The zoo's `name` without its classifier, and its input mean and std (3,) for [0, 1] pixels.

    `weights`: None (random, He initialisation; ImageNet statistics), a run folder or .pt checkpoint of `resnets
    train` (its own mean; the per-pixel mean is averaged per channel, as detection images have any size), or
    what `create_model` accepts (a .pth/.safetensors file, 'torchvision-v1').
    """
    if weights is None:
        model = create_model(name, features_only=True, **options)
        return model, torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    path = Path(weights)
    trained: TrainedModel
    if path.is_dir() or path.suffix == ".pt":
        trained = load_trained(path)
        if trained.name != name:
            raise UserError(f"{weights} holds a {trained.name}, not a {name}; pass --backbone {trained.name}")
    else:
        trained = pretrained_model(name, weights, **options)
    model = ResNet(ResNetConfig(**{**trained.model.config.to_dict(), "features_only": True}))
    state = {k: v for k, v in trained.model.state_dict().items() if not k.startswith("fc.")}
    model.load_state_dict(state)
    mean = trained.pixel_mean.reshape(3, -1).mean(1)
    std = trained.pixel_std.reshape(3) if trained.pixel_std is not None else torch.ones(3)
    return model, mean, std
